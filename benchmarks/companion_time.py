#!/usr/bin/env python3
"""In-process time of a companion program (nonBragg or noisify): its whole run, files included,
without interpreter start-up.

    companion_time.py [--repeats N] --program nonBragg|noisify -- <the program's arguments>

Runs the program once in this process (warming caches: numba's compiled noise loop, torch's
kernels), then times N more runs. Prints one JSON line like render_time.py's.
"""
import argparse
import importlib
import io
import json
import statistics
import sys
import time

MODULES = {"nonBragg": "nanobrag_torch.nonbragg", "noisify": "nanobrag_torch.noisify"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="timed runs after the first (default 3)")
    p.add_argument("--program", choices=sorted(MODULES), required=True)
    p.add_argument("args", nargs=argparse.REMAINDER, help="the program's arguments after --")
    a = p.parse_args(argv)
    args = a.args[1:] if a.args[:1] == ["--"] else a.args
    if a.repeats < 1 or not args:
        p.error("need --repeats >= 1 and the program's arguments after --")
    module = importlib.import_module(MODULES[a.program])
    times = []
    for _ in range(a.repeats + 1):
        start = time.perf_counter()
        code = module.run(args, out=io.StringIO())
        times.append(time.perf_counter() - start)
        if code:
            return code
    timed = times[1:]
    from nanobrag_torch import amorphous_kernel

    compiled = amorphous_kernel.compiled() is not None  # the numba loops (render, PSF) were used
    print(json.dumps({"device": "cpu", "dtype": "float64", "compiled": compiled, "first_s": round(times[0], 5),
                      "render_s": [round(t, 5) for t in timed], "median_s": round(statistics.median(timed), 5)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
