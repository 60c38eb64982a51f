"""A dataset is streamed: peak memory does not grow with the number of frames."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")

# peak RSS (KiB) after each frame of a 30-frame, 256x256 series written to NeXus, in a fresh interpreter
PROBE = r"""
import json, resource
from nanobrag_torch.datasets.cli import make_plan, split_args
from nanobrag_torch.datasets.nexus import NexusFile
from nanobrag_torch.datasets.render import Renderer, render_frames
argv = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 256 -pixel 0.4 "
        "-oversample 1 -phi 0 -osc 0.1 -phisteps 1 -seed 1 -noprogress -frames 30").split()
opts, base = split_args(argv)
plan = make_plan(base, opts)
peaks = {}
with Renderer(base, plan) as renderer:
    sink = NexusFile("s.nxs", plan, argv)
    sink.open(renderer, 0)
    render_frames(renderer, range(30), [sink],
                  lambda n: peaks.update({n: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    sink.close(True)
print(json.dumps(peaks))
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units differ off Linux")
def test_peak_memory_does_not_grow_with_frames(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), NANOBRAGG_COMPILE="0")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    peaks = {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
    assert sorted(peaks) == list(range(1, 31))
    # one frame's arrays are ~0.9 MB (float64 image, float32 copy, noise counts): 25 kept frames would be ~22 MB
    growth_mb = (peaks[30] - peaks[5]) / 1024
    assert growth_mb < 8, f"peak RSS grew by {growth_mb:.1f} MB from frame 5 to frame 30"
