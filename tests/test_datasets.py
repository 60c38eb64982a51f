"""Rotation series and stills in one run: frames equal the single runs they stand for."""
import io
import json

import numpy as np
import pytest

from nanobrag_torch import cli
from nanobrag_torch.datasets import Renderer
from nanobrag_torch.datasets.cli import make_plan, split_args
from nanobrag_torch.io.smv import read_smv

BASE = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -lambda 1 -N 5 -distance 100 "
        "-detpixels 40 -pixel 0.5 -oversample 1 -phi 0 -osc 0.1 -phisteps 2 -mosaic 0.3 -mosaic_dom 3 "
        "-seed 7 -noprogress").split()


def single(args, tmp_path, name):
    """The ordinary single run: (float image, noise image)."""
    flt, noise = tmp_path / f"{name}.bin", tmp_path / f"{name}.img"
    code = cli.run(list(args) + ["-floatfile", str(flt), "-noisefile", str(noise), "-intfile",
                                 str(tmp_path / "int.img"), "-nopgm"], out=io.StringIO())
    assert code == 0
    return np.fromfile(flt, dtype="<f4").reshape(40, 40), read_smv(noise).data


def dataset(args, tmp_path):
    return cli.run(list(args), out=io.StringIO())


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_rotation_frames_equal_single_runs(work):
    """Frame i == -phi (0 + i*0.1) -seed (7 + i), bit for bit (frame 0 has phi = 0: C's quirk)."""
    opts, base = split_args(BASE + ["-frames", "4"])
    plan = make_plan(base, opts)
    with Renderer(base, plan) as renderer:
        results = list(renderer.frames([0, 1, 3]))
    for result, phi in zip(results, ("0", "0.1", "0.3")):
        assert result.frame.args == ("-phi", phi, "-seed", str(7 + result.frame.index))
        photons, noise = single(BASE + ["-phi", phi, "-seed", str(7 + result.frame.index)], work, "one")
        assert photons.sum() > 0
        np.testing.assert_array_equal(result.photons, photons)
        np.testing.assert_array_equal(result.counts, noise)
    assert not np.array_equal(results[0].photons, results[1].photons)


def test_smv_series_and_frame_option(work):
    """-smv writes one noise image per frame; -frame K is the single run of frame K."""
    assert dataset(BASE + ["-frames", "3", "-smv", "ser"], work) == 0
    names = sorted(p.name for p in work.glob("ser_*.img"))
    assert names == ["ser_00001.img", "ser_00002.img", "ser_00003.img"]
    assert (work / "ser.img.png").read_bytes().startswith(b"\x89PNG")
    record = json.loads((work / "ser.img.json").read_text())
    assert record["command_line"].startswith("nanoBragg -cell 70") and record["version"]
    assert [f["seed"] for f in record["frames"]] == [7, 8, 9] and record["frames"][2]["file"] == "ser_00003.img"
    _, noise2 = single(BASE + ["-frames", "3", "-frame", "2"], work, "k")
    stored = read_smv(work / "ser_00003.img")
    np.testing.assert_array_equal(stored.data, noise2)
    assert stored.value("PHI") == pytest.approx(0.2) and stored.value("OSC_RANGE") == pytest.approx(0.1)


def test_existing_output_needs_overwrite(work, capsys):
    (work / "ser_00002.img").write_bytes(b"keep")
    assert cli.main(BASE + ["-frames", "2", "-smv", "ser"]) == 2
    assert "-overwrite" in capsys.readouterr().err
    assert (work / "ser_00002.img").read_bytes() == b"keep"
    assert cli.main(BASE + ["-frames", "2", "-smv", "ser", "-overwrite"]) == 0
    assert read_smv(work / "ser_00002.img").width == 40


@pytest.mark.parametrize("extra, message", [
    (["-frames", "2", "-stills", "2", "-smv", "x"], "give one of them"),
    (["-frames", "2"], "needs an output"),
    (["-smv", "x"], "needs -frames N"),
    (["-frames", "2", "-frame", "2"], "outside the series"),
    (["-frames", "0", "-smv", "x"], "-frames"),
])
def test_bad_dataset_options(work, capsys, extra, message):
    assert cli.main(BASE + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(work.glob("x*"))


def test_background_and_detector_model_apply_per_frame(work):
    """-background and noisify's detector model (-readout_noise, -psf) act on every frame as on a single run."""
    x = np.linspace(0, 0.6, 40)
    np.savetxt(work / "t.stol", np.stack([x, 2.5 + np.cos(9 * x)], 1))
    extra = ["-background", "t.stol", "-background_thick", "0.05", "-readout_noise", "2", "-psf", "gauss"]
    opts, base = split_args(BASE + extra + ["-frames", "3"])
    plan = make_plan(base, opts)
    with Renderer(base, plan) as renderer:
        result = renderer.render(plan.frame(2))
    photons, noise = single(BASE + extra + ["-phi", "0.2", "-seed", "9"], work, "bg")
    np.testing.assert_array_equal(result.photons, photons)
    np.testing.assert_array_equal(result.counts, noise)
    plain = single(BASE + ["-phi", "0.2", "-seed", "9"], work, "plain")[0]
    assert np.all(photons >= plain) and photons.sum() > 1.01 * plain.sum()  # the background is there


def test_render_threads_spare_a_core_on_a_busy_machine_and_come_back(work, monkeypatch):
    import torch

    from nanobrag_torch.datasets import cli as dataset_cli
    from nanobrag_torch.datasets import render as dataset_render

    seen = []  # the thread count the frames render with
    real = dataset_render.render_frames

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset_render, "render_frames", spy)
    before = torch.get_num_threads()
    busy = (64.0, 64.0, 64.0)
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(dataset_cli.os, "getloadavg", lambda: busy)
        assert dataset(BASE + ["-frames", "2", "-nexus", "t.nxs"], work) == 0
        assert seen[-1] == 1 and torch.get_num_threads() == 2  # one thread fewer, then restored
        assert dataset(BASE + ["-frames", "2", "-nexus", "u.nxs", "-nonoise"], work) == 0
        assert seen[-1] == 2  # no noise thread: all threads render
        busy = (0.0, 0.0, 0.0)  # an idle machine: all threads render
        assert dataset(BASE + ["-frames", "2", "-nexus", "v.nxs"], work) == 0
        assert seen[-1] == 2
    finally:
        torch.set_num_threads(before)
