"""-printout (vs the C reference's printed values) and -trace_pixel (vs the image it traces)."""
import io
import json
import re

import numpy as np
import pytest

from nanobrag_torch import cli

from conftest import GOLDEN

OUTS = ["-floatfile", "float.bin", "-intfile", "int.img", "-noprogress", "-nonoise", "-nopgm"]
BASE = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 256 -pixel 0.1".split()
PRINTOUT = ["-printout", "-printout_pixel", "100", "110"]
RICH = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -lambda 1 -N 5 -distance 100 -detpixels 24 "
        "-pixel 0.4 -oversample 2 -detector_thick 50 -detector_thicksteps 2 -detector_abs 200 -phi 0 -osc 0.5 "
        "-phisteps 2 -mosaic 0.5 -mosaic_dom 2 -dispersion 5 -dispsteps 2").split()


def run_cli(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert cli.run(list(args) + OUTS, out=out) == 0
    return out.getvalue(), np.fromfile(tmp_path / "float.bin", dtype="<f4")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """The golden case printout_pixel's arguments plus -trace_pixel 110 100, run once."""
    folder = tmp_path_factory.mktemp("base")
    with pytest.MonkeyPatch.context() as mp:
        return run_cli(folder, mp, BASE + PRINTOUT + ["-trace_pixel", "110", "100"])


def printout_blocks(text):
    """Each pixel's printout block as a list of lines (from 'stol =' to the 'Z:' line)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^\s*\d+\s+\d+ : stol = ", line)]
    return [lines[i:i + 14] for i in starts]


def same_numbers(a, b, rel=1e-6):
    ta, tb = a.split(), b.split()
    if len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb):
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            if x != y:
                return False
            continue
        if not abs(fx - fy) <= rel * max(abs(fx), abs(fy)):
            return False
    return True


def test_printout_matches_c_reference(base_run):
    if not (GOLDEN / "printout_pixel" / "stdout.txt").is_file():
        pytest.skip(f"golden suite not found at {GOLDEN} (set NB_GOLDEN_DIR)")
    case = next(c for c in json.loads((GOLDEN / "cases.json").read_text())["cases"] if c["id"] == "printout_pixel")
    assert case["args"] == BASE + PRINTOUT + OUTS  # base_run adds only -trace_pixel
    ref = printout_blocks((GOLDEN / "printout_pixel" / "stdout.txt").read_text())
    text, _ = base_run
    ours = printout_blocks(text)
    assert len(ref) == 1 and len(ours) == 1
    assert ours[0][-1].startswith("Z:") and ref[0][-1].startswith("Z:")
    for c_line, py_line in zip(ref[0], ours[0]):
        assert same_numbers(c_line, py_line), (c_line, py_line)
    # printed inside the pixel loop in C: before the solid-angle line
    assert text.index(": stol = ") < text.index("solid angle subtended")


def test_printout_every_pixel_of_roi(tmp_path, monkeypatch):
    roi = ["-roi", "3", "6", "2", "4"]
    text, _ = run_cli(tmp_path, monkeypatch, RICH + ["-printout"] + roi)
    blocks = printout_blocks(text)
    order = [tuple(int(x) for x in b[0].split()[:2]) for b in blocks]
    assert order == [(f, s) for s in range(2, 5) for f in range(3, 7)]  # fast, slow in loop order
    single, _ = run_cli(tmp_path, monkeypatch, RICH + ["-printout_pixel", "5", "3"] + roi)
    only = printout_blocks(single)
    assert len(only) == 1 and only[0] == blocks[order.index((5, 3))]


def trace_value(text):
    value = [line for line in text.splitlines() if line.startswith("TRACE_PY: pixel_value ")]
    assert len(value) == 1
    return float(value[0].split()[-1])


def test_trace_final_value_is_the_image_pixel(base_run):
    text, image = base_run
    assert image.reshape(256, 256)[110, 100] != 0
    assert np.float32(trace_value(text)) == image.reshape(256, 256)[110, 100]


@pytest.mark.parametrize("args, slow, fast", [
    (RICH, 7, 11),
    # beam at the corner: interpolation is switched off part-way through the run
    ("-cell 100 100 100 90 90 90 -hkl grid.hkl -lambda 1 -N 2 -distance 100 -detpixels 32 -pixel 0.2 "
     "-Xbeam 0 -Ybeam 0".split(), 2, 2),
])
def test_trace_final_value_is_the_pixel_in_harder_cases(tmp_path, monkeypatch, args, slow, fast):
    with open(tmp_path / "grid.hkl", "w") as handle:
        for h in range(-5, 6):
            for k in range(-5, 6):
                for l in range(-5, 6):
                    handle.write(f"{h} {k} {l} {10 + abs(h * 7 + k * 3 - l * 5)}\n")
    text, image = run_cli(tmp_path, monkeypatch, args + ["-trace_pixel", str(slow), str(fast)])
    n = int(round(image.size ** 0.5))
    assert image.reshape(n, n)[slow, fast] != 0
    assert np.float32(trace_value(text)) == image.reshape(n, n)[slow, fast]


def test_trace_names_every_quantity(base_run):
    text, _ = base_run
    names = {line.split()[1] for line in text.splitlines() if line.startswith("TRACE_PY: ")}
    term = "source[0].phi[0].mosaic[0]."
    required = ["fdet", "sdet", "odet", "pix0", "distance", "close_distance", "Fbeam", "Sbeam", "Fclose", "Sclose"]
    required += ["subpixel[0,0,0]." + q for q in ("position", "diffracted", "airpath", "omega", "capture_fraction")]
    required += ["source[0]." + q for q in ("direction", "lambda", "weight", "scattering", "stol", "polar")]
    required += [term + q for q in ("hkl", "hkl0", "F_cell", "F_latt_a", "F_latt_b", "F_latt_c", "F_latt", "I_term")]
    required += ["I_before_scaling", "steps", "r_e_sqr", "fluence", "omega_applied", "polar_applied",
                 "capture_fraction_applied", "pixel_value"]
    assert not [r for r in required if r not in names]
    assert "TRACE_PY_SOURCE 0:" in text
    pix0 = next(line for line in text.splitlines() if line.startswith("TRACE_PY: pix0 "))
    assert [float(x) for x in pix0.split()[2:]] == [0.1, 0.0129, -0.0129]


def test_trace_values_multiply_to_the_pixel(tmp_path, monkeypatch):
    text, _ = run_cli(tmp_path, monkeypatch, RICH + ["-trace_pixel", "7", "11"])
    vals = {}
    for line in text.splitlines():
        if line.startswith("TRACE_PY: "):
            parts = line.split()
            vals[parts[1]] = [float(x) for x in parts[2:]]
    terms = sum(v[0] for k, v in vals.items() if k.endswith(".I_term"))
    assert terms == pytest.approx(vals["I_before_scaling"][0], rel=1e-12)
    product = (vals["r_e_sqr"][0] * vals["fluence"][0] * vals["I_before_scaling"][0] / vals["steps"][0]
               * vals["omega_applied"][0] * vals["polar_applied"][0] * vals["capture_fraction_applied"][0])
    assert product == pytest.approx(vals["pixel_value"][0], rel=1e-12)
    # 2 layers x 4 sub-pixels x 2 sources x 2 phi x 2 domains terms, each named once
    assert sum(k.endswith(".I_term") for k in vals) == 64


def test_tracing_leaves_the_image_unchanged(tmp_path, monkeypatch):
    _, plain = run_cli(tmp_path, monkeypatch, RICH)
    _, traced = run_cli(tmp_path, monkeypatch, RICH + ["-trace_pixel", "7", "11"])
    assert plain.tobytes() == traced.tobytes()
