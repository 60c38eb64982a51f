"""benchmarks/run.py end to end on the smallest workload, with a stand-in for nanoBragg.c.

The stand-in runs our own command line, so the two images must correlate perfectly; the test checks
that the record carries what the README says it does (timings, ratios, memory, correlation, and
the in-process render time of --render-time)."""
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_record_with_render_time(tmp_path):
    fake_c = tmp_path / "fake-nanoBragg"
    src = REPO / "src"
    fake_c.write_text(f"#!/bin/sh\nPYTHONPATH={src} exec {sys.executable} -m nanobrag_torch \"$@\"\n")
    fake_c.chmod(fake_c.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "record.json"
    env = dict(os.environ, NANOBRAGG_CACHE=str(tmp_path / "kernels"))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--only", "W1", "--quick",
                           "--render-time", "--c-bin", str(fake_c), "--out", str(out), "--py-args", "-dtype float32"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "render/C" in done.stdout
    record = json.loads(out.read_text())
    w1 = record["workloads"]["W1"]
    assert w1["ours"]["failed"] == 0 and w1["c"]["failed"] == 0
    assert w1["ours"]["median_s"] > 0 and w1["c"]["median_s"] > 0 and w1["ours"]["peak_rss_kb"] > 0
    assert abs(w1["ratio"] - w1["ours"]["median_s"] / w1["c"]["median_s"]) < 1e-9
    # float32 against float64 from the stand-in: the same image to float32 rounding
    assert w1["correlation"] > 0.9999999
    render = w1["ours"]["render"]
    assert render["device"] == "cpu" and render["dtype"] == "float32"
    assert len(render["render_s"]) == 3 and render["median_s"] > 0
    assert render["compiled"] is False  # the suite builds no kernel for automatic runs (tests/conftest.py)
    # the render alone is a part of the whole command-line run
    assert render["median_s"] < w1["ours"]["median_s"]
    assert abs(w1["render_ratio"] - render["median_s"] / w1["c"]["median_s"]) < 1e-9
    assert record["threads"]["OMP_NUM_THREADS"] >= 1 and record["versions"]["torch"]
