"""-export_c: every frame's nanoBragg.c arguments run unchanged through nb-compare and run_c.sh."""
import io
import json
import os
import shlex
import subprocess

import h5py
import numpy as np
import pytest
from test_compare import our_cli, stand_in

from nanobrag_torch import cli, compare

BASE = ("-cell 70 80 90 75 85 95 -default_F 100 -lambda 1 -N 4 -distance 100 -detpixels 24 -pixel 0.8 "
        "-oversample 1 -seed 7 -misset_seed 3 -nonoise -noprogress").split()
SHOTS = "[crystal]\nN = [3, 5]\n[beam]\nfluence = [1e23, 1e24]\n[spectrum]\nsamples = 2\n"


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shots.toml").write_text(SHOTS)
    return tmp_path


@pytest.mark.slow
def test_exported_frames_run_through_nb_compare_and_run_c(work, tmp_path, monkeypatch):
    args = BASE + ["-stills", "2", "-shots", "shots.toml"]
    assert cli.run(args + ["-nexus", "st.nxs", "-export_c", "ex"], out=io.StringIO()) == 0
    with h5py.File("st.nxs", "r") as f:
        photons = f["/entry/data/data"][()]
    ex = work / "ex"
    assert sorted(p.name for p in ex.glob("frame_*.args")) == ["frame_00001.args", "frame_00002.args"]
    assert (ex / "shot_00002_sources.txt").exists()
    fake_c = stand_in(tmp_path, our_cli())
    # run_c.sh renders every frame with "nanoBragg.c" (here the stand-in): the dataset's images
    done = subprocess.run(["sh", str(ex / "run_c.sh")], env=dict(os.environ, NB_C_BIN=fake_c),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    for k in (0, 1):
        np.testing.assert_array_equal(np.fromfile(ex / f"frame_{k + 1:05d}.bin", "<f4").reshape(24, 24), photons[k])
    # nb-compare takes a frame's arguments unchanged
    monkeypatch.chdir(ex)
    frame_args = shlex.split((ex / "frame_00002.args").read_text())
    assert compare.main(["--outdir", str(tmp_path / "cmp"), "--c-bin", fake_c, "--"] + frame_args) == 0
    summary = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["correlation"] == pytest.approx(1.0, abs=1e-12) and summary["sum_c"] > 0
    py = np.fromfile(tmp_path / "cmp" / "py_float.bin", "<f4").reshape(24, 24)
    np.testing.assert_array_equal(py, photons[1])


def test_export_refuses_to_replace_without_overwrite(work, capsys):
    args = BASE + ["-frames", "2", "-osc", "0.1", "-export_c", "ex"]
    assert cli.main(args) == 0
    assert "-phi 0.1 -seed 8" in (work / "ex" / "frame_00002.args").read_text()
    assert cli.main(args) == 2 and "-overwrite" in capsys.readouterr().err
    assert cli.main(args + ["-overwrite"]) == 0


def test_expt_geometry_is_exported_as_nanobragg_options(work, tmp_path, monkeypatch):
    # a rotated, two-theta detector with a thick sensor and a misset crystal, as a DIALS file
    single = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -lambda 1.2 -detpixels_f 24 -detpixels_s 20 -pixel 0.8 "
              "-distance 80 -twotheta 10 -detector_rotx 3 -detector_thick 100 -detector_abs 500 -polar 0.5").split()
    common = "-default_F 100 -N 4 -oversample 1 -nonoise -noprogress".split()
    assert cli.run(single + common + ["-nopgm", "-write_expt", "g.expt"], out=io.StringIO()) == 0
    args = ["-expt", "g.expt"] + common + ["-frames", "2", "-osc", "0.2", "-phi", "1"]
    assert cli.run(args + ["-nexus", "ex.nxs", "-export_c", "ex"], out=io.StringIO()) == 0
    with h5py.File("ex.nxs", "r") as f:
        photons = f["/entry/data/data"][()]
    ex = work / "ex"
    line = (ex / "frame_00002.args").read_text()
    assert "-expt" not in line and "-mat expt.mat" in line and "-pivot beam" in line and "-phi 1.2" in line
    # the stand-in, and nanoBragg.c itself where $NB_C_BIN names it
    for c_bin in [stand_in(tmp_path, our_cli())] + [b for b in [os.environ.get("NB_C_BIN")] if b]:
        done = subprocess.run(["sh", str(ex / "run_c.sh")], env=dict(os.environ, NB_C_BIN=c_bin),
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        for k in (0, 1):
            c = np.fromfile(ex / f"frame_{k + 1:05d}.bin", "<f4").reshape(photons.shape[1:])
            # the panel corner comes back from distance and beam centre: equal to rounding (bit for
            # bit on this machine)
            assert photons[k].max() > 0 and np.abs(c - photons[k]).max() <= 1e-6 * photons[k].max()
