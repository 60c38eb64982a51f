"""nb-compare: run nanoBragg.c and nanobrag_torch on the same arguments and compare their float images.

    nb-compare [--outdir DIR] [--roi x0 x1 y0 y1] [--threshold T] [--c-bin PATH] [--c-threads N]
               -- <nanoBragg args>

Each program runs in its own scratch folder that links every entry of the current folder (so relative
input paths work); files a run may write (default output names, -noisefile/-pgmfile/-dumpfile ...)
are copied instead of linked, so neither run can overwrite the originals. The float and SMV images are
forced into DIR. Writes DIR/summary.json and c.png, py.png, diff.png previews.
Exit: 0 correlation >= threshold, 3 below, 2 a program failed, 1 usage error.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from .errors import NanoBraggError
from .io.atomic import atomic_write_bytes
from .io.smv import read_smv
from .preview import png_bytes, to_gray
from .tracediff import Usage, _Parser

# names nanoBragg writes unless told otherwise, and options (matched as substrings, as nanoBragg
# does) whose value is a file it writes
DEFAULT_OUTPUTS = ("floatimage.bin", "intimage.img", "noiseimage.img", "image.pgm", "Fdump.bin")
OUTPUT_OPTIONS = ("-floatfile", "-floatimage", "-intfile", "-intimage", "-pgmfile", "-pgmimage",
                  "-noisefile", "-noiseimage", "-dump", "-stolout")
PEAKS = 50
WHO = {"c": "the C program", "py": "nanobrag_torch"}


class ProgramFailed(Exception):
    pass


def parse(argv):
    if "--" not in argv:
        raise Usage("put the nanoBragg arguments after '--'")
    cut = argv.index("--")
    p = _Parser(prog="nb-compare", add_help=False)
    p.add_argument("--outdir", default="nb_compare_out")
    p.add_argument("--roi", nargs=4, type=int, metavar=("X0", "X1", "Y0", "Y1"))
    p.add_argument("--threshold", type=float, default=0.999)
    p.add_argument("--c-bin", default=os.environ.get("NB_C_BIN"))
    p.add_argument("--c-threads", type=int, metavar="N",
                   help="OMP_NUM_THREADS for the C program (1 reproduces its loop order exactly)")
    opts = p.parse_args(argv[:cut])
    if opts.c_threads is not None and opts.c_threads < 1:
        raise Usage("--c-threads must be at least 1")
    opts.args = argv[cut + 1:]
    if not opts.args:
        raise Usage("no nanoBragg arguments after '--'")
    if not opts.c_bin:
        raise Usage("name the C program with --c-bin PATH or $NB_C_BIN")
    c_bin = shutil.which(opts.c_bin) if os.sep not in opts.c_bin else opts.c_bin
    if not c_bin or not os.path.isfile(c_bin) or not os.access(c_bin, os.X_OK):
        raise Usage(f"C program {opts.c_bin} not found or not executable")
    opts.c_bin = os.path.abspath(c_bin)
    return opts


def written_names(args):
    """Entries of the current folder that a run may write to (their top-level path component)."""
    names = set(DEFAULT_OUTPUTS)
    for i, a in enumerate(args[:-1]):
        if a.startswith("-") and any(opt in a for opt in OUTPUT_OPTIONS):
            value = args[i + 1]
            if os.path.isabs(value):
                raise Usage(f"{a} {value}: absolute output paths would be written by both programs")
            names.add(os.path.normpath(value).split(os.sep)[0])
    return names


def scratch_folder(root, label, protected):
    """A folder mirroring the current one: links to its entries, copies of the ones a run may write."""
    folder = os.path.join(root, label)
    os.mkdir(folder)
    for name in os.listdir("."):
        src = os.path.abspath(name)
        if name in protected:
            if os.path.isfile(src):
                shutil.copy2(src, os.path.join(folder, name))
            elif os.path.isdir(src):
                shutil.copytree(src, os.path.join(folder, name))
        else:
            os.symlink(src, os.path.join(folder, name))
    return folder


def run_program(label, cmd, cwd, outdir, env=None):
    """Run one program; its stdout/stderr go to DIR/<label>_stdout.txt. Returns wall seconds."""
    log = os.path.join(outdir, f"{label}_stdout.txt")
    start = time.time()
    with open(log, "wb") as handle:
        try:
            rc = subprocess.run(cmd, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, env=env).returncode
        except OSError as exc:
            raise ProgramFailed(f"{WHO[label]} could not start: {exc.strerror or exc}") from None
    seconds = time.time() - start
    if rc != 0:
        raise ProgramFailed(f"{WHO[label]} failed (exit {rc}); see {log}")
    return seconds


def read_float(label, floatfile, intfile):
    """Float image shaped by the SMV header of the same run's integer image."""
    try:
        header = read_smv(intfile)
    except NanoBraggError as exc:
        raise ProgramFailed(f"{WHO[label]} wrote no readable image: {exc}") from None
    need = 4 * header.width * header.height
    if not os.path.isfile(floatfile) or os.path.getsize(floatfile) != need:
        raise ProgramFailed(f"{WHO[label]} wrote no {header.width}x{header.height} float image")
    return np.fromfile(floatfile, dtype="<f4").reshape(header.height, header.width).astype(np.float64)


def correlation(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    if den == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float((a * b).sum() / den)


def local_maxima(img):
    """Mask of pixels that are the maximum of their 3x3 neighbourhood and positive."""
    pad = np.pad(img, 1, constant_values=-np.inf)
    h, w = img.shape
    best = np.max([pad[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    return (img >= best) & (img > 0)


def peaks_matched(c, py, count=PEAKS):
    """How many of C's `count` brightest local maxima have a local maximum of ours within 1 pixel."""
    cm, pm = local_maxima(c), local_maxima(py)
    ys, xs = np.nonzero(cm)
    top = np.argsort(-c[ys, xs], kind="stable")[:count]
    near = np.pad(pm, 1)
    h, w = pm.shape
    near = np.max([near[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    return int(near[ys[top], xs[top]].sum()), int(top.size)


def summarize(c, py, roi):
    if roi is not None:
        x0, x1, y0, y1 = roi
        if not (0 <= x0 <= x1 < c.shape[1] and 0 <= y0 <= y1 < c.shape[0]):
            raise Usage(f"--roi {x0} {x1} {y0} {y1} is not inside the {c.shape[1]}x{c.shape[0]} image")
        c, py = c[y0:y1 + 1, x0:x1 + 1], py[y0:y1 + 1, x0:x1 + 1]
    diff = py - c
    sum_c, sum_py = float(c.sum()), float(py.sum())
    matched, considered = peaks_matched(c, py)
    return dict(correlation=correlation(c, py), sum_c=sum_c, sum_py=sum_py,
                sum_ratio=sum_py / sum_c if sum_c != 0 else (1.0 if sum_py == 0 else float("nan")),
                max_abs_diff=float(np.abs(diff).max()) if diff.size else 0.0,
                rmse=float(np.sqrt((diff * diff).mean())) if diff.size else 0.0,
                peaks_matched=matched, peaks_considered=considered, shape=list(c.shape)), (c, py, diff)


def compare(opts):
    outdir = os.path.abspath(opts.outdir)
    os.makedirs(outdir, exist_ok=True)
    protected = written_names(opts.args)
    images = {}
    seconds = {}
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [pkg_parent, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="nb_compare_") as root:
        c_env = None if opts.c_threads is None else dict(os.environ, OMP_NUM_THREADS=str(opts.c_threads))
        runs = (("c", [opts.c_bin], c_env), ("py", [sys.executable, "-m", "nanobrag_torch"], env))
        for label, prog, run_env in runs:
            floatfile, intfile = os.path.join(outdir, f"{label}_float.bin"), os.path.join(outdir, f"{label}_int.img")
            for stale in (floatfile, intfile):
                if os.path.exists(stale):
                    os.unlink(stale)
            cwd = scratch_folder(root, label, protected)
            cmd = prog + list(opts.args) + ["-floatfile", floatfile, "-intfile", intfile]
            seconds[label] = run_program(label, cmd, cwd, outdir, run_env)
            images[label] = read_float(label, floatfile, intfile)
    if images["c"].shape != images["py"].shape:
        raise ProgramFailed(f"image sizes differ: C {images['c'].shape[::-1]} vs ours {images['py'].shape[::-1]}")
    summary, (c, py, diff) = summarize(images["c"], images["py"], opts.roi)
    summary.update(c_seconds=seconds["c"], py_seconds=seconds["py"], args=list(opts.args), roi=opts.roi,
                   threshold=opts.threshold, passed=summary["correlation"] >= opts.threshold)
    finite = {k: (None if isinstance(x, float) and not np.isfinite(x) else x) for k, x in summary.items()}
    atomic_write_bytes(os.path.join(outdir, "summary.json"), (json.dumps(finite, indent=2) + "\n").encode())
    for name, img in (("c", c), ("py", py), ("diff", np.abs(diff))):
        atomic_write_bytes(os.path.join(outdir, f"{name}.png"), png_bytes(to_gray(img)))
    return summary


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    try:
        opts = parse(argv)
        s = compare(opts)
    except Usage as exc:
        print(f"nb-compare: usage error: {exc}", file=sys.stderr)
        return 1
    except ProgramFailed as exc:
        print(f"nb-compare: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"nb-compare: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line, never a traceback
        print(f"nb-compare: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("correlation %.9f  sum_ratio %.9f  max_abs_diff %.6g  rmse %.6g  peaks %d/%d  C %.2fs  py %.2fs"
          % (s["correlation"], s["sum_ratio"], s["max_abs_diff"], s["rmse"], s["peaks_matched"],
             s["peaks_considered"], s["c_seconds"], s["py_seconds"]))
    if not s["passed"]:
        print(f"nb-compare: correlation {s['correlation']:.9f} is below the threshold {opts.threshold}",
              file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
