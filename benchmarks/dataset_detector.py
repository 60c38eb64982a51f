#!/usr/bin/env python3
"""What -background and noisify's detector model add to each frame of a dataset, against C's
per-frame pipeline (nanoBragg.c, nonBragg.c and noisify.c).

    dataset_detector.py [--frames 10,30] [--repeats 2]

Ours: W1's crystal as a rotation series (-phi 0 -osc 0.1 -seed 1, SMV frames), each frame count
run with and without `-background water.stol -background_thick 0.00000001 -psf gauss -psf_fwhm 150
-readout_noise 2` (default -calibration 0.03); the CPU seconds added per frame are the slope
between the two frame counts, so start-up, set-up, the background render (once per series) and
first compiles cancel out (the plain series draws nanoBragg's Poisson noise per frame, which the
detector model replaces). C (with $NB_C_BIN, $NB_NONBRAGG_BIN, $NB_NOISIFY_BIN): the same frame as
C makes it: its float image from nanoBragg.c (-nonoise: noisify makes the noise), the water
background of the same geometry from nonBragg.c, noisify.c on their summed float images. CPU
seconds are user + system of the child processes (all threads). Prints one JSON record; the
medians over --repeats are the figures.
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
W1 = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 1024"
OPTIONS = "-background water.stol -background_thick 0.00000001 -psf gauss -psf_fwhm 150 -readout_noise 2"
NONBRAGG = "-stol water.stol -lambda 6.2 -distance 100 -detpixels 1024 -thick 0.00000001 -nonoise -nopgm"
NOISIFY = "-floatfile sum.bin -detpixels 1024 -pixel 0.1 -distance 100 -psf gauss -psf_fwhm 150 -readout_noise 2"


def _timed(cmd, cwd):
    """(wall s, CPU s of the child) of one command, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ours(work, frames, with_options):
    cmd = [sys.executable, "-m", "nanobrag_torch", *W1.split(), "-phi", "0", "-osc", "0.1", "-seed", "1",
           "-frames", str(frames), "-smv", "frame", "-overwrite", "-noprogress"]
    return _timed(cmd + (OPTIONS.split() if with_options else []), work)


def c_frame(work):
    """(wall, CPU) of each C program for one frame: nanoBragg.c, nonBragg.c, noisify.c."""
    bragg = _timed([os.environ["NB_C_BIN"], *W1.split(), "-phi", "0", "-osc", "0.1", "-seed", "1",
                    "-floatfile", "bragg.bin", "-nopgm", "-nonoise"], work)
    water = _timed([os.environ["NB_NONBRAGG_BIN"], *NONBRAGG.split(), "-floatfile", "water.bin"], work)
    total = np.fromfile(work / "bragg.bin", np.float32) + np.fromfile(work / "water.bin", np.float32)
    total.astype(np.float32).tofile(work / "sum.bin")
    noise = _timed([os.environ["NB_NOISIFY_BIN"], *NOISIFY.split(), "-seed", "1", "-nopgm"], work)
    return bragg, water, noise


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", default="10,30", help="two frame counts (default 10,30)")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args(argv)
    low, high = (int(n) for n in a.frames.split(","))
    work = Path(tempfile.mkdtemp(prefix="nb-dataset-detector-"))
    try:
        shutil.copy(Path(os.environ.get("NB_GOLDEN_AUX_DIR", HERE.parent.parent / "shared/golden_aux"))
                    / "fixtures/water.stol", work)
        added, c_cpu, load = [], [], [os.getloadavg()[0]]
        for _ in range(a.repeats):
            runs = {(n, w): ours(work, n, w) for n in (low, high) for w in (False, True)}
            slope = [(runs[high, w][1] - runs[low, w][1]) / (high - low) for w in (False, True)]
            added.append({"plain_cpu_per_frame": slope[0], "with_cpu_per_frame": slope[1],
                          "added_cpu_per_frame": slope[1] - slope[0],
                          "runs": {f"{n}{'+options' if w else ''}": r for (n, w), r in runs.items()}})
            if all(k in os.environ for k in ("NB_C_BIN", "NB_NONBRAGG_BIN", "NB_NOISIFY_BIN")):
                c_cpu.append(c_frame(work))
            load.append(os.getloadavg()[0])
        record = {"load_1min": load, "ours": added,
                  "added_cpu_per_frame_median": statistics.median(r["added_cpu_per_frame"] for r in added)}
        if c_cpu:
            per_frame = statistics.median(sum(cpu for _, cpu in runs) for runs in c_cpu)
            record.update(c_runs=c_cpu, c_cpu_per_frame_median=per_frame,
                          ratio=record["added_cpu_per_frame_median"] / per_frame)
        print(json.dumps(record))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
