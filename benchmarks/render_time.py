#!/usr/bin/env python3
"""In-process render time: the simulation alone, without interpreter start-up, set-up or files.

    render_time.py [--repeats N] -- <nanoBragg arguments, -device and -dtype included>

Builds the simulation the command line would build (files read from the current folder), renders
once (that render may compile or load a kernel), then times N more renders, waiting for the device
to finish each one. Prints one JSON line: device, dtype, first render and the timed renders in seconds.
On a GPU this is the figure to set against nanoBragg.c: the command line's wall time there is
mostly importing torch and starting CUDA.
"""
import argparse
import json
import statistics
import sys
import time

import torch

import nanobrag_torch as nb


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_renders(sim, repeats):
    device = torch.device(sim.detector.device)
    times = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            image = sim.run()
            _sync(device)
            times.append(time.perf_counter() - start)
    return times[0], times[1:], image


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed renders after the first (default 3)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="nanoBragg arguments after --")
    a = p.parse_args(argv)
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    if a.repeats < 1 or not args:
        p.error("need --repeats >= 1 and nanoBragg arguments after --")
    sim = nb.from_args(args)
    first, timed, image = time_renders(sim, a.repeats)
    print(json.dumps({"device": str(sim.detector.device), "dtype": str(sim.detector.dtype).replace("torch.", ""),
                      "compiled": bool(sim.stats["compiled_kernel"]),
                      "first_s": round(first, 5), "render_s": [round(t, 5) for t in timed],
                      "median_s": round(statistics.median(timed), 5), "image_sum": float(image.sum())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
