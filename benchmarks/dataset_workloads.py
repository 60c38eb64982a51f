"""Dataset workloads for run.py: one process of ours against a shell loop of nanoBragg.c calls.

    D1  rotation series: 100 frames of W1's crystal, -osc 0.1, noise on, into NeXus
    D2  serial stills: 20 random orientations of W2's crystal, noise on, into NeXus

C's side is the run_c.sh that `-export_c` writes (one nanoBragg.c call per frame writing its float,
integer and noise images), exported before the clock starts; ours is the one dataset command. The
correlation compares the last frame's noise image (ours, from the NeXus file, against C's).
"""
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

W1 = "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 1024"
W2 = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -hkl tri.hkl -default_F 10 -lambda 1.0 -N 5 "
      "-distance 100 -detpixels 1024 -mosaic 0.5 -mosaic_dom 10 -phi 0 -osc 1 -phisteps 5 "
      "-oversample 2 -nointerpolate")
DATASETS = {
    "D1": ("rotation series, 100 frames of W1 into NeXus", W1 + " -phi 0 -osc 0.1 -seed 1", "-frames 100", 100),
    "D2": ("20 stills of W2 into NeXus", W2 + " -seed 1 -misset_seed 1", "-stills 20", 20),
}
COMMON = "-nopgm -noprogress"


def _noise_image(path):
    raw = Path(path).read_bytes()
    return np.frombuffer(raw[512:], dtype="<u2").astype(np.float64)


def _correlation(a, b):
    if a is None or b is None or a.size != b.size:
        return None
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else None


def _last_frame_nexus(path):
    try:
        import h5py
        import hdf5plugin  # noqa: F401  (registers the bitshuffle filter for reading)
        with h5py.File(path, "r") as f:
            return f["/entry/data/data"][-1].astype(np.float64).ravel()
    except (OSError, KeyError, ImportError):
        return None


def bench_dataset(name, runner, args, py_cmd, c_bin, env_py, env_c, tmp, prepare, summarize):
    """One D workload: ours (one process) and C's loop alternating, args.repeats times each."""
    description, base, series, frames = DATASETS[name]
    base_args = shlex.split(base + " " + COMMON)
    folder = Path(tmp) / name
    ours_dir = prepare(folder / "ours")
    env_py = dict(env_py) if args.reuse_cache else dict(env_py, NANOBRAGG_CACHE=str(folder / "kernel-cache"))
    ours_cmd = py_cmd + base_args + shlex.split(series) + ["-nexus", "series.nxs", "-overwrite"]
    sides = {"ours": (ours_dir, ours_cmd, env_py)}
    if c_bin:
        c_dir = prepare(folder / "c")
        export = [sys.executable, "-m", "nanobrag_torch"] + base_args + shlex.split(series) + ["-export_c", "frames"]
        subprocess.run(export, cwd=c_dir, env=env_py, check=True, capture_output=True, timeout=600)
        sides["c"] = (c_dir, ["sh", str(c_dir / "frames" / "run_c.sh")], dict(env_c, NB_C_BIN=c_bin))
    runs = {side: [] for side in sides}
    for i in range(args.repeats):
        for side, (cwd, cmd, env) in sides.items():
            wall, cpu, rss, rc = runner.run(cmd, cwd, env, cwd / f"run{i}.log")
            runs[side].append({"wall_s": round(wall, 4), "cpu_s": cpu, "rss_kb": rss, "rc": rc})
            print(f"{name} {side:4s} run {i + 1}/{args.repeats}: {wall:8.2f} s wall"
                  + (f" {cpu:8.2f} s cpu" if cpu is not None else "") + (f"  FAILED (exit {rc})" if rc else ""),
                  file=sys.stderr, flush=True)
    result = {"description": description, "args": shlex.join(ours_cmd[len(py_cmd):]), "frames": frames}
    for side in sides:
        result[side] = summarize(runs[side])
    if "c" in sides:
        ours, c = result["ours"], result["c"]["median_s"]
        o = ours["warm_s"] if ours["warm_s"] is not None else ours["median_s"]
        result["ratio"] = o / c if o and c else None
        result["cold_ratio"] = ours["cold_s"] / c if ours["cold_s"] and c else None
        o, c = ours["cpu_median_s"], result["c"]["cpu_median_s"]
        result["cpu_ratio"] = o / c if o and c else None
        last = sides["c"][0] / "frames" / ("frame_%05d.img" % frames)
        c_noise = _noise_image(last) if last.exists() else None
        result["correlation"] = _correlation(_last_frame_nexus(ours_dir / "series.nxs"), c_noise)
    return result
