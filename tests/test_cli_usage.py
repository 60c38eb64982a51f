"""A command line that explains itself: usage text, version, multi-value options, size errors."""
import subprocess
import sys

import pytest

from nanobrag_torch import cli
from nanobrag_torch.options import MULTI, OPTIONS

from conftest import cli_in

BASE = ["-default_F", "10", "-detpixels", "8", "-noprogress", "-nonoise", "-nopgm", "-floatfile", "f.bin",
        "-intfile", "i.img"]
CELL = ["-cell", "50", "50", "50", "90", "90", "90"]


_main = cli_in


def test_multi_value_table_is_complete():
    assert {name for name, kinds in OPTIONS.items() if len(kinds) > 1} <= set(MULTI)
    assert {"cell", "misset", "roi", "beam_vector", "pix0_vector", "printout_pixel", "trace_pixel"} <= set(MULTI)


CASES = [(name, count, at_end) for name in sorted(MULTI)
         for count in range(len(MULTI[name].split()) if name != "misset" else 3) for at_end in (True, False)]


@pytest.mark.parametrize("name, count, at_end", CASES)
def test_multi_value_option_with_too_few_values(tmp_path, capsys, name, count, at_end):
    """All values or an error naming the option and how many it got (exit 2), whether the line ends
    there or another option follows."""
    given = ["-" + name] + ["1"] * count
    argv = (CELL if name != "cell" else []) + BASE + given if at_end else \
        given + (CELL if name != "cell" else []) + BASE
    if name == "cell" and not at_end:
        argv = given + ["-lambda", "1"] + BASE
    status, captured = _main(tmp_path, argv, capsys)
    assert status == 2, captured.err
    line = captured.err.strip()
    assert line.startswith(f"nanoBragg: error: option -{name}: expected ") and f"got {count}" in line, line
    assert not (tmp_path / "f.bin").exists()


def test_cell_with_two_numbers_at_the_end(tmp_path, capsys):
    status, captured = _main(tmp_path, BASE + ["-cell", "100", "100"], capsys)
    assert status == 2 and "option -cell: expected 6 values (a b c alpha beta gamma), got 2" in captured.err


@pytest.mark.parametrize("argv, option", [
    (["-detpixels", "300000"], "-detpixels"),
    (["-detpixels_x", "300000", "-detpixels_y", "300000"], "-detpixels_x/-detpixels_y"),
    (["-detsize", "30000", "-pixel", "0.1"], "-detsize"),
])
def test_detector_too_large_names_the_option(tmp_path, capsys, argv, option):
    base = [a for a in BASE if a not in ("-detpixels", "8")]
    status, captured = _main(tmp_path, CELL + base + argv, capsys)
    assert status == 2, captured.err
    assert "detector of" in captured.err and option in captured.err, captured.err


@pytest.mark.parametrize("flag", ["-h", "-help", "--help"])
def test_help_lists_every_option_grouped(capsys, flag):
    assert cli.main([flag]) == 0
    text = capsys.readouterr().out
    for group in ("Crystal", "Beam", "Detector", "Sampling", "Output", "Compatibility"):
        assert group in text
    listed = {word.lstrip("-").split("/")[0] for line in text.splitlines() for word in line.split()
              if word.startswith("-") and len(word) > 1}
    missing = {name for name in OPTIONS if name not in listed and f"-{name}" not in text}
    assert not missing, sorted(missing)
    assert "default 100 mm" in text or "(mm, default 100)" in text


@pytest.mark.parametrize("flag", ["-version", "--version"])
def test_version(capsys, flag):
    import torch

    import nanobrag_torch
    assert cli.main([flag]) == 0
    out = capsys.readouterr().out
    assert nanobrag_torch.__version__ in out and torch.__version__ in out and "device" in out


def test_version_console_script_subprocess():
    proc = subprocess.run([sys.executable, "-m", "nanobrag_torch", "--version"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("nanobrag_torch ")
