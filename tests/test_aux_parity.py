"""The companion programs (nonBragg, noisify) against the golden suite of their C references.

Runs the suite's own runner (parity_aux.py) on the console scripts installed beside this Python:
float images to 1e-6, SMV and noise images byte for byte."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITE = Path(os.environ.get("NB_GOLDEN_AUX_DIR", ROOT.parent / "shared" / "golden_aux"))
MISSING = f"companion golden suite not found at {SUITE} (set NB_GOLDEN_AUX_DIR to the folder holding cases.json)"


def _cases(program):
    if not (SUITE / "cases.json").exists():
        return []
    return [c["id"] for c in json.loads((SUITE / "cases.json").read_text())["cases"] if c["program"] == program]


@pytest.mark.skipif(not (SUITE / "cases.json").exists(), reason=MISSING)
@pytest.mark.parametrize("program", ["nonBragg", "noisify"])
def test_companion_golden_suite(program):
    ids = _cases(program)
    assert ids, f"no {program} cases in {SUITE}"
    script = Path(sys.executable).parent / program
    assert script.exists(), f"{script} missing: reinstall with pip install -e ."
    # absolute --bin: the runner starts each case inside a temporary folder
    proc = subprocess.run([sys.executable, str(SUITE / "parity_aux.py"), "--bin", str(script.parent.absolute()),
                           "--suite", str(SUITE), "--only", ",".join(ids)],
                          capture_output=True, text=True, timeout=900, check=False)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert last == f"{len(ids)} passed, 0 failed", proc.stdout + proc.stderr
