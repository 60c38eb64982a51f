"""Bad input ends with one line naming the culprit, the documented exit status, no traceback,
and no output file written or clobbered."""
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nanobrag_torch import cli
from nanobrag_torch.simulator import Simulation

from conftest import cli_in

SRC = Path(__file__).resolve().parents[1] / "src"
OUTPUTS = ["-floatfile", "f.bin", "-intfile", "i.img", "-noisefile", "n.img", "-pgmfile", "p.pgm"]
CELL = ["-cell", "50", "50", "50", "90", "90", "90"]
TINY = ["-detpixels", "16", "-noprogress"]
BASE = CELL + ["-default_F", "10"] + TINY + OUTPUTS
USAGE, FILE = 2, 1


def smv(width, height, extra=0, pixel="0.1"):
    header = ("{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
              f"SIZE1={width};\nSIZE2={height};\nPIXEL_SIZE={pixel};\nDISTANCE=100;\nWAVELENGTH=1;\n}}\f").encode()
    return header.ljust(512, b" ") + b"\1\0" * (width * height) + b"\0" * extra


FIXTURES = {
    "good.hkl": b"0 0 0 10\n1 0 0 5\n",
    "nonnum.hkl": b"0 0 0 10\n1 a 0 5\n",
    "few.hkl": b"0 0 0 10\n1 0 5\n",
    "frac.hkl": b"0 0 0.5 10\n",
    "empty.hkl": b"",
    "short.mat": b"0.01 0 0\n0 0.01 0\n",
    "sing.mat": b"0.01 0 0\n0.01 0 0\n0 0 0.01\n",
    "text.mat": b"0.01 0 0\n0 zero 0\n0 0 0.01\n",
    "bad.src": b"-10 0 0 1 1e-10\nfoo bar\n",
    "notsmv.img": b"hello world\n" * 60,
    "trunc.img": smv(16, 16)[:-10],
    "long.img": smv(16, 16, extra=6),
    "small_mask.img": smv(8, 8),
    "zero_pixel.img": smv(16, 16, pixel="0"),
    "bad.stol": b"0.1 2\nxx yy\n",
    "one.stol": b"0.1\n0.2\n",
    "Fdump_corrupt/Fdump.bin": b"0 1 0 1 0 1\n\f" + b"\0" * 10,
}

# (id, argv, exit status, substrings the message must contain)
CASES = [
    # unreadable or malformed input files (exit 1, message names the file and line)
    ("hkl-missing", BASE + ["-hkl", "missing.hkl"], FILE, ["missing.hkl", "cannot read"]),
    ("hkl-folder", BASE + ["-hkl", "adir"], FILE, ["adir", "cannot read"]),
    ("hkl-name-with-newline", BASE + ["-hkl", "two\nlines.hkl"], FILE, ["two\\nlines.hkl"]),
    ("hkl-non-numeric", BASE + ["-hkl", "nonnum.hkl"], FILE, ["nonnum.hkl line 2", "non-numeric"]),
    ("hkl-few-columns", BASE + ["-hkl", "few.hkl"], FILE, ["few.hkl line 2", "h k l F"]),
    ("hkl-fractional-index", BASE + ["-hkl", "frac.hkl"], FILE, ["frac.hkl line 1", "non-integer"]),
    ("hkl-empty", BASE + ["-hkl", "empty.hkl"], FILE, ["empty.hkl", "no reflections"]),
    ("mat-missing", BASE[7:] + ["-mat", "missing.mat"], FILE, ["missing.mat", "cannot read"]),
    ("matrix-missing", BASE[7:] + ["-matrix", "missing.mat"], FILE, ["missing.mat"]),
    ("mat-too-few-numbers", BASE[7:] + ["-mat", "short.mat"], FILE, ["short.mat", "9 numbers, found 6"]),
    ("mat-singular", BASE[7:] + ["-mat", "sing.mat"], FILE, ["sing.mat", "singular"]),
    ("mat-non-numeric", BASE[7:] + ["-mat", "text.mat"], FILE, ["text.mat line 2", "zero"]),
    ("sourcefile-missing", BASE + ["-sourcefile", "missing.src"], FILE, ["missing.src", "cannot read"]),
    ("sourcefile-non-numeric", BASE + ["-hkl", "good.hkl", "-sourcefile", "bad.src"], FILE,
     ["bad.src line 2", "foo"]),
    ("img-missing", BASE + ["-img", "missing.img"], FILE, ["missing.img", "cannot read"]),
    ("mask-missing", BASE + ["-mask", "missing.img"], FILE, ["missing.img", "cannot read"]),
    ("img-not-smv", BASE + ["-img", "notsmv.img"], FILE, ["notsmv.img", "not an SMV"]),
    ("mask-truncated", BASE + ["-mask", "trunc.img"], FILE, ["trunc.img", "truncated"]),
    ("img-size-mismatch", BASE + ["-img", "long.img"], FILE, ["long.img", "SIZE1/SIZE2 disagree"]),
    ("mask-smaller-than-detector", BASE + ["-mask", "small_mask.img", "-detpixels", "16"], FILE,
     ["small_mask.img", "8x8", "16x16"]),
    ("stol-missing", BASE + ["-stol", "missing.stol"], FILE, ["missing.stol", "cannot read"]),
    ("stol-non-numeric", BASE + ["-hkl", "good.hkl", "-stol", "bad.stol"], FILE, ["bad.stol line 2"]),
    ("4stol-one-column", BASE + ["-4stol", "one.stol"], FILE, ["one.stol line 1", "stol F"]),
    ("dump-unreadable", BASE + ["-dump", "adir"], FILE, ["adir", "cannot read"]),
    ("fdump-corrupt", BASE + ["-dump", "Fdump_corrupt/Fdump.bin"], FILE, ["corrupt", "Fdump.bin", "header implies"]),
    ("output-folder-missing", BASE + ["-floatfile", "nodir/f.bin"], FILE, ["nodir/f.bin", "does not exist"]),
    ("output-is-folder", BASE + ["-intfile", "adir"], FILE, ["adir", "folder"]),
    ("output-folder-name", BASE + ["-pgmfile", "nodir/"], FILE, ["nodir/", "folder"]),
    ("output-name-empty", BASE + ["-noiseimage", ""], USAGE, ["-noisefile", "empty file name"]),
    # nothing to scatter from
    ("no-structure-factors", CELL + TINY + OUTPUTS, USAGE, ["-hkl", "-default_F"]),
    ("no-structure-factors-dump-missing", CELL + TINY + OUTPUTS + ["-dump", "missing.bin"], USAGE,
     ["-default_F", "no missing.bin to reuse"]),
    ("no-crystal", ["-default_F", "10"] + TINY + OUTPUTS, USAGE, ["-cell", "-mat"]),
    # command-line misuse (exit 2, message names the option)
    ("lambda-missing-value", BASE + ["-lambda"], USAGE, ["-lambda", "missing value"]),
    ("hkl-missing-name", BASE + ["-hkl", "-lambda", "1"], USAGE, ["-hkl", "missing file name"]),
    ("distance-non-numeric", BASE + ["-distance", "abc"], USAGE, ["-distance", "'abc'"]),
    ("lambda-nan", BASE + ["-lambda", "nan"], USAGE, ["-lambda", "finite"]),
    ("lambda-inf", BASE + ["-lambda", "inf"], USAGE, ["-lambda", "finite"]),
    ("distance-overflow", BASE + ["-distance", "1e999"], USAGE, ["-distance", "finite"]),
    ("N-not-integer", BASE + ["-N", "1.5"], USAGE, ["-N", "integer"]),
    ("N-exponent", BASE + ["-N", "1e3"], USAGE, ["-N", "integer", "1e3"]),
    ("N-underscore", BASE + ["-N", "1_0"], USAGE, ["-N", "1_0"]),
    ("detpixels-out-of-int-range", BASE + ["-detpixels", "3000000000"], USAGE, ["-detpixels", "out of range"]),
    ("misset-missing-values", BASE + ["-misset", "1", "2"], USAGE, ["-misset", "expected 3 values", "got 2"]),
    ("roi-missing-values", BASE + ["-roi", "1", "2", "3"], USAGE, ["-roi", "expected 4 values", "got 3"]),
    ("unknown-option", BASE + ["-lamda", "1"], USAGE, ["-lamda", "did you mean -lambda"]),
    ("unknown-option-cell", ["-cel", "50", "50", "50", "90", "90", "90"] + BASE[7:], USAGE, ["-cel'", "-cell?"]),
    ("stray-argument", BASE + ["foo"], USAGE, ["'foo'"]),
    ("dtype-unknown", BASE + ["-dtype", "float16"], USAGE, ["-dtype", "float16"]),
    # physically impossible values (exit 2)
    ("lambda-zero", BASE + ["-lambda", "0"], USAGE, ["-lambda", "positive"]),
    ("lambda-negative", BASE + ["-lambda", "-1"], USAGE, ["-lambda", "positive"]),
    ("energy-zero", BASE + ["-energy", "0"], USAGE, ["-energy", "positive"]),
    ("energy-negative", BASE + ["-energy", "-8000"], USAGE, ["-energy", "positive"]),
    ("pixel-zero", BASE + ["-pixel", "0"], USAGE, ["-pixel", "positive"]),
    ("pixel-negative", BASE + ["-pixel", "-0.1"], USAGE, ["-pixel", "positive"]),
    ("detpixels-zero", BASE + ["-detpixels", "0"], USAGE, ["-detpixels", "positive"]),
    ("detpixels-negative", BASE + ["-detpixels", "-5"], USAGE, ["-detpixels", "positive"]),
    ("detpixels_s-zero", BASE + ["-detpixels_s", "0"], USAGE, ["-detpixels_s", "positive"]),
    ("detsize-zero", CELL + ["-default_F", "10", "-detsize", "0", "-noprogress"] + OUTPUTS, USAGE, ["-detsize"]),
    ("distance-zero", BASE + ["-distance", "0"], USAGE, ["-distance", "zero"]),
    ("cell-zero-length", ["-cell", "0", "50", "50", "90", "90", "90"] + BASE[7:], USAGE, ["-cell", "positive"]),
    ("cell-negative-length", ["-cell", "-50", "50", "50", "90", "90", "90"] + BASE[7:], USAGE, ["-cell", "positive"]),
    ("cell-impossible-angles", ["-cell", "50", "50", "50", "10", "10", "170"] + BASE[7:], USAGE, ["-cell", "angles"]),
    ("cell-flat-angles", ["-cell", "50", "50", "50", "120", "120", "120"] + BASE[7:], USAGE, ["-cell", "angles"]),
    ("beam-vector-zero", BASE + ["-beam_vector", "0", "0", "0"], USAGE, ["-beam_vector", "zero-length"]),
    ("fdet-vector-zero", BASE + ["-fdet_vector", "0", "0", "0"], USAGE, ["-fdet_vector", "zero-length"]),
    ("sdet-vector-zero", BASE + ["-sdet_vector", "0", "0", "0"], USAGE, ["-sdet_vector", "zero-length"]),
    ("spindle-zero", BASE + ["-spindle_axis", "0", "0", "0"], USAGE, ["-spindle_axis", "zero-length"]),
    ("twotheta-axis-zero", BASE + ["-twotheta_axis", "0", "0", "0"], USAGE, ["-twotheta_axis", "zero-length"]),
    ("polar-vector-zero", BASE + ["-polar_vector", "0", "0", "0"], USAGE, ["-polar_vector", "zero-length"]),
    ("N-negative", BASE + ["-N", "-1"], USAGE, ["-N", "negative"]),
    ("mosaic-domains-negative", BASE + ["-mosaic_domains", "-2", "-mosaic", "1"], USAGE, ["-mosaic_domains"]),
    ("phisteps-negative", BASE + ["-phisteps", "-3"], USAGE, ["-phisteps", "negative"]),
    ("fluence-negative", BASE + ["-fluence", "-1"], USAGE, ["-fluence", "negative"]),
    ("detector-too-large", BASE + ["-detpixels", "200000"], USAGE, ["200000x200000", "GB"]),
    ("roi-min-above-max", BASE + ["-roi", "5", "2", "0", "5"], USAGE, ["-roi 5 2 0 5", "empty"]),
    ("roi-outside-detector", BASE + ["-roi", "20", "30", "20", "30"], USAGE, ["-roi 20 30 20 30", "outside"]),
    ("img-header-zero-pixel", BASE + ["-img", "zero_pixel.img"], USAGE, ["-pixel", "positive"]),
]


def make_fixtures(folder):
    for name, data in FIXTURES.items():
        path = Path(folder, name)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    Path(folder, "adir").mkdir()


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def run_in(folder, argv, capsys):
    status, captured = cli_in(folder, argv, capsys)
    return status, captured.err


def check_message(err, needles):
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nanoBragg: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_table_is_large_and_distinct():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)
    assert len({tuple(c[1]) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("argv,status,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, capsys, argv, status, needles):
    make_fixtures(tmp_path)
    before = listing(tmp_path)
    got, err = run_in(tmp_path, argv, capsys)
    assert got == status, err
    check_message(err, needles)
    assert listing(tmp_path) == before  # no output, no temporary file, no Fdump.bin left behind


def subprocess_run(folder, argv, env_extra=None):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    env.pop("NANOBRAGG_DEBUG", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "nanobrag_torch", *argv], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


SUBPROCESS_CASES = ["hkl-non-numeric", "fdump-corrupt", "lambda-zero", "unknown-option", "detector-too-large"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_subprocess(tmp_path, case_id):
    """The real process: exit status, a single stderr line, no traceback, no files."""
    _, argv, status, needles = next(c for c in CASES if c[0] == case_id)
    make_fixtures(tmp_path)
    before = listing(tmp_path)
    proc = subprocess_run(tmp_path, argv)
    assert proc.returncode == status, proc.stderr
    check_message(proc.stderr, needles)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("content", [
    b"", b"garbage without a form feed", b"0 1 0 1 0 1\n\f" + b"\0" * 10, b"0 1 0 1\n\f" + b"\0" * 224,
    b"1 0 0 1 0 1\n\f" + b"\0" * 64, b"0 99999 0 99999 0 99999\n\f" + b"\0" * 64,
    b"0 0 0 0 0 0\n\f" + b"\0" * 65], ids=["empty", "no-header", "truncated", "short-header", "min-above-max",
                                           "huge-header", "one-byte-extra"])
def test_corrupt_fdump_in_working_folder(tmp_path, capsys, content):
    """No -hkl: nanoBragg reuses ./Fdump.bin; a corrupt one is reported at once, whatever -default_F says."""
    Path(tmp_path, "Fdump.bin").write_bytes(content)
    status, err = run_in(tmp_path, BASE, capsys)
    assert status == FILE
    check_message(err, ["corrupt Fdump.bin"])
    assert listing(tmp_path) == ["Fdump.bin"]


def test_existing_output_not_clobbered_subprocess(tmp_path):
    """Valid options followed by a bad -hkl: the earlier image files are left exactly as they were."""
    make_fixtures(tmp_path)
    old = {name: os.urandom(64) for name in ("f.bin", "i.img", "n.img", "p.pgm")}
    for name, data in old.items():
        Path(tmp_path, name).write_bytes(data)
    before = listing(tmp_path)
    proc = subprocess_run(tmp_path, BASE + ["-hkl", "nonnum.hkl"])
    assert proc.returncode == 1 and "nonnum.hkl line 2" in proc.stderr and "Traceback" not in proc.stderr
    assert listing(tmp_path) == before
    assert all(Path(tmp_path, name).read_bytes() == data for name, data in old.items())


def test_late_failure_leaves_outputs_untouched(tmp_path, capsys, monkeypatch):
    """A failure during the simulation itself (here: torch cannot allocate) writes nothing."""
    make_fixtures(tmp_path)
    Path(tmp_path, "f.bin").write_bytes(b"old image")

    def no_memory(self, *args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory: 80 GB")

    monkeypatch.setattr(Simulation, "run", no_memory)
    before = listing(tmp_path)
    status, err = run_in(tmp_path, BASE + ["-hkl", "good.hkl", "-dump", "adir/Fdump.bin"], capsys)
    assert status == 1
    check_message(err, ["out of memory"])
    assert Path(tmp_path, "f.bin").read_bytes() == b"old image"
    # the structure-factor cache is the one file written before rendering (as nanoBragg.c does)
    assert sorted(set(listing(tmp_path)) - set(before)) == ["adir/Fdump.bin"]


def test_internal_error_is_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    make_fixtures(tmp_path)

    def broken(self, *args, **kwargs):
        raise ValueError("something unexpected")

    monkeypatch.setattr(Simulation, "run", broken)
    status, err = run_in(tmp_path, BASE, capsys)
    assert status == 1 and "Traceback" not in err
    assert err.strip() == "nanoBragg: internal error: ValueError: something unexpected (rerun with --debug for details)"
    with pytest.raises(ValueError):
        run_in(tmp_path, BASE + ["--debug"], capsys)
    assert listing(tmp_path) == sorted(["adir", *FIXTURES, "Fdump_corrupt"])


@pytest.mark.parametrize("value", ["0", "-1"])
def test_oversample_zero_or_negative_auto_selects_like_c(tmp_path, capsys, value):
    make_fixtures(tmp_path)
    report = io.StringIO()
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli.run(BASE + ["-nonoise", "-nopgm", "-oversample", value], out=report) == 0
    finally:
        os.chdir(old)
    assert "-fold oversampling" in report.getvalue() and "auto-selected" in report.getvalue()
    assert Path(tmp_path, "f.bin").stat().st_size == 16 * 16 * 4


def test_zero_odet_vector_is_generated_like_c(tmp_path, capsys):
    make_fixtures(tmp_path)
    status, err = run_in(tmp_path, BASE + ["-nonoise", "-nopgm", "-odet_vector", "0", "0", "0"], capsys)
    assert status == 0, err
    assert Path(tmp_path, "f.bin").stat().st_size == 16 * 16 * 4


def test_roi_reaching_past_the_edge_is_clipped_like_c(tmp_path, capsys):
    make_fixtures(tmp_path)
    status, err = run_in(tmp_path, BASE + ["-nonoise", "-nopgm", "-roi", "8", "100", "0", "100"], capsys)
    assert status == 0, err
    image = np.fromfile(tmp_path / "f.bin", dtype="<f4").reshape(16, 16)
    assert (image[:, :8] == 0).all() and (image[:, 8:] > 0).all()
