"""nb-compare with stand-ins for the C program (scripts that run our own CLI, perturbed or failing)."""
import json
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from nanobrag_torch import compare

SRC = Path(__file__).resolve().parents[1] / "src"
ARGS = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -hkl small.hkl -lambda 1 -N 5 -distance 100 "
        "-detpixels 48 -pixel 0.5 -nonoise").split()
KEYS = {"correlation", "sum_c", "sum_py", "sum_ratio", "max_abs_diff", "rmse", "peaks_matched",
        "c_seconds", "py_seconds", "args"}


def stand_in(folder, body):
    path = folder / "fake_nanoBragg"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def our_cli(extra=""):
    return f'PYTHONPATH="{SRC}" exec "{sys.executable}" -m nanobrag_torch "$@" {extra}'


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder with an input file referenced by relative path, and a file a run would clobber."""
    work = tmp_path / "work"
    work.mkdir()
    with open(work / "small.hkl", "w") as handle:
        for h in range(-9, 10):
            for k in range(-9, 10):
                for l in range(-9, 10):
                    handle.write(f"{h} {k} {l} {5 + (h * 7 + k * 3 + l * 11) % 50}\n")
    (work / "image.pgm").write_bytes(b"keep me")  # nanoBragg's default PGM name
    monkeypatch.chdir(work)
    return work


@pytest.mark.slow
def test_identical_programs_agree(workdir, tmp_path, capsys):
    c_bin = stand_in(tmp_path, our_cli())
    out = tmp_path / "out"
    assert compare.main(["--outdir", str(out), "--c-bin", c_bin, "--"] + ARGS) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert KEYS <= set(summary)
    assert summary["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert summary["max_abs_diff"] == 0 and summary["sum_ratio"] == 1.0
    assert summary["sum_c"] > 0 and summary["peaks_matched"] == summary["peaks_considered"] > 0
    assert summary["args"] == ARGS
    for name in ("c.png", "py.png", "diff.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (workdir / "image.pgm").read_bytes() == b"keep me"  # written in the scratch copy only
    assert not (workdir / "Fdump.bin").exists()
    assert "correlation 1.0" in capsys.readouterr().out


@pytest.mark.slow
def test_perturbed_program_fails_threshold(workdir, tmp_path, capsys):
    c_bin = stand_in(tmp_path, our_cli("-distance 110"))
    out = tmp_path / "out"
    assert compare.main(["--outdir", str(out), "--c-bin", c_bin, "--"] + ARGS) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["correlation"] < 0.999 and summary["passed"] is False
    err = capsys.readouterr().err.strip()
    assert "below the threshold" in err and len(err.splitlines()) == 1


def test_failing_program_exits_2(workdir, tmp_path, capsys):
    c_bin = stand_in(tmp_path, "echo boom; exit 4")
    out = tmp_path / "out"
    assert compare.main(["--outdir", str(out), "--c-bin", c_bin, "--"] + ARGS) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "exit 4" in err and "Traceback" not in err
    assert (out / "c_stdout.txt").read_text().strip() == "boom"


def test_c_threads_sets_the_c_programs_openmp_threads(workdir, tmp_path):
    seen = tmp_path / "threads.txt"
    c_bin = stand_in(tmp_path, f'echo "$OMP_NUM_THREADS" > "{seen}"; exit 4')
    assert compare.main(["--outdir", str(tmp_path / "out"), "--c-threads", "1", "--c-bin", c_bin, "--"] + ARGS) == 2
    assert seen.read_text().strip() == "1"


@pytest.mark.parametrize("argv", [
    [],  # nothing at all
    ["--c-threads", "0", "--c-bin", "/bin/true", "--", "-cell", "1"],
    ["--c-bin", "/bin/true"],  # no '--'
    ["--c-bin", "/bin/true", "--"],  # no nanoBragg arguments
    ["--threshold", "high", "--c-bin", "/bin/true", "--", "-cell", "1"],
    ["--c-bin", "/no/such/program", "--", "-cell", "1"],
    ["--bogus", "--c-bin", "/bin/true", "--", "-cell", "1"],
    ["--c-bin", "/bin/true", "--", "-noisefile", "/tmp/x.img"],  # both programs would write it
])
def test_usage_errors_exit_1(argv, workdir, monkeypatch, capsys):
    monkeypatch.delenv("NB_C_BIN", raising=False)
    assert compare.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nb-compare: usage error:")


def test_summary_statistics():
    c = np.zeros((20, 30))
    spots = [(3, 4), (5, 17), (10, 10), (15, 25), (18, 2)]
    for i, (y, x) in enumerate(spots):
        c[y, x] = 10.0 + i
    near = np.roll(c, 1, axis=1) * 2  # every spot one pixel over, twice as bright
    s, _ = compare.summarize(c, near, None)
    assert s["sum_ratio"] == pytest.approx(2.0) and s["peaks_matched"] == s["peaks_considered"] == 5
    s, _ = compare.summarize(c, np.roll(c, 3, axis=1), None)
    assert s["peaks_matched"] == 0 and s["correlation"] < 0.1
    s, (cc, _, _) = compare.summarize(c, c, (2, 9, 4, 6))
    assert cc.shape == (3, 8) and s["correlation"] == 1.0 and s["rmse"] == 0.0
