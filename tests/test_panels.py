"""Multi-panel detectors: each panel of one render equals the one-panel command-line run with that
panel's geometry, bit for bit (API and -expt), per-panel files and -roi, bounded chunks that span
panels, clear errors, and gradients of the per-panel offsets and rotations."""
import io
import json

import numpy as np
import torch

import nanobrag_torch as nb
from nanobrag_torch import cli
from nanobrag_torch.io.smv import read_smv
from nanobrag_torch.models import PanelDetector


def words(text):
    return text.split()


COMMON = words("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 5 -lambda 1.0 -pixel 0.1 "
          "-detpixels_x 40 -detpixels_y 24 -nopgm -noprogress -detector_thick 300 -detector_abs 200 "
          "-thicksteps 3")
# two panels in nanoBragg's own words: custom frames, beam centre and distance (beam pivot)
PANEL_A = COMMON + words("-fdet_vector 0 0 1 -sdet_vector 0 -1 0 -odet_vector 1 0 0 -beam_vector 1 0 0 "
                         "-Xbeam 3.2 -Ybeam 2.4 -distance 100")
PANEL_B = COMMON + words("-fdet_vector 0 0.2 1 -sdet_vector 0 -1 0.2 -beam_vector 1 0 0 -Xbeam -5 -Ybeam 8 "
                         "-distance 90 -detector_rotz 3")
KEEP = words("-default_F 100 -N 5 -thicksteps 3 -nopgm -noprogress -scale 1 -seed 5")


def run(argv):
    assert cli.run(list(argv), out=io.StringIO()) == 0


def floats(path, shape=None):
    data = np.fromfile(path, dtype="<f4")
    return data if shape is None else data.reshape(shape)


def test_each_panel_equals_its_one_panel_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = []
    for name, args in (("a", PANEL_A), ("b", PANEL_B)):
        run(args + ["-oversample", "2", "-nonoise", "-floatfile", f"{name}.bin", "-intfile", f"{name}.img"])
        images.append(floats(f"{name}.bin", (24, 40)))
    sims = [nb.from_args(args + ["-oversample", "2"]) for args in (PANEL_A, PANEL_B)]
    det = PanelDetector.from_detectors([s.detector for s in sims])
    # a small term budget: pixel chunks of 7 rows' worth span the panel boundary
    sim = nb.Simulation(det, sims[0].crystal, sims[0].beam, flags=sims[0].flags, term_budget=40 * 7 * 12)
    with torch.no_grad():
        image = sim.run().numpy().astype(np.float32)
    assert image.shape == (48, 40)
    assert np.array_equal(image[:24], images[0]) and np.array_equal(image[24:], images[1])
    assert images[0].max() > 0 and images[1].max() > 0


def two_panel_expt(tmp_path):
    """A.expt and B.expt from the one-panel runs, and AB.expt holding both panels."""
    for name, args in (("A", PANEL_A), ("B", PANEL_B)):
        run(args + ["-nonoise", "-floatfile", "x.bin", "-intfile", "x.img", "-write_expt", f"{name}.expt"])
    doc, other = (json.loads((tmp_path / f"{n}.expt").read_text()) for n in "AB")
    doc["detector"][0]["panels"].append(other["detector"][0]["panels"][0])
    doc["detector"][0]["hierarchy"]["children"].append({"panel": 1})
    (tmp_path / "AB.expt").write_text(json.dumps(doc))


def test_two_panel_expt_and_per_panel_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    two_panel_expt(tmp_path)
    for name in ("A", "B", "AB"):
        run(["-expt", f"{name}.expt"] + KEEP + ["-floatfile", f"{name}.bin", "-intfile", f"{name}.img",
                                              "-noisefile", f"{name}n.img", "-write_expt", f"{name}2.expt"])
    a, b, ab = (floats(f"{n}.bin") for n in ("A", "B", "AB"))
    assert ab.size == a.size + b.size
    assert np.array_equal(ab[:a.size], a) and np.array_equal(ab[a.size:], b)
    for index, single in enumerate("AB"):
        mine, theirs = read_smv(f"AB_p{index:02d}.img"), read_smv(f"{single}.img")
        assert np.array_equal(np.asarray(mine.data), np.asarray(theirs.data))
        for key in ("DISTANCE", "BEAM_CENTER_X", "BEAM_CENTER_Y", "PIXEL_SIZE", "SIZE1", "SIZE2"):
            assert mine.value(key) == theirs.value(key), key
        assert (tmp_path / f"ABn_p{index:02d}.img").exists()
    assert not (tmp_path / "AB.img").exists()
    # the two-panel run's own -write_expt gives the same image back
    run(["-expt", "AB2.expt"] + KEEP + ["-nonoise", "-floatfile", "again.bin", "-intfile", "again.img"])
    assert np.array_equal(floats("again.bin"), ab)


def test_roi_applies_in_every_panel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    two_panel_expt(tmp_path)
    roi = ["-roi", "5", "30", "3", "20"]
    for name in ("A", "B", "AB"):
        run(["-expt", f"{name}.expt"] + KEEP + roi + ["-nonoise", "-floatfile", f"{name}.bin",
                                                    "-intfile", f"{name}.img"])
    a, b, ab = (floats(f"{n}.bin", (-1, 40)) for n in ("A", "B", "AB"))
    assert np.array_equal(ab[:24], a) and np.array_equal(ab[24:], b)
    inside = np.zeros((24, 40), dtype=bool)
    inside[3:21, 5:31] = True
    assert (a[~inside] == 0).all() and (a[inside] > 0).any()


def test_bad_panel_sets_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    two_panel_expt(tmp_path)
    assert cli.main(["-expt", "AB.expt"] + KEEP + ["-distance", "50"]) == 2
    assert "apply to one panel only" in capsys.readouterr().err
    doc = json.loads((tmp_path / "AB.expt").read_text())
    doc["detector"][0]["panels"][1]["image_size"] = [40, 25]
    (tmp_path / "odd.expt").write_text(json.dumps(doc))
    assert cli.main(["-expt", "odd.expt"] + KEEP) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "equal pixel counts" in err[0]


def small_panels(shifts, rotations):
    det = PanelDetector(origins=[[0.05, 0.0015, -0.0005], [0.05, -0.0008, 0.001]],
                        fasts=[[0, 0, 1.0], [0, 0.0, 1.0]], slows=[[0, -1.0, 0], [0, -1.0, 0]],
                        normals=[[1.0, 0, 0], [1.0, 0, 0]], pixel_sizes=[1e-4, 1e-4], fpixels=6, panel_spixels=5,
                        beam=[1.0, 0, 0], shifts=shifts, rotations=rotations)
    crystal = nb.Crystal.from_cell(30, 30, 30, misset=(5, 10, 15), N=3, default_F=100)
    return nb.Simulation(det, crystal, nb.Beam.monochromatic(wavelength_A=1.0))


def test_panel_offsets_and_rotations_gradcheck():
    base = small_panels(None, None)
    with torch.no_grad():
        reference = base.run()
    assert reference.max() > 0 and (reference[:5] > 0).any() and (reference[5:] > 0).any()
    zero = torch.zeros(2, 3, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(small_panels(zero, zero).run(), reference)  # zero offsets change no bit

    def image(shift_um, rot_mdeg):
        sim = small_panels(shift_um * 1e-6, torch.deg2rad(rot_mdeg * 1e-3))
        return sim.run()

    shift = torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.5, -1.0]], dtype=torch.float64, requires_grad=True)
    rot = torch.tensor([[20.0, -10.0, 30.0], [-5.0, 15.0, 10.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(image, (shift, rot), eps=1e-3, atol=1e-6, rtol=1e-4)
    image(shift, rot).sum().backward()
    assert shift.grad.abs().sum() > 0 and rot.grad.abs().sum() > 0


def test_panel_parameters_through_the_api():
    sim = small_panels(None, None)
    assert {"panel_shifts", "panel_rotations"} <= set(nb.available_parameters(sim))
    assert "distance" not in nb.available_parameters(sim)
    p = nb.parameters(sim, "panel_shifts", "panel_rotations")
    assert p["panel_shifts"].shape == (2, 3) and not p["panel_shifts"].any()
    with torch.no_grad():
        p["panel_shifts"][1, 2] = 0.003  # mm
        p["panel_rotations"][0, 2] = 0.02  # degrees
    image = sim.run()
    image.sum().backward()
    assert p["panel_shifts"].grad.abs().sum() > 0 and p["panel_rotations"].grad.abs().sum() > 0

    def through_api(shift, rot):
        p["panel_shifts"], p["panel_rotations"] = shift, rot
        return sim.run()

    start = (p["panel_shifts"].detach().clone().requires_grad_(True),
             p["panel_rotations"].detach().clone().requires_grad_(True))
    assert torch.autograd.gradcheck(through_api, start, eps=1e-6, atol=1e-6, rtol=1e-4)
    moved = small_panels(torch.tensor([[0, 0, 0], [0, 0, 3e-6]], dtype=torch.float64),
                         torch.deg2rad(torch.tensor([[0, 0, 0.02], [0, 0, 0]], dtype=torch.float64)))
    with torch.no_grad():
        assert torch.allclose(image.detach(), moved.run(), rtol=1e-12, atol=0)
    nb.release(sim)
    assert not sim.detector.shifts.requires_grad
    assert small_panels(None, None).detector.pivot == "panels"
    one = nb.from_args(words("-cell 50 50 50 90 90 90 -default_F 1 -detpixels 8"))
    assert "panel_shifts" not in nb.available_parameters(one)


def test_datasets_refuse_several_panels_but_single_frames_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    two_panel_expt(tmp_path)
    assert cli.main(["-expt", "AB.expt"] + KEEP + ["-frames", "2", "-osc", "0.1", "-smv", "ser"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset outputs take a one-panel detector" in err[0]
    assert not list(tmp_path.glob("ser*"))
    assert cli.main(["-expt", "AB.expt"] + KEEP + ["-frames", "2", "-osc", "0.1", "-frame", "1",
                                                 "-floatfile", "f1.bin", "-intfile", "f1.img"]) == 0
    assert (tmp_path / "f1_p00.img").exists() and (tmp_path / "f1_p01.img").exists()


def test_four_panels_tiling_one_panel_give_its_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = words("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 5 -lambda 1.0 -pixel 0.1 "
                 "-nonoise -nopgm -noprogress -detector_rotx 4 -twotheta 6")
    run(base + ["-distance", "60", "-detpixels", "64", "-floatfile", "one.bin", "-intfile", "one.img",
                "-write_expt", "one.expt"])
    doc = json.loads((tmp_path / "one.expt").read_text())
    p = doc["detector"][0]["panels"][0]
    quads = []
    for row in range(2):
        for col in range(2):
            q = json.loads(json.dumps(p))
            q["image_size"] = [32, 32]
            q["origin"] = [p["origin"][i] + 3.2 * col * p["fast_axis"][i] + 3.2 * row * p["slow_axis"][i]
                           for i in range(3)]
            quads.append(q)
    doc["detector"][0]["panels"] = quads
    doc["detector"][0]["hierarchy"]["children"] = [{"panel": i} for i in range(4)]
    (tmp_path / "four.expt").write_text(json.dumps(doc))
    run(["-expt", "four.expt"] + words("-default_F 100 -N 5 -nonoise -nopgm -noprogress -floatfile four.bin "
                                       "-intfile four.img"))
    one, four = floats("one.bin", (64, 64)), floats("four.bin", (4, 32, 32))
    tiled = np.block([[four[0], four[1]], [four[2], four[3]]])
    assert one.max() > 0 and np.abs(tiled - one).max() <= 1e-7 * one.max()
