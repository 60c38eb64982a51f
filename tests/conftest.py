"""Shared test set-up: where the golden suites are and where the C reference program is.

The golden suites are read from $NB_GOLDEN_DIR (default ../shared/golden next to the checkout);
the C program is found only through $NB_C_BIN. Tests that need either skip, saying why, when it
is absent. Test modules import the names below (`from conftest import GOLDEN, needs_golden`)."""
import json
import os
import shutil
from pathlib import Path

import pytest

# automatic runs never start background kernel builds from the test suite (the tests of that
# policy switch it back on with their own kernel cache)
os.environ.setdefault("NANOBRAGG_BACKGROUND_BUILDS", "0")

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("NB_GOLDEN_DIR", REPO.parent / "shared" / "golden"))
FIXTURES = GOLDEN / "fixtures"
MISSING = f"golden suite not found at {GOLDEN} (set NB_GOLDEN_DIR to the folder holding cases.json)"
needs_golden = pytest.mark.skipif(not (GOLDEN / "cases.json").is_file(), reason=MISSING)


def golden_suite(name: str) -> Path:
    """A sibling golden suite (e.g. 'golden_compat') next to $NB_GOLDEN_DIR."""
    return GOLDEN.parent / name


def golden_cases() -> dict:
    """id -> case of the golden suite's cases.json ({} when the suite is absent)."""
    try:
        return {c["id"]: c for c in json.loads((GOLDEN / "cases.json").read_text())["cases"]}
    except FileNotFoundError:
        return {}


def c_binary() -> str | None:
    """The C reference program named by $NB_C_BIN, or None when it is unset or not executable."""
    path = os.environ.get("NB_C_BIN")
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    return None


@pytest.fixture
def c_bin() -> str:
    """Path of nanoBragg.c's build ($NB_C_BIN); the test skips, saying why, without one."""
    path = c_binary()
    if path is None:
        pytest.skip("C reference program not found: set NB_C_BIN to a build of nanoBragg.c")
    return path


@pytest.fixture
def golden_case(tmp_path, monkeypatch):
    """A function that copies a golden case's fixtures into tmp_path, enters it and returns the case."""
    cases = golden_cases()

    def prepare(case_id: str) -> dict:
        if case_id not in cases:
            pytest.skip(MISSING)
        case = cases[case_id]
        for name in case.get("fixtures", []):
            shutil.copy(FIXTURES / name, tmp_path)
        monkeypatch.chdir(tmp_path)
        return case
    return prepare


def call_in(folder, func, *args):
    """func(*args) with `folder` as the working directory, restored afterwards."""
    old = os.getcwd()
    os.chdir(folder)
    try:
        return func(*args)
    finally:
        os.chdir(old)


def cli_in(folder, argv: list, capsys) -> tuple:
    """Run the command line in-process inside `folder`; (exit status, captured stdout/stderr)."""
    from nanobrag_torch import cli
    return call_in(folder, cli.main, argv), capsys.readouterr()
