"""-compat c|fixed: nanoBragg.c's reading of source and HKL files (against its own images), the notes
that say when nanoBragg.c would differ, and -compat fixed's true phi = 0 rotation."""
import gzip
import io
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import nanobrag_torch.api as nb
from nanobrag_torch import cli, compat
from nanobrag_torch.io import hkl as hkl_io

from conftest import cli_in

_GOLDEN = Path(os.environ.get("NB_GOLDEN_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "golden"))
SUITE = Path(os.environ.get("NB_GOLDEN_COMPAT_DIR", _GOLDEN.parent / "golden_compat"))
MISSING = f"-compat golden suite not found at {SUITE} (set NB_GOLDEN_COMPAT_DIR)"


def _cases():
    try:
        return json.loads((SUITE / "cases.json").read_text())["cases"]
    except FileNotFoundError:
        return []


CASES = [pytest.param(c, id=c["id"]) for c in _cases()] or \
    [pytest.param(None, id="compat-suite-missing", marks=pytest.mark.skip(reason=MISSING))]
TINY = ["-cell", "30", "30", "30", "90", "90", "90", "-default_F", "100", "-distance", "50", "-lambda", "1",
        "-detpixels", "12", "-pixel", "0.5", "-noprogress", "-nonoise", "-nopgm", "-floatfile", "float.bin",
        "-intfile", "int.img"]
WEIGHTED = "# Weighted two-source fixture\n# X Y Z weight wavelength(m)\n0 0 10 1.0 1e-10\n0 0 10 0.2 1e-10\n"
PLAIN = "0 0 10 1.0 1e-10\n0 0 10 1.0 1e-10\n"


def _golden(case_id, name):
    with gzip.open(SUITE / case_id / f"{name}.gz", "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("case", CASES)
def test_golden_compat_case(case, tmp_path, monkeypatch):
    """parity.py --files on ../golden_compat: float image within 1e-6, SMV pixels identical; and
    the printed report equals nanoBragg.c's, line for line."""
    for name in case["fixtures"]:
        shutil.copy(SUITE / "fixtures" / name, tmp_path)
    monkeypatch.chdir(tmp_path)
    # C's reading of phase.hkl spans a 455x494x471 index range: its Fdump.bin (850 MB, not part of
    # the comparison) is left unwritten here to spare the disk
    written = []
    monkeypatch.setattr(hkl_io, "write_fdump", lambda path, grid: written.append((path, grid.F.shape)))
    out = io.StringIO()
    assert cli.run(case["args"], out=out) == 0
    ours = np.fromfile("float.bin", dtype="<f4").astype(np.float64)
    ref = np.frombuffer(_golden(case["id"], "float.bin"), dtype="<f4").astype(np.float64)
    assert ours.size == ref.size and np.all(np.isfinite(ours))
    scale = np.abs(ref).max() or 1.0
    assert np.abs(ours - ref).max() / scale <= 1e-6
    if ref.std() > 0:
        assert np.corrcoef(ours, ref)[0, 1] >= 0.999999
    assert Path("int.img").read_bytes()[512:] == _golden(case["id"], "int.img")[512:]
    assert out.getvalue() == (SUITE / case["id"] / "stdout.txt").read_text()
    assert written == ([] if "-hkl" not in case["args"] else [("Fdump.bin", written[0][1])])


def _main(folder, argv, capsys):
    status, captured = cli_in(folder, argv, capsys)
    return status, captured.err


def _notes(err):
    return [line for line in err.splitlines() if line.startswith("nanoBragg: note: ")]


@pytest.mark.parametrize("text, expected", [
    (WEIGHTED, ["count 4 sources (2 from comment lines)", "ignore the weights", "-compat c"]),
    ("# one comment\n0 0 10 1 1e-10\n", ["count 2 sources (1 from comment lines)", "-compat c"]),
    ("0 0 10 1.0 1e-10\n0 0 10 0.5 1e-10\n", ["ignore the weights", "-compat c"]),
    (PLAIN, None),
])
def test_source_file_note(tmp_path, capsys, text, expected):
    (tmp_path / "src.txt").write_text(text)
    status, err = _main(tmp_path, TINY + ["-sourcefile", "src.txt"], capsys)
    assert status == 0, err
    notes = _notes(err)
    if expected is None:
        assert notes == []
        return
    assert len(notes) == 1 and "src.txt" in notes[0]
    for needle in expected:
        assert needle in notes[0]
    # asking for C's reading: no note
    assert _notes(_main(tmp_path, TINY + ["-sourcefile", "src.txt", "-compat", "c"], capsys)[1]) == []


@pytest.mark.parametrize("text, expected", [
    ("0 0 0 10 5\n1 0 0 20 6\n", "four numbers at a time"),
    ("# a comment\n0 0 0 10\n", "first comment"),
    ("0 0 0 10\n1 0 0 20\n", None),
    ("0 0 0 10\n1 0 0 20\n# a comment after the data\n", None),
])
def test_hkl_file_note(tmp_path, capsys, text, expected):
    (tmp_path / "f.hkl").write_text(text)
    status, err = _main(tmp_path, TINY + ["-hkl", "f.hkl", "-nointerpolate"], capsys)
    assert status == 0, err
    notes = _notes(err)
    assert notes == [] if expected is None else (len(notes) == 1 and expected in notes[0] and "f.hkl" in notes[0])


@pytest.mark.parametrize("text", [
    "0 0 0 10\n1 0 0 20\n", "  0\t0 0 10\r\n\n1 0 0 20", "0 0 0 10 5\n1 0 0 20\n", "0 0 0 10\n1 0 0 20 x y\n",
    "0 0 0 10\x1c\n1 0 0 20\n", "0 0 0 10\x01\n1 0 0 20\n", "0\x0b0 0\x0c10\n\n   \n1 0 0 20\n",
])
def test_hkl_word_count_agrees_with_the_line_count(text):
    """The quick test (four words a line, from the total) never says yes wrongly, and says yes for
    plain text; a control character sends it to the line-by-line count."""
    rows = sum(1 for line in text.split("\n") if line.split())
    four = compat._column_counts(text) == {4}
    quick = compat._all_four_columns(text, rows)
    assert quick == (four and "\x01" not in text)


def test_c_reading_of_source_lines(tmp_path):
    """read_text_file's rules: a comment reads as zeros (a number just before the newline is read),
    a missing column is left to the defaults (NaN), a line without its newline or with a CR gets 0
    in the columns after its last word, blank lines are skipped."""
    path = tmp_path / "s.txt"
    path.write_bytes(b"# comment words here\n\n  \n1 2 3\n# see fig 2\n4,5;6 7 8\r\n9 10")
    rows = compat.read_sources_c(path)
    nan = math.nan
    expected = [[0, 0, 0, 0, 0], [1, 2, 3, nan, nan], [0, 0, 0, 2, nan], [4, 5, 6, 7, 8], [9, 10, 0, 0, 0]]
    np.testing.assert_array_equal(rows, np.array(expected, dtype=float))


def test_c_reading_of_hkl_stream(tmp_path):
    """fscanf's reading: four numbers at a time across lines; ranges from every value read; values
    stored until an index is not written as an integer; reading stops at a non-number."""
    path = tmp_path / "f.hkl"
    path.write_text("0 0 0 10 1\n0 0 20 2 0\n0 30 4.5\n# stop\n1 1 1 99\n")
    grid = compat.read_hkl_c(path, default_F=0.0)
    # tuples: (0 0 0 10) (1 0 0 20) (2 0 0 30) (4.5 ...) -> only three whole tuples are read
    assert grid.count == 3 and (grid.h_min, grid.h_max) == (0, 2)
    assert grid.F[0, 0, 0] == 10 and grid.F[1, 0, 0] == 20 and grid.F[2, 0, 0] == 30
    path.write_text("0 0 0 10\n1.5 0 0 20\n1 0 0 30\n")
    grid = compat.read_hkl_c(path, default_F=7.0)
    # the range includes h = 1.5 (truncated to 1) but the second reading stops at '1.5'
    assert grid.count == 3 and grid.h_max == 1 and grid.F[0, 0, 0] == 10 and grid.F[1, 0, 0] == 7.0


def test_compat_option_is_checked(tmp_path, capsys):
    status, err = _main(tmp_path, TINY + ["-compat", "python"], capsys)
    assert status == 2 and "-compat" in err and "python" in err


PHI = ["-osc", "1", "-phisteps", "10", "-N", "5", "-misset", "10", "20", "30", "-oversample", "1"]


def test_fixed_phi_zero_equals_a_tiny_nonzero_phi(tmp_path, capsys):
    """-compat fixed renders the phi = 0 step at phi = 0: the image equals the default run at
    phi = 1e-9 deg (where nanoBragg.c does rotate) to 1e-6, while the default run at phi = 0 differs."""
    images = {}
    for key, extra in (("fixed", ["-phi", "0", "-compat", "fixed"]), ("tiny", ["-phi", "1e-9"]),
                       ("default", ["-phi", "0"])):
        status, err = _main(tmp_path, TINY + PHI + extra, capsys)
        assert status == 0, err
        images[key] = np.fromfile(tmp_path / "float.bin", dtype="<f4").astype(np.float64)
    scale = np.abs(images["tiny"]).max()
    assert np.abs(images["fixed"] - images["tiny"]).max() <= 1e-6 * scale
    assert np.abs(images["default"] - images["tiny"]).max() > 1e-3 * scale


@pytest.mark.parametrize("extra, noted", [(["-phi", "0"], True), (["-phi", "0", "-compat", "fixed"], False),
                                          (["-phi", "0", "-compat", "c"], False), (["-phi", "0.5"], False)])
def test_phi_zero_note(tmp_path, capsys, extra, noted):
    status, err = _main(tmp_path, TINY + PHI + extra, capsys)
    assert status == 0, err
    notes = _notes(err)
    assert len(notes) == noted
    if noted:
        assert "phi = 0" in notes[0] and "-compat fixed" in notes[0] and "phi = 0.9 deg" in notes[0]


def test_api_states_its_mode_and_keeps_it(tmp_path, monkeypatch):
    """A differentiable phi0 keeps the mode's phi = 0 rule, and so does release()."""
    monkeypatch.chdir(tmp_path)
    args = TINY[:-4] + PHI + ["-phi", "0"]
    sim = nb.from_args(args)
    assert sim.compat == "default" and sim.phi_zero_quirk_active()
    before = sim.run().detach()
    p = nb.parameters(sim, "phi0")
    assert sim.compat == "default" and sim.phi_zero_quirk_active()
    during = sim.run()
    during.sum().backward()
    assert torch.isfinite(p["phi0"].grad)
    nb.release(sim)
    assert sim.phi_zero_quirk_active()
    torch.testing.assert_close(during.detach(), before, rtol=1e-12, atol=0)
    torch.testing.assert_close(sim.run(), before, rtol=1e-12, atol=0)
    fixed = nb.from_args(args + ["-compat", "fixed"])
    assert fixed.compat == "fixed" and not fixed.phi_zero_quirk_active()
    nb.parameters(fixed, "phi0")
    assert fixed.compat == "fixed" and not fixed.phi_zero_quirk_active()
    assert not torch.allclose(fixed.run().detach(), before)


def test_trace_shows_phantom_sources(tmp_path, monkeypatch):
    (tmp_path / "src.txt").write_text(WEIGHTED)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert cli.run(TINY + ["-sourcefile", "src.txt", "-compat", "c", "-trace_pixel", "3", "4"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert sum(line.startswith("TRACE_PY_SOURCE ") for line in lines) == 4
    assert "TRACE_PY: source[0].lambda 0" in lines and "TRACE_PY: source[1].lambda 0" in lines
    value = float(next(line for line in lines if line.startswith("TRACE_PY: pixel_value")).split()[-1])
    image = np.fromfile("float.bin", dtype="<f4").reshape(12, 12)
    assert np.float32(value) == image[3, 4]


C_BIN = os.environ.get("NB_C_BIN", "")


@pytest.mark.skipif(not os.path.isfile(C_BIN),
                    reason="C reference program not found (set NB_C_BIN to nanoBragg.c's build)")
@pytest.mark.parametrize("extra", [[], ["-N", "3"], ["-polar", "0.8"], ["-dmin", "3", "-N", "3"],
                                   ["-oversample", "2", "-oversample_polar"], ["-tophat_spots", "-N", "2"],
                                   ["-phi", "0", "-osc", "2", "-phisteps", "3"]],
                         ids=["N1", "N3-nan", "kahn", "dmin", "oversample_polar", "tophat", "phi"])
def test_phantom_sources_like_c(tmp_path, extra):
    """Sources from comment lines take part in every factor as in nanoBragg.c (polarization from the
    first source, NaN lattice factors, the dmin cut): same pixels, NaN where C has NaN."""
    import subprocess

    (tmp_path / "src.txt").write_text(WEIGHTED)
    argv = TINY[:-4] + extra + ["-sourcefile", "src.txt", "-nointerpolate", "-intfile", "int.img"]
    subprocess.run([C_BIN, *argv, "-floatfile", "c.bin"], cwd=tmp_path, capture_output=True, check=True, timeout=60)
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli.run(argv + ["-floatfile", "py.bin", "-compat", "c"], out=io.StringIO()) == 0
    finally:
        os.chdir(old)
    c, py = (np.fromfile(tmp_path / name, dtype="<f4").astype(np.float64) for name in ("c.bin", "py.bin"))
    assert np.array_equal(np.isnan(c), np.isnan(py))
    finite = np.isfinite(c)
    if finite.any():
        assert np.abs(c[finite] - py[finite]).max() <= 1e-6 * np.abs(c[finite]).max()


def test_fixed_interpolation_does_not_depend_on_pixel_order(tmp_path, monkeypatch):
    """nanoBragg.c switches tricubic interpolation off for the rest of the run at the first term
    that leaves the grid; -compat fixed falls back to the nearest value for such terms only, so a
    pixel rendered alone equals the same pixel of the whole image."""
    monkeypatch.chdir(tmp_path)
    with open("grid.hkl", "w") as handle:
        handle.writelines(f"{h} {k} {l} {10 + abs(h * 7 + k * 3 - l * 5)}\n"
                          for h in range(-3, 4) for k in range(-3, 4) for l in range(-3, 4))
    args = ["-cell", "30", "30", "30", "90", "90", "90", "-hkl", "grid.hkl", "-N", "2", "-lambda", "1",
            "-distance", "40", "-detpixels", "16", "-pixel", "1", "-oversample", "1", "-Xbeam", "3", "-Ybeam", "3"]
    default, fixed = nb.from_args(args), nb.from_args(args + ["-compat", "fixed"])
    assert default.crystal.interpolate and fixed.crystal.interpolate
    with torch.no_grad():
        image_d, image_f = default.run(), fixed.run()
        assert default.stats["interpolation_warning"] is not None  # C's switch-off happened
        assert fixed.stats["interpolation_warning"] is None
        for s, f in ((0, 0), (2, 3), (15, 15), (9, 4)):
            torch.testing.assert_close(fixed.roi_image((s, s), (f, f))[0, 0], image_f[s, f], rtol=1e-12, atol=0)
        alone = torch.stack([default.roi_image((s, s), (f, f))[0, 0] for s, f in ((2, 3), (3, 3), (3, 2))])
    ordered = torch.stack([image_d[s, f] for s, f in ((2, 3), (3, 3), (3, 2))])
    assert not torch.allclose(alone, ordered)  # in default mode the order matters


def test_each_note_is_printed_once_per_run(tmp_path, capsys, monkeypatch):
    """A model built several times in one run (a dataset's frames) shows each note once."""
    from nanobrag_torch import setup

    (tmp_path / "src.txt").write_text(WEIGHTED)
    build = setup.build

    def twice(v, *args, **kwargs):
        build(v, *args, **kwargs)
        return build(v, *args, **kwargs)
    monkeypatch.setattr(setup, "build", twice)
    status, err = _main(tmp_path, TINY + ["-sourcefile", "src.txt"], capsys)
    assert status == 0, err
    assert len(_notes(err)) == 1


@pytest.mark.parametrize("flag", ["-oversample_polar", "-oversample_omega"])
def test_fixed_oversample_flags_weight_each_term(tmp_path, capsys, flag):
    """nanoBragg.c's -oversample_* rules multiply the running sum by each term's factor; -compat fixed
    weights each term by its own. With one sub-pixel, layer and source the factor is the same for
    every phi step, so -compat fixed with the flag equals the run without it, and C's rule does not.
    (A thick sensor always has two or more layers, whose capture fractions differ.)"""
    argv = TINY + ["-oversample", "1", "-phi", "0.5", "-osc", "3", "-phisteps", "3", "-N", "3", "-polar", "0.5"]
    images = {}
    for key, extra in (("plain", []), ("fixed", [flag, "-compat", "fixed"]), ("c_rule", [flag])):
        status, err = _main(tmp_path, argv + extra, capsys)
        assert status == 0, err
        images[key] = np.fromfile(tmp_path / "float.bin", dtype="<f4").astype(np.float64)
    scale = np.abs(images["plain"]).max()
    assert scale > 0
    assert np.abs(images["fixed"] - images["plain"]).max() <= 1e-6 * scale
    assert np.abs(images["c_rule"] - images["plain"]).max() > 1e-3 * scale
