"""The distributed dataset workload for run.py: the same dataset on Dask workers and in one process.

    D2W  20 stills of W2's crystal into NeXus: -workers 2 -nthreads 1 against in-process -nthreads 2

Both sides share one kernel cache (the first run builds the kernel; its side's "cold" time shows
it), run alternately, and are compared warm: ratio = workers / in-process (1.0 = no loss from
distribution). The workers' peak memory is the largest worker process's, as the run reports it.
"""
import re
import shlex
import sys
from pathlib import Path

W2 = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -hkl tri.hkl -default_F 10 -lambda 1.0 -N 5 "
      "-distance 100 -detpixels 1024 -mosaic 0.5 -mosaic_dom 10 -phi 0 -osc 1 -phisteps 5 "
      "-oversample 2 -nointerpolate")
DISTRIBUTED = {
    "D2W": ("20 stills of W2 into NeXus: -workers 2 -nthreads 1 vs in-process -nthreads 2",
            W2 + " -seed 1 -misset_seed 1 -stills 20 -nopgm -noprogress -nexus series.nxs -overwrite",
            "-nthreads 2", "-workers 2 -nthreads 1"),
}
PEAK = re.compile(r"peak memory per worker (\d+) MiB")


def _worker_peak_mib(log):
    found = PEAK.findall(Path(log).read_text(errors="replace")) if Path(log).exists() else []
    return float(found[-1]) if found else None


def bench_distributed(name, runner, args, py_cmd, env_py, tmp, prepare, summarize):
    """D2W: in-process and -workers sides alternating, args.repeats times each."""
    description, base, single, workers = DISTRIBUTED[name]
    folder = Path(tmp) / name
    env = dict(env_py) if args.reuse_cache else dict(env_py, NANOBRAGG_CACHE=str(folder / "kernel-cache"))
    sides = {"in_process": (prepare(folder / "in_process"), shlex.split(base + " " + single)),
             "workers": (prepare(folder / "workers"), shlex.split(base + " " + workers))}
    runs = {side: [] for side in sides}
    for i in range(args.repeats):
        for side, (cwd, extra) in sides.items():
            log = cwd / f"run{i}.log"
            wall, cpu, rss, rc = runner.run(py_cmd + extra, cwd, env, log)
            peak = _worker_peak_mib(log) if side == "workers" else None
            runs[side].append({"wall_s": round(wall, 4), "cpu_s": cpu, "rss_kb": rss, "rc": rc,
                               "worker_peak_mib": peak})
            print(f"{name} {side:10s} run {i + 1}/{args.repeats}: {wall:8.2f} s wall"
                  + (f"  worker peak {peak:.0f} MiB" if peak else "") + (f"  FAILED (exit {rc})" if rc else ""),
                  file=sys.stderr, flush=True)
    result = {"description": description, "args": base, "frames": 20}
    for side in sides:
        result[side] = summarize(runs[side])
    result["ours"] = result["workers"]  # run.py's table and failure check read "ours"
    warm = {side: result[side]["warm_s"] or result[side]["median_s"] for side in sides}
    result["ratio"] = warm["workers"] / warm["in_process"] if all(warm.values()) else None
    peaks = [r["worker_peak_mib"] for r in runs["workers"] if r["worker_peak_mib"]]
    result["worker_peak_mib"] = max(peaks) if peaks else None
    return result
