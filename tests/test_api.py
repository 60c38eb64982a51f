"""Python API: from_args equals the command line, object-built simulations, ROI rendering, and
differentiable parameters on the golden cases (unchanged values, finite gradients)."""
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import nanobrag_torch as nb
from nanobrag_torch import cli
from nanobrag_torch.differentiable import applicable

from conftest import GOLDEN, needs_golden


def _cases():
    if not (GOLDEN / "cases.json").exists():
        return {}
    return {c["id"]: c for c in json.loads((GOLDEN / "cases.json").read_text())["cases"]}


CASES = _cases()


@pytest.fixture(autouse=True)
def in_empty_folder(tmp_path, monkeypatch):
    # from_args reads files (an Fdump.bin left in the current folder) as the command line does
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def case_dir(tmp_path, monkeypatch):
    """A function that prepares a golden case's folder (fixtures, pre-runs) and enters it."""
    def prepare(case_id):
        case = CASES[case_id]
        for name in case.get("fixtures", []):
            shutil.copy(GOLDEN / "fixtures" / name, tmp_path)
        monkeypatch.chdir(tmp_path)
        for pre in case.get("pre", []):
            assert cli.main(pre) == 0
        return case
    return prepare


@needs_golden
@pytest.mark.parametrize("case_id", ["cubic_64px", "mono_mat", "tc_two_sources", "water", "roi", "fdump_reuse",
                                     "interp_auto", "misset_random"])
def test_from_args_equals_command_line(case_dir, case_id):
    case = case_dir(case_id)
    assert cli.main(case["args"]) == 0
    reference = np.fromfile("float.bin", dtype=np.float32)
    os.remove("float.bin")
    sim = nb.from_args(case["args"])
    image = nb.simulate(sim)
    assert image.dtype == torch.float64 and image.shape == (sim.detector.spixels, sim.detector.fpixels)
    assert np.array_equal(image.detach().to(torch.float32).numpy().ravel(), reference)
    assert not os.path.exists("float.bin")  # the API writes no output files


@needs_golden
def test_from_args_leaves_no_fdump_unless_asked(case_dir):
    case = case_dir("triclinic_hkl")
    args = case["args"] + ["-detpixels", "8"]
    nb.from_args(args)
    assert not os.path.exists("Fdump.bin")
    nb.from_args(args, write_fdump=True)
    assert os.path.exists("Fdump.bin")


def test_from_args_dtype_and_lattice_definition():
    args = "-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 5 -lambda 1 -distance 100 -detpixels 16".split()
    sim64 = nb.from_args(args)
    sim32 = nb.from_args(args, dtype=torch.float32)
    img64, img32 = nb.simulate(sim64), nb.simulate(sim32)
    assert img32.dtype == torch.float32
    # float32 keeps h, k, l to ~1e-6, which moves the sharp lattice transform by ~1e-4
    torch.testing.assert_close(img32.double(), img64, rtol=0, atol=1e-3 * float(img64.max()))
    # the recorded definition recomputes the command line's vectors bit for bit
    real, recip = sim64.crystal.lattice()
    assert torch.equal(real, sim64.crystal.real) and torch.equal(recip, sim64.crystal.recip)


def test_object_built_simulation_matches_from_args():
    det = nb.Detector.mosflm(distance_mm=100, pixel_mm=0.1, fpixels=32, spixels=24, beam_mm=(1.3, 1.7))
    xtal = nb.Crystal.from_cell(70, 80, 90, 75, 85, 95, misset=(10, 20, 30), N=5, default_F=100)
    beam = nb.Beam.monochromatic(wavelength_A=1.0, dispersion_pct=0.5, dispsteps=3)
    image = nb.Simulation(det, xtal, beam).run()
    ref = nb.from_args("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 5 -lambda 1 -distance 100 "
                       "-detpixels_f 32 -detpixels_s 24 -pixel 0.1 -Xbeam 1.3 -Ybeam 1.7 "
                       "-dispersion 0.5 -dispsteps 3".split())
    expected = ref.run()
    assert expected.max() > 10
    # both choose nanoBragg's automatic oversampling from the crystal size (here 2x2 sub-pixels)
    assert det.oversample == ref.detector.oversample == 2
    torch.testing.assert_close(image, expected, rtol=1e-10, atol=1e-12)


def test_object_built_simulation_matches_from_args_on_every_sampling_axis():
    """Oversampling, phi steps, mosaic domains and several sources at once: any count that the
    two ways of building weigh differently (e.g. oversample vs oversample^2) shows up here."""
    det = nb.Detector.mosflm(distance_mm=100, pixel_mm=0.1, fpixels=20, spixels=16, beam_mm=(0.9, 1.1), oversample=2)
    xtal = nb.Crystal.from_cell(70, 80, 90, 75, 85, 95, misset=(10, 20, 30), N=5, default_F=100, phi_deg=5,
                                osc_deg=3, phisteps=3, mosaic_deg=0.5, mosaic_domains=3)
    beam = nb.Beam.monochromatic(wavelength_A=1.0, dispersion_pct=0.5, dispsteps=3)
    sim = nb.Simulation(det, xtal, beam)
    ref = nb.from_args("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 5 -lambda 1 -distance 100 "
                       "-detpixels_f 20 -detpixels_s 16 -pixel 0.1 -Xbeam 0.9 -Ybeam 1.1 -oversample 2 "
                       "-phi 5 -osc 3 -phisteps 3 -mosaic 0.5 -mosaic_dom 3 -dispersion 0.5 -dispsteps 3")
    assert (sim.terms_per_pixel(), sim.flags.steps) == (ref.terms_per_pixel(), ref.flags.steps) == (108, 108)
    expected = ref.run()
    assert expected.max() > 1
    torch.testing.assert_close(sim.run(), expected, rtol=1e-10, atol=1e-12 * float(expected.max()))


def test_dispersion_parameter_after_from_args():
    sim = nb.from_args("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 6 "
                       "-dispersion 5 -dispsteps 5 -oversample 1")
    assert "dispersion" in nb.available_parameters(sim)
    reference = sim.run()
    p = nb.parameters(sim, "dispersion", "wavelength")
    assert float(p["dispersion"].detach()) == pytest.approx(5.0)
    assert float(p["wavelength"].detach()) == pytest.approx(6.2)
    torch.testing.assert_close(sim.run(), reference, rtol=1e-12, atol=1e-12 * float(reference.max()))
    slow, fast = torch.tensor([0, 2, 5]), torch.tensor([1, 3, 5])

    def render(dispersion):
        p["dispersion"] = dispersion
        return sim.render_pixels(slow, fast)

    x = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.grad(render(x).sum(), x)[0] != 0
    assert torch.autograd.gradcheck(render, (x,), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_roi_image_and_pixel_list_match_full_image():
    sim = nb.from_args("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 24"
                       .split())
    full = sim.run()
    roi = sim.roi_image((5, 20), (3, 10))  # (slow, fast), like the image
    assert roi.shape == (16, 8)
    assert torch.equal(roi, full[5:21, 3:11])
    slow, fast = torch.tensor([0, 12, 23]), torch.tensor([23, 12, 0])
    assert torch.equal(sim.render_pixels(slow, fast), full[slow, fast])


def test_simulation_roi_is_slow_then_fast_like_the_image():
    args = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 24"
    sim = nb.from_args(args + " -roi 3 10 5 20")  # -roi xmin xmax ymin ymax, as nanoBragg reads it
    assert sim.roi == ((5, 20), (3, 10))
    full = nb.from_args(args).run()
    image = sim.run()
    assert torch.equal(image[5:21, 3:11], full[5:21, 3:11])
    assert image.abs().sum() == image[5:21, 3:11].abs().sum() > 0


def test_parameter_errors():
    sim = nb.from_args("-cell 100 100 100 90 90 90 -default_F 100 -N 5 -detpixels 8".split())
    with pytest.raises(ValueError, match="mosaic"):
        nb.parameters(sim, "mosaic_spread")
    with pytest.raises(ValueError, match="unknown parameter"):
        nb.parameters(sim, "colour")
    nb.parameters(sim, "cell")
    with pytest.raises(ValueError, match="cannot both"):
        nb.parameters(sim, "mat")
    assert "Fclose" not in nb.available_parameters(sim)  # beam pivot


def test_parameters_follow_optimizer_steps():
    sim = nb.from_args("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 16"
                       .split())
    p = nb.parameters(sim, "distance")
    before = sim.run()
    with torch.no_grad():
        p["distance"] += 10.0  # mm
    after = sim.run()
    moved = nb.from_args("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 110 -detpixels 16"
                         .split()).run()
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, moved, rtol=1e-12, atol=1e-12)


FLAT = {"cell", "mat", "misset", "phi0", "phistep", "spindle", "mosaic_spread", "fudge", "wavelength",
               "dispersion"}
# golden cases whose parameters are checked (mat, close_distance: the alternatives to cell, distance)
GRADIENT_CASES = [c for c in CASES if c not in ("div_disp", "printout_pixel")]


@needs_golden
@pytest.mark.parametrize("case_id", GRADIENT_CASES)
def test_golden_case_gradients_are_finite(case_dir, case_id):
    """Every parameter that applies: binding it keeps the image, and d(sum)/d(parameter) is finite."""
    case = case_dir(case_id)
    sim = nb.from_args(case["args"])
    geo = sim.detector.geometry()
    ps = float(sim.detector.pixel_size)
    fb, sb = int(float(geo["Fbeam"]) / ps), int(float(geo["Sbeam"]) / ps)
    d = sim.detector
    x0, y0 = min(max(fb - 3, 0), d.fpixels - 6), min(max(sb - 3, 0), d.spixels - 6)
    box = ((y0, y0 + 5), (x0, x0 + 5))  # 6x6 pixels holding the direct beam when it is on the detector
    reference = sim.roi_image(*box)
    c = sim.crystal
    flat = c.shape == "tophat" or (c.shape == "square" and max(c.Na, c.Nb, c.Nc) <= 1 and not c.interpolate)
    first = nb.available_parameters(sim)
    for names in (first, [n for n in ("mat", "close_distance") if applicable(sim, n) is None]):
        nb.release(sim)
        params = nb.parameters(sim, *names)
        image = sim.roi_image(*box)
        torch.testing.assert_close(image, reference, rtol=1e-9, atol=1e-9 * float(reference.abs().max()))
        image.sum().backward()
        for name, leaf in params.items():
            if leaf.grad is None:
                # default_F is only reached by interpolation's out-of-range fallback; a tophat
                # spot (or a single cell) is flat, so the lattice and wavelength do not reach the
                # image through it
                assert (name == "default_F" and sim.crystal.interpolate) or (flat and name in FLAT), (case_id, name)
            else:
                assert torch.isfinite(leaf.grad).all(), (case_id, name, leaf.grad)
        assert any(leaf.grad is not None and leaf.grad.abs().max() > 0 for leaf in params.values())


def test_mosaic_domains_rebuilt_from_axes():
    xtal = nb.Crystal.from_cell(70, 80, 90, 80, 95, 100, N=5, default_F=10, mosaic_deg=0.7, mosaic_domains=6)
    from nanobrag_torch.lattice import axis_angle_umats, mosaic_axis_angles
    axes, angles = mosaic_axis_angles(xtal.mosaic_umats.numpy())
    assert angles[0] == 0 and np.all(angles[1:] > 0) and np.all(angles <= math.radians(0.7) * (1 + 1e-7))
    rebuilt = axis_angle_umats(torch.tensor(axes), torch.tensor(angles))
    torch.testing.assert_close(rebuilt, xtal.mosaic_umats, rtol=0, atol=1e-15)


def test_readme_python_api_example_runs():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert torch.isfinite(namespace["p"]["cell"].grad).all() and namespace["p"]["cell"].grad.abs().max() > 0
    assert namespace["roi"].shape == (11, 11)
    # its two ways of building describe the same simulation: the same image
    with torch.no_grad():
        from_args, from_objects = namespace["image"], namespace["sim2"].run()
    assert from_args.max() > 10
    torch.testing.assert_close(from_objects, from_args, rtol=1e-10, atol=1e-12 * float(from_args.max()))


@needs_golden
def test_crystal_from_matrix_matches_mat_option(case_dir):
    case_dir("mono_mat")
    xtal = nb.Crystal.from_matrix("mono.mat", wavelength_A=1.3)
    sim = nb.from_args("-mat mono.mat -default_F 50 -lambda 1.3 -N 8 -distance 120 -detpixels 8".split())
    torch.testing.assert_close(xtal.real, sim.crystal.real, rtol=1e-14, atol=0)
    torch.testing.assert_close(xtal.recip, sim.crystal.recip, rtol=1e-14, atol=0)


def test_lattice_parameters_of_a_crystal_given_as_bare_vectors():
    det = nb.Detector.mosflm(distance_mm=80, pixel_mm=0.1, fpixels=24)
    built = nb.Crystal.from_cell(60, 70, 80, 85, 95, 105, misset=(5, -10, 15), N=5, default_F=10)
    bare = nb.Crystal(real=built.real, recip=built.recip, Na=5, Nb=5, Nc=5, default_F=10)
    sim = nb.Simulation(det, bare, nb.Beam.monochromatic(wavelength_A=1.0))
    reference = sim.run()
    p = nb.parameters(sim, "cell", "misset")
    real = built.real * 1e10  # nanoBragg's final rescaling leaves angles slightly off the input cell
    lengths = real.norm(dim=1)
    cosines = [real[i] @ real[j] / (lengths[i] * lengths[j]) for i, j in ((1, 2), (0, 2), (0, 1))]
    expected = torch.cat((lengths, torch.rad2deg(torch.arccos(torch.stack(cosines)))))
    torch.testing.assert_close(p["cell"].detach(), expected, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(sim.run(), reference, rtol=1e-9, atol=1e-9 * float(reference.max()))

