#!/usr/bin/env python3
"""Benchmark suite: our CLI against a build of nanoBragg.c on the same machine.

    benchmarks/run.py [--repeats 3] [--only W1,W3] [--quick] [--c-bin PATH] [--threads N]
                      [--py-args "-dtype float32"] [--reuse-cache] [--render-time] [--out FILE] [--keep]
                      [--plot [SVG]]

Each workload runs in its own temporary folder, ours and C alternating, and every run is a fresh
process.  Reported per workload: median wall time, ours cold (first run, on an empty kernel cache
unless --reuse-cache: it renders eagerly and leaves the kernel to a background build, or builds it
first) and warm (median of the rest), peak resident memory of each process, the ratio ours/C (ours
warm against C's median; cold against C's median too) and the correlation of the two float images.
After each run of ours the benchmark waits, untimed, until no process builds a kernel into its
cache (the record's `background_build_s`), so a background build never runs into the next timed
run and the warm runs find the kernel.  A JSON record goes to benchmarks/results/<timestamp>.json;
--plot draws the history of those records as an SVG line chart and exits without running anything.
"""
import argparse
import compileall
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset_workloads import DATASETS, bench_dataset  # noqa: E402  (D1, D2, beside this script)
from distributed_workload import DISTRIBUTED, bench_distributed  # noqa: E402  (D2W, beside this script)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
GOLDEN = Path(os.environ.get("NB_GOLDEN_DIR", REPO.parent / "shared" / "golden"))

COMMON = "-nonoise -nopgm -noprogress"
WORKLOADS = {
    "W1": ("plain still",
           "-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -detpixels 1024"),
    "W2": ("heavy still",
           "-cell 70 80 90 75 85 95 -misset 10 20 30 -hkl tri.hkl -default_F 10 -lambda 1.0 -N 5 "
           "-distance 100 -detpixels 1024 -mosaic 0.5 -mosaic_dom 10 -phi 0 -osc 1 -phisteps 5 "
           "-oversample 2 -nointerpolate"),
    "W3": ("polychromatic, divergent",
           "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 10 -distance 100 -detpixels 1024 "
           "-dispersion 5 -dispsteps 10 -hdivrange 1 -vdivrange 1 -hdivsteps 3 -vdivsteps 3"),
    "W4": ("large detector",
           "-cell 100 100 100 90 90 90 -default_F 100 -lambda 1.0 -N 5 -distance 200 -detpixels 3072 "
           "-pixel 0.05"),
}
W2 = WORKLOADS["W2"][1]
LYSO = "-hkl lyso.hkl -mat lyso.mat -lambda 1.0 -N 10 -distance 100 -detpixels 512 -pixel 0.1 -mosaic 0.5 -mosaic_dom 5"
WORKLOADS.update({
    # after one W2 run, W2 with another count: the same compiled kernel serves them (no build)
    "W2-N6": ("W2, another crystal size", W2.replace("-N 5", "-N 6")),
    "W2-dom11": ("W2, 11 mosaic domains", W2.replace("-mosaic_dom 10", "-mosaic_dom 11")),
    "W2-phi6": ("W2, 6 phi steps", W2.replace("-phisteps 5", "-phisteps 6")),
    "W2-over3": ("W2, 3x3 sub-pixels", W2.replace("-oversample 2", "-oversample 3")),
    "W2-2048": ("W2, 2048^2 pixels", W2.replace("-detpixels 1024", "-detpixels 2048")),
    "T1": ("512^2 lysozyme still", LYSO),
    "T1-over6": ("T1 with 6x6 sub-pixels", LYSO + " -oversample 6"),
    "M6144": ("6144^2 plain still (memory)", WORKLOADS["W4"][1].replace("-detpixels 3072 -pixel 0.05",
                                                                         "-detpixels 6144 -pixel 0.025")),
})
# workloads that share another's kernel cache, and run right after it (its kernel is then warm)
CACHE_OF = {"W2-N6": "W2", "W2-dom11": "W2", "W2-phi6": "W2", "W2-over3": "W2", "W2-2048": "W2", "T1-over6": "T1"}
LYSOZYME = ("lyso.hkl", "lyso.mat")  # written by lysozyme_fixtures()
GOLDEN_AUX = Path(os.environ.get("NB_GOLDEN_AUX_DIR", GOLDEN.parent / "golden_aux"))
# the companion programs (nonBragg, noisify) against their C builds: (description, program, arguments)
COMPANIONS = {
    "N1": ("nonBragg: 1024^2 water, oversampled",
           "nonBragg", ("-stol water.stol -lambda 1 -distance 100 -detpixels 1024 -pixel 0.1 -thick 0.01 "
                        "-fluence 1e22 -oversample 2 -seed 1 -nopgm -noprogress")),
    "N2": ("noisify: 1024^2, Gaussian PSF",
           "noisify", ("-floatfile water1024.bin -detpixels 1024 -pixel 0.1 -distance 100 -psf gauss "
                       "-psf_fwhm 150 -readout_noise 2 -seed 1 -nopgm")),
}
COMPANION_MODULES = {"nonBragg": "nanobrag_torch.nonbragg", "noisify": "nanobrag_torch.noisify"}
# noisify's input: nonBragg's water image of N1 (made once per run by our nonBragg, not timed)
GENERATED = {"water1024.bin": COMPANIONS["N1"][2].replace("-oversample 2", "") + " -nonoise -floatfile water1024.bin"}
FIXTURES = {"tri.hkl": GOLDEN / "fixtures/tri.hkl", "water.stol": GOLDEN_AUX / "fixtures/water.stol"}
FLOAT_IMAGE = "floatimage.bin"  # both programs' default -floatfile

# Peak memory: ru_maxrss of a child also counts the address space it was forked from (Linux keeps
# the pre-exec high-water mark), so a child of this Python process would report at least our own
# peak.  Each run is therefore started by a tiny intermediary: GNU time if present (~1 MB), else a
# bare Python wrapper (its own ~10 MB floor is measured and recorded as rss_floor_kb).
WRAPPER = r"""
import os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    f.write("%d %.6f %.3f\n" % (ru.ru_maxrss, wall, ru.ru_utime + ru.ru_stime))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def gnu_time():
    path = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    if not path:
        return None
    try:  # must be GNU time (the -f/-o flags), not a BSD one
        probe = subprocess.run([path, "-f", "%M", "true"], capture_output=True, text=True, timeout=10)
        return path if probe.returncode == 0 and probe.stderr.strip().isdigit() else None
    except (OSError, subprocess.SubprocessError):
        return None


class Runner:
    def __init__(self, timeout):
        self.timeout = timeout
        self.time_bin = gnu_time()
        self.method = "gnu-time" if self.time_bin else "python-wrapper"
        self.rss_floor_kb = None

    def run(self, cmd, cwd, env, log):
        """One process: (wall seconds, CPU seconds, peak RSS in KiB, exit code)."""
        stats = Path(cwd) / ".rusage"
        if self.time_bin:
            full = [self.time_bin, "-q", "-f", "%M %U %S", "-o", str(stats)] + cmd
        else:
            full = [sys.executable, "-S", "-c", WRAPPER, str(stats)] + cmd
        with open(log, "w") as out:
            t0 = time.perf_counter()
            proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            timer = threading.Timer(self.timeout, _kill_group, (proc.pid,)) if self.timeout else None
            if timer:
                timer.start()
            _, status, _ = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen quiet
            if timer:
                timer.cancel()
        rss = cpu = None
        try:
            fields = stats.read_text().split()
            if self.time_bin:
                rss, cpu = int(fields[-3]), float(fields[-2]) + float(fields[-1])
            else:
                # the wrapper's own clock leaves out its Python start-up
                rss, wall, cpu = int(fields[0]), float(fields[1]), float(fields[2])
            stats.unlink()
        except (OSError, ValueError, IndexError):
            pass
        return wall, cpu, rss, proc.returncode

    def floor(self, workdir):
        """The intermediary's own contribution to a child's peak RSS (a no-op child)."""
        _, _, rss, _ = self.run(["true"], workdir, dict(os.environ), Path(workdir) / "floor.log")
        self.rss_floor_kb = rss
        return rss


def _kill_group(pid):
    try:
        os.killpg(pid, 9)
    except OSError:
        pass


def machine_info():
    info = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "nproc": os.cpu_count(), "memory_gib": None}
    try:
        info["nproc"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / 2 ** 20, 2)
                break
    except OSError:
        pass
    return info


def versions(env):
    """Versions as the benchmarked interpreter sees them (it runs with the same environment)."""
    code = ("import json, sys, numpy, torch; print(json.dumps({'python': sys.version.split()[0], "
            "'torch': torch.__version__, 'numpy': numpy.__version__, "
            "'torch_threads': torch.get_num_threads()}))")
    try:
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             timeout=120)
        return json.loads(res.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return {"python": platform.python_version()}


def git_state():
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return {"commit": head or None, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def correlation(a_path, b_path):
    """Pearson correlation of two raw float32 images (None if either is missing or mismatched)."""
    try:
        a = np.fromfile(a_path, dtype="<f4").astype(np.float64)
        b = np.fromfile(b_path, dtype="<f4").astype(np.float64)
    except OSError:
        return None, None
    if a.size == 0 or a.size != b.size:
        return None, None
    sum_ratio = float(a.sum() / b.sum()) if b.sum() != 0 else None
    a -= a.mean()
    b -= b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return (float((a * b).sum() / denom) if denom > 0 else None), sum_ratio


def median(xs):
    return statistics.median(xs) if xs else None


def summarize(runs):
    ok = [r for r in runs if r["rc"] == 0]
    walls = [r["wall_s"] for r in ok]
    rss = [r["rss_kb"] for r in ok if r["rss_kb"] is not None]
    cpus = [r["cpu_s"] for r in ok if r["cpu_s"] is not None]
    return {"runs": runs, "failed": len(runs) - len(ok), "median_s": median(walls),
            "cpu_median_s": median(cpus),
            "cold_s": walls[0] if walls else None, "warm_s": median(walls[1:]),
            "peak_rss_kb": max(rss) if rss else None}


def prepare(folder, wl=(), env=None):
    folder.mkdir(parents=True)
    for name, src in FIXTURES.items():
        if src.exists():
            shutil.copy(src, folder / name)
    if "lyso.hkl" in wl:
        lysozyme_fixtures(folder)
    for name, command in GENERATED.items():
        if name in wl:
            subprocess.run(_companion_cmd("nonBragg") + shlex.split(command), cwd=folder, env=env,
                           capture_output=True, timeout=1800, check=True)
    return folder


def lysozyme_fixtures(folder):
    """lyso.hkl and lyso.mat for T1: hen egg-white lysozyme's cell (P4(3)2(1)2, a = b = 79.1, c = 37.9 A) in
    an arbitrary orientation, with every reflection to 1.5 A (the detector's corner reaches 1.6 A) and
    structure factors drawn from a fixed seed (Wilson-like falloff): deterministic, made here."""
    a, c = 79.1, 37.9
    rng = np.random.default_rng(20261130)
    hmax, lmax = int(a / 1.5), int(c / 1.5)
    h, k, l = np.meshgrid(np.arange(-hmax, hmax + 1), np.arange(-hmax, hmax + 1), np.arange(-lmax, lmax + 1),
                          indexing="ij")
    s2 = (h / a) ** 2 + (k / a) ** 2 + (l / c) ** 2  # 1/d^2
    keep = s2 <= 1 / 1.5 ** 2
    f = 400.0 * np.exp(-6.0 * s2[keep]) * rng.exponential(1.0, keep.sum()) ** 0.5
    rows = np.column_stack((h[keep], k[keep], l[keep]))
    with open(folder / "lyso.hkl", "w") as handle:
        handle.writelines(f"{x} {y} {z} {v:.2f}\n" for (x, y, z), v in zip(rows.tolist(), f.tolist()))
    angles = np.radians([12.0, 27.0, 41.0])
    rot = np.eye(3)
    for axis, angle in enumerate(angles):
        cs, sn = np.cos(angle), np.sin(angle)
        r = np.eye(3)
        i, j = [m for m in range(3) if m != axis]
        r[i, i], r[i, j], r[j, i], r[j, j] = cs, -sn, sn, cs
        rot = r @ rot
    # MOSFLM convention: columns a*, b*, c* times the wavelength (1 A)
    recip = rot @ np.diag([1 / a, 1 / a, 1 / c])
    with open(folder / "lyso.mat", "w") as handle:
        handle.writelines(" ".join(f"{v:14.10f}" for v in row) + "\n" for row in recip)


def wait_for_builds(cache):
    """Wait until no process is building a kernel into `cache` (a first run builds one in the
    background: it must not run on into the next timed run)."""
    try:
        import fcntl
    except ImportError:
        return
    for lock in Path(cache).glob("*.lock"):
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # blocks until the builder holding it is done


def _companion_cmd(program):
    return [sys.executable, "-c", f"from {COMPANION_MODULES[program]} import entry; entry()"]


def workload_args(name):
    """(description, argument text, program) of a workload."""
    if name in COMPANIONS:
        description, program, text = COMPANIONS[name]
        return description, text, program
    return WORKLOADS[name][0], WORKLOADS[name][1] + " " + COMMON, "nanoBragg"


def bench_workload(name, runner, args, py_cmd, c_cmd, env_py, env_c, tmp):
    description, args_text, program = workload_args(name)
    wl = shlex.split(args_text)
    if program != "nanoBragg":
        py_cmd = _companion_cmd(program) + shlex.split(args.py_args)
        c_bin = args.nonbragg_bin if program == "nonBragg" else args.noisify_bin
        c_cmd = [str(Path(c_bin).resolve())] if c_bin else None
    need = [f for f in FIXTURES if f in wl or (f == "water.stol" and any(g in wl for g in GENERATED))]
    missing = [f for f in need if not FIXTURES[f].exists()]
    if missing:
        print(f"{name}: skipped, missing fixture(s) {[str(FIXTURES[f]) for f in missing]}", file=sys.stderr)
        return {"skipped": f"missing fixtures {missing}"}
    base = Path(tmp) / name
    cache = None
    if not args.reuse_cache:
        # a private, empty kernel cache: the first run is a true cold start (no kernel yet); the
        # W2 and T1 variants share W2's and T1's (warm when those ran first)
        cache = Path(tmp) / CACHE_OF.get(name, name) / "kernel-cache"
        env_py = dict(env_py, NANOBRAGG_CACHE=str(cache))
    sides = {"ours": (prepare(base / "ours", wl, env_py), py_cmd + wl, env_py)}
    if c_cmd:
        sides["c"] = (prepare(base / "c", wl, env_py), c_cmd + wl, env_c)
    runs = {side: [] for side in sides}
    for i in range(args.repeats):
        for side, (folder, cmd, env) in sides.items():  # alternate A/B so drifts hit both
            if side == "c" and i >= args.c_repeats:
                continue
            wall, cpu, rss, rc = runner.run(cmd, folder, env, folder / f"run{i}.log")
            waited = time.perf_counter()
            wait_for_builds(cache or Path(env.get("NANOBRAGG_CACHE", Path.home() / ".cache" / "nanobrag_torch")))
            waited = time.perf_counter() - waited
            runs[side].append({"wall_s": round(wall, 4), "cpu_s": cpu, "rss_kb": rss, "rc": rc,
                               "background_build_s": round(waited, 2), "notes": _notes(folder / f"run{i}.log")})
            msg = f"{name} {side:4s} run {i + 1}/{args.repeats}: {wall:8.2f} s wall"
            msg += f" {cpu:8.2f} s cpu" if cpu is not None else ""
            msg += f"  {rss / 1024:7.1f} MiB" if rss else ""
            if rc != 0:
                msg += f"  FAILED (exit {rc}); log tail:\n" + _tail(folder / f"run{i}.log")
            print(msg, file=sys.stderr, flush=True)
    result = {"description": description, "program": program, "args": args_text,
              "kernel_cache_of": CACHE_OF.get(name, name)}
    for side in sides:
        result[side] = summarize(runs[side])
    if args.render_time or program != "nanoBragg":  # the companions' criterion is the in-process time
        script = "render_time.py" if program == "nanoBragg" else "companion_time.py"
        extra = [] if program == "nanoBragg" else ["--program", program]
        result["ours"]["render"] = render_time(sides["ours"][0], py_cmd, extra + wl, env_py, args, script)
    if "c" in sides:
        ours, c = result["ours"], result["c"]["median_s"]
        o = ours["warm_s"] if ours["warm_s"] is not None else ours["median_s"]  # the target is warm
        result["ratio"] = (o / c) if o and c else None
        result["cold_ratio"] = (ours["cold_s"] / c) if ours["cold_s"] and c else None
        o, c = result["ours"]["cpu_median_s"], result["c"]["cpu_median_s"]
        result["cpu_ratio"] = (o / c) if o and c else None
        corr, sum_ratio = correlation(sides["ours"][0] / FLOAT_IMAGE, sides["c"][0] / FLOAT_IMAGE)
        result["correlation"], result["sum_ratio"] = corr, sum_ratio
        render, c_wall = result["ours"].get("render") or {}, result["c"]["median_s"]
        result["render_ratio"] = render["median_s"] / c_wall if render.get("median_s") and c_wall else None
    return result


def render_time(folder, py_cmd, wl, env, args, script="render_time.py"):
    """render_time.py (companion_time.py for nonBragg/noisify) in ours' folder (its kernel cache is warm
    by now): the in-process time, without interpreter start-up."""
    extra = shlex.split(args.py_args)
    if script != "render_time.py":  # '--program NAME' goes before the '--'
        head, wl = wl[:2], wl[2:]
        extra = head + ["--"] + extra
    else:
        extra = ["--"] + extra
    cmd = [sys.executable, str(HERE / script), "--repeats", str(max(args.repeats, 3))] + extra + wl
    try:
        done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]}
    result = json.loads(lines[-1])
    print(f"render time ({result['device']}, compiled: {result['compiled']}): median {result['median_s']:.3f} s "
          f"of {result['render_s']}", file=sys.stderr, flush=True)
    return result


def _notes(path):
    """The run's 'nanoBragg: note:' lines (what it said about compiled kernels)."""
    try:
        return [line.strip() for line in open(path, errors="replace") if line.startswith("nanoBragg: note:")]
    except OSError:
        return []


def _tail(path, n=15):
    try:
        return "".join(open(path, errors="replace").readlines()[-n:])
    except OSError:
        return "(no log)"


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def mib(kb):
    return None if kb is None else kb / 1024


def table(results):
    head = ("workload", "ours med s", "cold s", "warm s", "C med s", "warm/C", "cold/C", "ours cpu s", "C cpu s",
            "ours MiB", "C MiB", "corr", "render s", "render/C")
    rows = [head]
    for name, r in results.items():
        if "skipped" in r:
            rows.append((name, "skipped") + ("",) * (len(head) - 2))
            continue
        o, c = r["ours"], r.get("c", r.get("in_process", {}))  # D2W: the reference is our in-process run
        rows.append((name, fmt(o["median_s"]), fmt(o["cold_s"]), fmt(o["warm_s"]),
                     fmt(c.get("median_s")), fmt(r.get("ratio")), fmt(r.get("cold_ratio")), fmt(o["cpu_median_s"]),
                     fmt(c.get("cpu_median_s")), fmt(mib(o["peak_rss_kb"]), ".0f"),
                     fmt(mib(c.get("peak_rss_kb")), ".0f"), fmt(r.get("correlation"), ".8f"),
                     fmt((o.get("render") or {}).get("median_s"), ".3f"), fmt(r.get("render_ratio"), ".3f")))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------- history plot (SVG, no deps)

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def load_history(folder):
    records = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and "workloads" in rec:
            records.append(rec)
    records.sort(key=lambda r: r.get("timestamp", ""))
    return records


def svg_history(records):
    """Median wall time per workload (log scale) over records: ours solid, C dashed."""
    import math
    series = {}
    for i, rec in enumerate(records):
        for name, r in rec["workloads"].items():
            for side in ("ours", "c"):
                t = (r.get(side) or {}).get("median_s")
                if t:
                    series.setdefault((name, side), []).append((i, t))
    W, H, L, R, T, B = 900, 480, 70, 170, 30, 60
    pw, ph = W - L - R, H - T - B
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'font-family="sans-serif" font-size="12">', f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="14">nanobrag_torch benchmarks: median wall time per '
           f'workload (ours solid, C dashed)</text>']
    times = [t for pts in series.values() for _, t in pts]
    if not times:
        out.append(f'<text x="{L}" y="{T + 40}">no records</text></svg>')
        return "\n".join(out)
    lo, hi = math.floor(math.log10(min(times))), math.ceil(math.log10(max(times)))
    hi = hi if hi > lo else lo + 1
    n = max(1, len(records) - 1)

    def x(i):
        return L + (pw * i / n if len(records) > 1 else pw / 2)

    def y(t):
        return T + ph * (1 - (math.log10(t) - lo) / (hi - lo))

    out.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    for e in range(lo, hi + 1):
        yy = y(10.0 ** e)
        out.append(f'<line x1="{L}" y1="{yy:.1f}" x2="{L + pw}" y2="{yy:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{yy + 4:.1f}" text-anchor="end">{10.0 ** e:g} s</text>')
    step = max(1, len(records) // 10)
    for i in range(0, len(records), step):
        label = records[i].get("timestamp", str(i))[:16].replace("T", " ")
        out.append(f'<text x="{x(i):.1f}" y="{T + ph + 16}" text-anchor="middle" font-size="10">'
                   f'{label}</text>')
    names = sorted({name for name, _ in series})
    for k, name in enumerate(names):
        color = COLORS[k % len(COLORS)]
        for side, dash in (("ours", ""), ("c", ' stroke-dasharray="6,4"')):
            pts = series.get((name, side))
            if not pts:
                continue
            coords = " ".join(f"{x(i):.1f},{y(t):.1f}" for i, t in pts)
            out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
            for i, t in pts:
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(t):.1f}" r="3" fill="{color}"/>')
        ly = T + 16 + 18 * k
        out.append(f'<line x1="{W - R + 15}" y1="{ly - 4}" x2="{W - R + 40}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{W - R + 46}" y="{ly}">{name}</text>')
    out.append(f'<text x="{L + pw / 2}" y="{H - 12}" text-anchor="middle">record (oldest to newest)</text>')
    out.append("</svg>")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3, help="runs per program and workload (default 3)")
    p.add_argument("--quick", action="store_true", help="one run each")
    p.add_argument("--c-repeats", type=int, help="runs of C per workload (default --repeats)")
    p.add_argument("--only", help="comma-separated workloads, e.g. W1,W3")
    p.add_argument("--c-bin", default=os.environ.get("NB_C_BIN"),
                   help="nanoBragg.c build to compare with (default $NB_C_BIN; none: ours only)")
    p.add_argument("--nonbragg-bin", default=os.environ.get("NB_NONBRAGG_BIN"),
                   help="nonBragg.c build for workload N1 (default $NB_NONBRAGG_BIN)")
    p.add_argument("--noisify-bin", default=os.environ.get("NB_NOISIFY_BIN"),
                   help="noisify.c build for workload N2 (default $NB_NOISIFY_BIN)")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both programs (default: all cores)")
    p.add_argument("--py-args", default="", help='extra arguments for ours, e.g. "-dtype float32 -nthreads 2"')
    p.add_argument("--reuse-cache", action="store_true",
                   help="use the normal compiled-kernel cache (default: an empty one per workload, so 'cold' "
                        "is a first run without its kernel; after each run of ours the benchmark waits, "
                        "untimed, for any background kernel build to finish before the next run)")
    p.add_argument("--render-time", action="store_true",
                   help="also time the render alone in-process (render_time.py), without start-up or files")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed (default 1800)")
    p.add_argument("--out", help="JSON record path (default benchmarks/results/<timestamp>.json)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folders")
    p.add_argument("--plot", nargs="?", const=str(RESULTS / "history.svg"), metavar="SVG",
                   help="draw the history of records in --results (default results/history.svg) and exit")
    p.add_argument("--results", default=str(RESULTS), help="folder of JSON records for --plot")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    args.c_repeats = min(args.repeats, args.c_repeats or args.repeats)
    known = list(WORKLOADS) + list(DATASETS) + list(DISTRIBUTED) + list(COMPANIONS)
    by_upper = {w.upper(): w for w in known}
    args.names = known if not args.only else [by_upper.get(w.strip().upper(), w.strip())
                                              for w in args.only.split(",") if w.strip()]
    unknown = [w for w in args.names if w not in known]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; choose from {known}")
    for c_bin in (args.c_bin, args.nonbragg_bin, args.noisify_bin):
        if c_bin and not os.access(c_bin, os.X_OK):
            p.error(f"C binary {c_bin} is not an executable file")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.plot:
        records = load_history(args.results)
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        Path(args.plot).write_text(svg_history(records))
        print(f"{len(records)} record(s) -> {args.plot}")
        return 0

    info = machine_info()
    threads = args.threads or info["nproc"]
    base_env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env_py = dict(base_env)
    src = str(REPO / "src")  # benchmark this checkout even when the package is not installed
    env_py["PYTHONPATH"] = src + (os.pathsep + env_py["PYTHONPATH"] if env_py.get("PYTHONPATH") else "")
    py_extra = shlex.split(args.py_args)
    py_cmd = [sys.executable, "-m", "nanobrag_torch"] + py_extra
    # the bytecode an installed package has: where PYTHONDONTWRITEBYTECODE is set, a source changed
    # since the install would otherwise be compiled again in every timed run (~0.07 s)
    compileall.compile_dir(src, quiet=1)
    c_cmd = [str(Path(args.c_bin).resolve())] if args.c_bin else None

    runner = Runner(args.timeout)
    stamp = dt.datetime.now(dt.timezone.utc)
    record = {
        "timestamp": stamp.isoformat(timespec="seconds"),
        "machine": info,
        "versions": versions(env_py),
        "git": git_state(),
        "threads": {"OMP_NUM_THREADS": threads,
                    "ours_nthreads": _nthreads(py_extra)},
        "ours_cmd": py_cmd,
        "c_bin": c_cmd[0] if c_cmd else None,
        "nonbragg_c_bin": args.nonbragg_bin, "noisify_c_bin": args.noisify_bin,
        "repeats": args.repeats,
        "rss_method": runner.method,
        "loadavg_start": _loadavg(),
        "workloads": {},
    }
    tmp = tempfile.mkdtemp(prefix="nb-bench-")
    failed = False
    try:
        record["rss_floor_kb"] = runner.floor(tmp)
        for name in args.names:
            if name in DISTRIBUTED:
                res = bench_distributed(name, runner, args, py_cmd, env_py, tmp, prepare, summarize)
            elif name in DATASETS:
                res = bench_dataset(name, runner, args, py_cmd, c_cmd[0] if c_cmd else None, env_py, base_env, tmp,
                                    prepare, summarize)
            else:
                res = bench_workload(name, runner, args, py_cmd, c_cmd, env_py, base_env, tmp)
            record["workloads"][name] = res
            failed |= any(res.get(side, {}).get("failed") for side in ("ours", "c"))
    finally:
        if args.keep:
            print(f"work folders kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    record["loadavg_end"] = _loadavg()
    out = Path(args.out) if args.out else RESULTS / (stamp.strftime("%Y%m%d-%H%M%S") + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\n{info['cpu']}, {info['nproc']} cores, {info['memory_gib']} GiB; OMP_NUM_THREADS={threads}; "
          f"load {record['loadavg_start']} -> {record['loadavg_end']}; "
          f"torch {record['versions'].get('torch')}; peak RSS via {runner.method}"
          + (f" (floor {runner.rss_floor_kb / 1024:.1f} MiB)" if runner.rss_floor_kb else ""))
    print(table(record["workloads"]))
    for name, r in record["workloads"].items():
        if name in DISTRIBUTED and "ratio" in r:
            print(f"{name}: ours = -workers 2 -nthreads 1, 'C' columns = in-process -nthreads 2; workers/in-process "
                  f"{fmt(r['ratio'])}, peak memory per worker {fmt(r.get('worker_peak_mib'), '.0f')} MiB")
    print(f"record: {out}")
    return 1 if failed else 0


def _loadavg():
    """1/5/15-minute load: other jobs on the machine inflate wall times (CPU seconds much less)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _nthreads(extra):
    for i, a in enumerate(extra[:-1]):
        if a == "-nthreads":
            return int(extra[i + 1])
    return None


if __name__ == "__main__":
    sys.exit(main())
