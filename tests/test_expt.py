"""DIALS experiment lists: -write_expt then -expt reproduces the image; hand-written files in
DIALS's form (hierarchy, multi-axis goniometer, legacy scan) are read with the geometry worked
out by hand; bad files are one-line errors."""
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from nanobrag_torch import cli
from nanobrag_torch.errors import InputFileError
from nanobrag_torch.io.expt import from_dials, read_expt, to_dials

GOLDEN = Path(os.environ.get("NB_GOLDEN_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "golden"))
CASES = {}
if (GOLDEN / "cases.json").exists():
    CASES = {c["id"]: c for c in json.loads((GOLDEN / "cases.json").read_text())["cases"]}
needs_golden = pytest.mark.skipif(not CASES, reason=f"golden suite not found at {GOLDEN} (set NB_GOLDEN_DIR)")

# options whose values the experiment list carries (with their value counts)
GEOMETRY = {"-cell": 6, "-misset": 3, "-lambda": 1, "-energy": 1, "-distance": 1, "-close_distance": 1,
            "-detpixels": 1, "-detpixels_x": 1, "-detpixels_y": 1, "-detsize": 1, "-pixel": 1, "-Xbeam": 1,
            "-Ybeam": 1, "-Xclose": 1, "-Yclose": 1, "-ORGX": 1, "-ORGY": 1, "-pivot": 1, "-mosflm": 0, "-xds": 0,
            "-dials": 0, "-adxv": 0, "-denzo": 0, "-fdet_vector": 3, "-sdet_vector": 3, "-odet_vector": 3,
            "-beam_vector": 3, "-polar_vector": 3, "-spindle_axis": 3, "-twotheta_axis": 3, "-pix0_vector": 3,
            "-twotheta": 1, "-detector_rotx": 1, "-detector_roty": 1, "-detector_rotz": 1, "-detector_abs": 1,
            "-detector_thick": 1, "-phi": 1, "-osc": 1, "-polar": 1, "-mat": 1}
OUTPUTS = ["-floatfile", "float.bin", "-intfile", "int.img", "-noprogress", "-nonoise", "-nopgm"]

# conventions MOSFLM, XDS, DIALS, CUSTOM, ADXV, two-theta, rotated detector (both pivots), thick
# sensor, phi rotation about another spindle, polarization, misset crystal, MOSFLM matrix
ROUND_TRIP = ["cubic_basic", "conv_xds", "conv_dials", "custom_vectors", "conv_adxv", "xds_twotheta",
              "det_rot_beam", "det_rot_sample", "close_distance", "absorption", "phi_spindle", "polar_half",
              "triclinic_misset", "mono_mat"]


def strip_geometry(args):
    out, i = [], 0
    while i < len(args):
        if args[i] in GEOMETRY:
            i += 1 + GEOMETRY[args[i]]
        elif args[i] in ("-floatfile", "-intfile"):
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def run(argv):
    out = io.StringIO()
    assert cli.run(list(argv), out=out) == 0
    return out.getvalue()


def floats(path):
    return np.fromfile(path, dtype="<f4").astype(np.float64)


@needs_golden
@pytest.mark.parametrize("case_id", ROUND_TRIP)
def test_round_trip_gives_the_same_image(case_id, tmp_path, monkeypatch):
    case = CASES[case_id]
    for name in case["fixtures"]:
        shutil.copy(GOLDEN / "fixtures" / name, tmp_path)
    monkeypatch.chdir(tmp_path)
    args = [a for a in case["args"]] + ["-detpixels", "96"] * ("-detpixels" in case["args"])
    run(_with(args, "first.bin") + ["-write_expt", "run.expt"])
    run(strip_geometry(args) + ["-expt", "run.expt"] + _outputs("second.bin"))
    first, second = floats("first.bin"), floats("second.bin")
    assert first.size == second.size and first.max() > 0
    # vectors cross the frames by signs and places only, lengths m -> mm -> m: bit for bit here
    assert np.array_equal(first, second), np.abs(first - second).max() / first.max()


def _with(args, floatfile):
    """The case's own arguments with our output names."""
    out, i = [], 0
    while i < len(args):
        if args[i] in ("-floatfile", "-intfile"):
            i += 2
            continue
        out.append(args[i])
        i += 1
    return out + _outputs(floatfile)[:2] + ["-intfile", "int.img"]


def _outputs(floatfile):
    return ["-floatfile", floatfile, "-intfile", "int2.img", "-noprogress", "-nonoise", "-nopgm"]


def panel(origin, fast, slow, size=(64, 48), pixel=0.1, **extra):
    return dict({"name": "p", "type": "SENSOR_PAD", "origin": origin, "fast_axis": fast, "slow_axis": slow,
                 "pixel_size": [pixel, pixel], "image_size": list(size), "raw_image_offset": [0, 0],
                 "trusted_range": [-1, 65535], "thickness": 0.0, "material": "", "mu": 0.0, "gain": 1.0,
                 "pedestal": 0.0, "mask": [], "identifier": "", "px_mm_strategy": {"type": "SimplePxMmStrategy"}},
                **extra)


def group(origin, fast, slow, children):
    return {"name": "g", "type": "", "origin": origin, "fast_axis": fast, "slow_axis": slow, "children": children}


def document(detector, crystal=True, goniometer=None, scan=None, beam=None):
    exp = {"__id__": "Experiment", "identifier": "", "beam": 0, "detector": 0}
    doc = {"__id__": "ExperimentList", "experiment": [exp], "imageset": [],
           "beam": [beam or {"__id__": "monochromatic", "direction": [0.0, 0.0, 1.0], "wavelength": 1.5,
                             "divergence": 0.0, "sigma_divergence": 0.0, "polarization_normal": [0.0, 1.0, 0.0],
                             "polarization_fraction": 0.999, "flux": 0.0, "transmission": 1.0}],
           "detector": [detector], "goniometer": [], "scan": [], "crystal": []}
    if crystal:
        exp["crystal"] = 0
        # a 100 A cubic cell with a along DIALS's -z, b along y, c along x: nanoBragg's default setting
        doc["crystal"].append({"__id__": "crystal", "real_space_a": [0.0, 0.0, -100.0],
                               "real_space_b": [0.0, 100.0, 0.0], "real_space_c": [100.0, 0.0, 0.0],
                               "space_group_hall_symbol": " P 1"})
    if goniometer is not None:
        exp["goniometer"], exp["scan"] = 0, 0
        doc["goniometer"].append(goniometer)
        doc["scan"].append(scan)
    return doc


def write(tmp_path, doc, name="hand.expt"):
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=1))
    return path


def test_frames_cross_by_signs_only():
    v = [0.1234567890123, -2.5, 1e-300]
    assert from_dials(to_dials(v)) == v
    assert to_dials([1.0, 0.0, 0.0]) == [0.0, 0.0, -1.0]  # MOSFLM's beam is DIALS's -z


def test_hand_written_single_panel(tmp_path):
    # DIALS's usual frame: beam towards -z, detector 100 mm downstream, fast +x, slow -y,
    # the beam hitting 12.8 mm along fast and 9.6 mm along slow from the panel corner
    det = {"panels": [panel([-12.8, 9.6, -100.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0])]}
    gonio = {"rotation_axis": [1.0, 0.0, 0.0], "fixed_rotation": [1, 0, 0, 0, 1, 0, 0, 0, 1],
             "setting_rotation": [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    scan = {"image_range": [1, 1], "batch_offset": 0,
            "properties": {"oscillation": [10.0], "oscillation_width": [0.5], "epochs": [0.0], "exposure_time": [1.0]}}
    exp = read_expt(write(tmp_path, document(det, goniometer=gonio, scan=scan)))
    p = exp.panels[0]
    # in nanoBragg's frame (x = -z_DIALS, y = y, z = x_DIALS): MOSFLM's fdet (0 0 1), sdet (0 -1 0)
    assert p.fast == [0.0, 0.0, 1.0] and p.slow == [0.0, -1.0, 0.0] and p.normal == [1.0, 0.0, 0.0]
    assert p.origin == pytest.approx([0.1, 0.0096, -0.0128], abs=1e-15)
    assert (p.fpixels, p.spixels, p.pixel_size) == (64, 48, 0.0001)
    assert exp.beam == [1.0, 0.0, 0.0] and exp.wavelength == pytest.approx(1.5e-10, rel=1e-15)
    # E-vector along DIALS's x (a sign that polarization does not see)
    assert exp.kahn == pytest.approx(0.998) and [abs(c) for c in exp.polar_vector] == [0.0, 0.0, 1.0]
    assert exp.spindle == [0.0, 0.0, 1.0]  # DIALS's x axis is MOSFLM's spindle z
    assert exp.phi0 == pytest.approx(math.radians(10.0)) and exp.osc == pytest.approx(math.radians(0.5))
    assert exp.real == [[100.0, 0.0, 0.0], [0.0, 100.0, 0.0], [0.0, 0.0, 100.0]]


def test_hand_written_file_renders_like_the_command_line(tmp_path, monkeypatch):
    det = {"panels": [panel([-3.2, 2.4, -100.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0])]}
    path = write(tmp_path, document(det, beam={"direction": [0.0, 0.0, 1.0], "wavelength": 6.2,
                                               "polarization_normal": [0.0, 1.0, 0.0],
                                               "polarization_fraction": 0.5}))
    monkeypatch.chdir(tmp_path)
    common = ["-default_F", "100", "-N", "5"]
    run(["-expt", str(path)] + common + _outputs("expt.bin"))
    # the same geometry in nanoBragg's words: MOSFLM frame, beam 3.2 mm along fast and 2.4 mm along
    # slow from the corner (MOSFLM's Xbeam is along slow, and it adds half a pixel)
    run(["-cell", "100", "100", "100", "90", "90", "90", "-lambda", "6.2", "-distance", "100", "-pixel", "0.1",
         "-detpixels_x", "64", "-detpixels_y", "48", "-Xbeam", "2.35", "-Ybeam", "3.15"] + common + _outputs("cli.bin"))
    a, b = floats("expt.bin"), floats("cli.bin")
    assert a.max() > 0 and np.abs(a - b).max() <= 1e-9 * b.max()


def test_hierarchy_is_composed_by_hand(tmp_path):
    # root frame: origin (0, 0, -100), fast -x, slow +y, so its normal is -z; group Q0 sits 10 mm
    # along the root's fast axis; panel 0 sits in Q0 at (0, 5, 1) with fast = Q0's slow and
    # slow = -(Q0's fast); panel 1 hangs from the root directly at (5, 5, 0)
    q0 = group([10.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [{"panel": 0}])
    root = group([0.0, 0.0, -100.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [q0, {"panel": 1}])
    det = {"hierarchy": root, "panels": [panel([0.0, 5.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]),
                                         panel([5.0, 5.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])]}
    exp = read_expt(write(tmp_path, document(det)))
    p0, p1 = exp.panels
    # panel 0 in DIALS's lab: origin (-10, 5, -101), fast +y, slow +x
    assert p0.origin == pytest.approx(from_dials([-0.010, 0.005, -0.101]), abs=1e-15)
    assert p0.fast == from_dials([0.0, 1.0, 0.0]) and p0.slow == from_dials([1.0, 0.0, 0.0])
    # panel 1: origin (-5, 5, -100), fast -x, slow +y
    assert p1.origin == pytest.approx(from_dials([-0.005, 0.005, -0.100]), abs=1e-15)
    assert p1.fast == from_dials([-1.0, 0.0, 0.0]) and p1.slow == from_dials([0.0, 1.0, 0.0])
    # both normals point away from the sample, whatever fast x slow says
    assert p0.normal == pytest.approx([1.0, 0.0, 0.0]) and p1.normal == pytest.approx([1.0, 0.0, 0.0])


def test_multi_axis_goniometer_and_legacy_scan(tmp_path):
    # kappa-like: omega (scan axis, index 2) outermost; chi = 90 degrees about -z turns the
    # crystal before the scan: a (DIALS -z) stays, b (DIALS +y) goes to +x, c (+x) to -y
    gonio = {"axes": [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]], "angles": [0.0, 90.0, 0.0],
             "names": ["phi", "chi", "omega"], "scan_axis": 2}
    scan = {"image_range": [1, 1], "oscillation": [-5.0, 0.25]}
    det = {"panels": [panel([-3.2, 2.4, -100.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0])]}
    exp = read_expt(write(tmp_path, document(det, goniometer=gonio, scan=scan)))
    assert exp.spindle == pytest.approx(from_dials([1.0, 0.0, 0.0]))
    assert exp.real[0] == pytest.approx(from_dials([0.0, 0.0, -100.0]), abs=1e-12)
    assert exp.real[1] == pytest.approx(from_dials([100.0, 0.0, 0.0]), abs=1e-12)
    assert exp.real[2] == pytest.approx(from_dials([0.0, -100.0, 0.0]), abs=1e-12)
    assert exp.phi0 == pytest.approx(math.radians(-5.0)) and exp.osc == pytest.approx(math.radians(0.25))


def test_options_override_the_file(tmp_path, monkeypatch):
    import nanobrag_torch as nb

    det = {"panels": [panel([-3.2, 2.4, -100.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0])]}
    path = write(tmp_path, document(det))
    base = nb.from_args(["-expt", str(path), "-default_F", "1"])
    moved = nb.from_args(["-expt", str(path), "-default_F", "1", "-distance", "150", "-lambda", "2"])
    g0, g1 = base.detector.geometry(), moved.detector.geometry()
    assert float(g0["distance"]) == pytest.approx(0.100, abs=1e-15)
    assert float(g1["distance"]) == pytest.approx(0.150, abs=1e-15)
    # -distance pivots about the beam spot, which stays where the file put it
    assert float(g1["Fbeam"]) == pytest.approx(0.0032, abs=1e-15)
    assert float(g1["Sbeam"]) == pytest.approx(0.0024, abs=1e-15)
    assert moved.settings.lambda0 == pytest.approx(2e-10) and base.settings.lambda0 == pytest.approx(1.5e-10)


@pytest.mark.parametrize("text,needle", [
    ("{not json", "not a JSON experiment list"),
    (json.dumps({"experiment": []}), "no 'experiment' list"),
    (json.dumps(document({"panels": [panel([0, 0, -100], [1, 0, 0], [0, 1, 0], pixel=0.1)
                                     | {"pixel_size": [0.1, 0.2]}]})),
     "must be square"),
    (json.dumps(document({"panels": [{"origin": [0, 0, -100], "fast_axis": [1, 0, 0]}]})), "missing key 'slow_axis'"),
    (json.dumps(document({"panels": [panel([0, 0, "x"], [1, 0, 0], [0, 1, 0])]})), "'origin' must be 3 finite numbers"),
])
def test_bad_files_are_one_line_errors(tmp_path, capsys, text, needle):
    path = tmp_path / "bad.expt"
    path.write_text(text)
    with pytest.raises(InputFileError, match=needle):
        read_expt(path)
    assert cli.main(["-expt", str(path), "-default_F", "1", "-floatfile", str(tmp_path / "f.bin")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and str(path) in err[0]
    assert not (tmp_path / "f.bin").exists()


@needs_golden
def test_pix0_vector_note(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = list(CASES["custom_vectors"]["args"]) + ["-detpixels", "32"]
    assert cli.main(args) == 0
    assert "-pix0_vector has no effect" in capsys.readouterr().err


DATASET = ["-cell", "70", "80", "90", "75", "85", "95", "-default_F", "100", "-N", "3", "-lambda", "1.0",
           "-distance", "100", "-detpixels", "24", "-pixel", "0.4", "-nonoise", "-nopgm", "-noprogress", "-seed", "3",
           "-misset_seed", "11"]


def test_dataset_stills_write_one_experiment_per_still(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(DATASET + ["-stills", "3", "-smv", "shot", "-write_expt", "stills.expt"]) == 0
    doc = json.loads((tmp_path / "stills.expt").read_text())
    assert len(doc["experiment"]) == 3 and len(doc["crystal"]) == 3 and not doc["scan"]
    for k in range(3):
        # still k's orientation is that of the single run the dataset's frame k stands for
        assert cli.main(DATASET + ["-stills", "3", "-frame", str(k), "-write_expt", f"one{k}.expt",
                                   "-floatfile", "f.bin", "-intfile", "i.img"]) == 0
        single = json.loads((tmp_path / f"one{k}.expt").read_text())["crystal"][0]
        mine = doc["crystal"][doc["experiment"][k]["crystal"]]
        assert [mine[f"real_space_{x}"] for x in "abc"] == [single[f"real_space_{x}"] for x in "abc"]
    assert doc["crystal"][0]["real_space_a"] != doc["crystal"][1]["real_space_a"]


def test_dataset_rotation_writes_one_scan(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(DATASET + ["-phi", "10", "-osc", "0.5", "-frames", "3", "-smv", "rot",
                               "-write_expt", "rot.expt"]) == 0
    exp = read_expt(tmp_path / "rot.expt")
    assert exp.images == 3
    assert exp.phi0 == pytest.approx(math.radians(10.0)) and exp.osc == pytest.approx(math.radians(0.5))
    scan = json.loads((tmp_path / "rot.expt").read_text())["scan"][0]
    assert scan["image_range"] == [1, 3]
    assert scan["properties"]["oscillation"] == pytest.approx([10.0, 10.5, 11.0])


def test_a_scan_of_several_images_renders_as_a_series(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(DATASET + ["-phi", "10", "-osc", "0.5", "-frames", "3", "-smv", "rot",
                               "-write_expt", "rot.expt"]) == 0
    keep = ["-default_F", "100", "-N", "3", "-nonoise", "-nopgm", "-noprogress", "-seed", "3"]
    assert cli.main(["-expt", "rot.expt"] + keep + ["-floatfile", "first.bin", "-intfile", "first.img"]) == 0
    assert "its scan has 3 images; this run simulates the first" in capsys.readouterr().err
    assert cli.main(["-expt", "rot.expt"] + keep + ["-frames", "3", "-smv", "again"]) == 0
    from nanobrag_torch.io.smv import read_smv
    for k in range(1, 4):
        names = sorted(p.name for p in tmp_path.glob(f"*{k:05d}*"))
        assert len(names) == 2, names
        a, b = (np.asarray(read_smv(tmp_path / n).data) for n in names)
        assert np.array_equal(a, b)


def test_hierarchy_file_renders_like_its_flat_panels(tmp_path, monkeypatch):
    # the hierarchy of test_hierarchy_is_composed_by_hand, and each panel alone in the lab frame
    q0 = group([10.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [{"panel": 0}])
    root = group([0.0, 0.0, -100.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [q0, {"panel": 1}])
    det = {"hierarchy": root, "panels": [panel([0.0, 5.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]),
                                         panel([5.0, 5.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])]}
    write(tmp_path, document(det), "tree.expt")
    write(tmp_path, document({"panels": [panel([-10.0, 5.0, -101.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0])]}), "p0.expt")
    write(tmp_path, document({"panels": [panel([-5.0, 5.0, -100.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0])]}), "p1.expt")
    monkeypatch.chdir(tmp_path)
    for name in ("tree", "p0", "p1"):
        run(["-expt", f"{name}.expt", "-default_F", "100", "-N", "5"] + _outputs(f"{name}.bin"))
    tree, p0, p1 = floats("tree.bin"), floats("p0.bin"), floats("p1.bin")
    assert p0.max() > 0 and p1.max() > 0
    assert np.array_equal(tree, np.concatenate((p0, p1)))


def test_space_group_is_carried_while_the_crystal_is_the_files(tmp_path, monkeypatch):
    import nanobrag_torch as nb

    doc = document({"panels": [panel([-3.2, 2.4, -100.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0])]})
    doc["crystal"][0]["space_group_hall_symbol"] = " P 4 2"
    write(tmp_path, doc, "sg.expt")
    monkeypatch.chdir(tmp_path)
    keep = ["-default_F", "100", "-N", "5"]
    run(["-expt", "sg.expt"] + keep + _outputs("a.bin") + ["-write_expt", "same.expt"])
    run(["-expt", "sg.expt", "-cell", "50", "50", "50", "90", "90", "90"] + keep + _outputs("b.bin")
        + ["-write_expt", "other.expt"])
    assert nb.read_expt("same.expt").space_group == " P 4 2"
    assert nb.read_expt("other.expt").space_group == " P 1"
    assert nb.read_expt("other.expt").real[0] == pytest.approx([50.0, 0.0, 0.0])


def test_pix0_vector_is_honoured_under_compat_fixed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    frame = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2", "-N", "5",
             "-detpixels", "64", "-pixel", "0.1", "-fdet_vector", "0", "0", "1", "-sdet_vector", "0", "-1", "0",
             "-odet_vector", "1", "0", "0", "-beam_vector", "1", "0", "0"]
    # corner at (0.1, 0.005, -0.02) m: the beam meets the panel 20 mm along fast and 5 mm along slow
    pix0 = ["-pix0_vector", "0.1", "0.005", "-0.02"]
    assert cli.main(frame + pix0 + ["-compat", "fixed"] + _outputs("fixed.bin")) == 0
    assert "-pix0_vector has no effect" not in capsys.readouterr().err
    assert cli.main(frame + pix0 + _outputs("ignored.bin")) == 0
    assert "-pix0_vector has no effect" in capsys.readouterr().err
    assert cli.main(frame + ["-Xbeam", "20", "-Ybeam", "5", "-distance", "100"] + _outputs("beam.bin")) == 0
    fixed, ignored, beam = floats("fixed.bin"), floats("ignored.bin"), floats("beam.bin")
    assert np.array_equal(fixed, beam) and fixed.max() > 0
    assert not np.array_equal(ignored, beam)  # without -compat fixed the detector stays centred
