"""-export_c DIR: the nanoBragg.c arguments of every frame, with the input files they need.

DIR gets frame_00001.args ... (one line each, shell-quoted: the base options plus the frame's
-phi/-seed or -misset/-seed and per-shot options), copies of the input files those arguments name
(-hkl, -mat, -sourcefile, -img, -mask, -stol, or an Fdump.bin the run would read), each shot's
source list (shot_00001_sources.txt) and run_c.sh, which runs $NB_C_BIN (default nanoBragg) on
every frame in DIR: frame_00001.bin (float image), frame_00001.img (noise image). An -expt file's
geometry is given as nanoBragg options (and its crystal as DIR/expt.mat). Any frame can be
checked against C with `cd DIR && nb-compare -- $(cat frame_00001.args)`.
"""
from __future__ import annotations

import glob
import os
import shlex
import shutil

import numpy as np

from ..errors import InputFileError, UsageError
from ..io.atomic import atomic_write_bytes
from ..options import OPTIONS
from ..settings import RTD
from .smv import frame_name

# options whose value is an input file (matched exactly; their values are copied into DIR)
INPUT_OPTIONS = ("-hkl", "-mat", "-matrix", "-sourcefile", "-img", "-mask", "-stol", "-4stol", "-Q")
OWN_OPTIONS = ("-dtype", "-device", "-nthreads", "-trace_pixel", "--debug", "-debug", "-noprogress", "-progress",
               "-write_expt")
# a DIALS experiment list, which nanoBragg.c cannot read: exported as nanoBragg options (expt_args)
EXPT = "-expt"

RUN_C = """#!/bin/sh
# nanoBragg.c on every frame of this dataset: frame_NNNNN.bin (float image), frame_NNNNN.img (noise image)
set -e
cd "$(dirname "$0")"
NB="${NB_C_BIN:-nanoBragg}"
for f in frame_*.args; do
    n="${f%.args}"
    eval "set -- $(cat "$f")"
    "$NB" "$@" -floatfile "$n.bin" -intfile "$n.int.img" -noisefile "$n.img" -nopgm > "$n.log"
done
"""


def portable_args(base, folder: str) -> list:
    """The base arguments for nanoBragg.c run in `folder`: input files copied there (by base name),
    our own options left out, an -expt file's geometry given as nanoBragg options (expt_args)."""
    out, i = [], 0
    while i < len(base):
        tok = base[i]
        arity = len(OPTIONS.get(tok[1:], ())) if tok.startswith("-") else 0
        values = base[i + 1:i + 1 + arity]
        if tok in OWN_OPTIONS or tok == EXPT:
            i += 1 + arity
            continue
        if tok in INPUT_OPTIONS and values:
            values = [_copy_in(values[0], folder)]
        out += [tok, *values]
        i += 1 + arity
    if not any(tok == "-hkl" for tok in out) and os.path.exists("Fdump.bin"):
        _copy_in("Fdump.bin", folder)  # nanoBragg.c reads it when no -hkl is given
    return (expt_args(base, folder) if EXPT in base else []) + out


def _mm(x: float) -> str:
    return repr(x * 1000.0)


def _vector(option: str, vec) -> list:
    return [option, *(repr(float(c)) for c in vec)]


def expt_args(base, folder: str) -> list:
    """An -expt file's geometry as nanoBragg.c options, to go before the other options (which then
    override them as they override the file): the first panel as a CUSTOM frame pivoting about
    the beam spot (the corner nanoBragg.c computes from distance and beam centre is the file's to
    rounding), beam, wavelength, polarization, spindle and scan, and the crystal (while it is the
    file's) as a MOSFLM matrix, expt.mat, written into `folder`."""
    from ..cli import load_settings
    from ..experiment import _frame_values

    v = load_settings(list(base), lambda text: None)
    exp, out = v.expt, []
    if exp.beam is not None:
        out += _vector("-beam_vector", exp.beam) + ["-lambda", repr(exp.wavelength * 1e10)]
        if exp.kahn is not None:
            out += ["-polar", repr(float(exp.kahn))]
        if exp.polar_vector is not None:
            out += _vector("-polar_vector", exp.polar_vector)
    if exp.panels:
        p = exp.panels[0]
        frame = _frame_values(p, exp.beam if exp.beam is not None else v.beam)
        out += _vector("-fdet_vector", p.fast) + _vector("-sdet_vector", p.slow) + _vector("-odet_vector", p.normal)
        out += ["-pixel", _mm(p.pixel_size), "-detpixels_f", str(p.fpixels), "-detpixels_s", str(p.spixels),
                "-pivot", "beam", "-distance", _mm(frame["distance"]), "-Xbeam", _mm(frame["Fbeam"]),
                "-Ybeam", _mm(frame["Sbeam"])]
        if p.thickness > 0 and p.mu > 0:
            out += ["-detector_thick", repr(p.thickness * 1e6), "-detector_abs", repr(1e6 / p.mu)]
    if exp.spindle is not None:
        out += _vector("-spindle_axis", exp.spindle)
    if exp.phi0 is not None:
        out += ["-phi", repr(exp.phi0 * RTD), "-osc", repr(exp.osc * RTD)]
    if exp.real is not None and not v.user_cell and v.matfile is None:
        out += ["-mat", _write_matrix(exp.real, v.lambda0 * 1e10, folder)]
    return out


def _write_matrix(real, lambda_A: float, folder: str) -> str:
    """The MOSFLM matrix of real-space rows a, b, c (Angstrom): row i holds the i-th components of
    a*, b*, c* times the wavelength, as nanoBragg.c's -mat reads it."""
    a, b, c = (np.asarray(r, dtype=np.float64) for r in real)
    volume = float(np.dot(a, np.cross(b, c)))
    recip = np.stack((np.cross(b, c), np.cross(c, a), np.cross(a, b))) / volume * lambda_A
    text = "".join(" ".join(repr(float(x)) for x in recip[:, i]) + "\n" for i in range(3))
    atomic_write_bytes(os.path.join(folder, "expt.mat"), text.encode())
    return "expt.mat"


def _copy_in(path: str, folder: str) -> str:
    name = os.path.basename(path)
    target = os.path.join(folder, name)
    if os.path.abspath(path) != os.path.abspath(target):
        try:
            shutil.copyfile(path, target)
        except OSError as exc:
            raise InputFileError(f"{path}: cannot copy into {folder} ({exc.strerror or exc})") from None
    return name


def export_c(folder: str, base, plan, say, overwrite: bool = False) -> None:
    """Write DIR (see the module docstring) for every frame of `plan`."""
    parent = os.path.dirname(os.path.abspath(folder))
    if not os.path.isdir(parent):
        raise InputFileError(f"{folder}: folder {parent} does not exist")
    os.makedirs(folder, exist_ok=True)
    old = glob.glob(os.path.join(glob.escape(folder), "frame_*.args"))
    if old and not overwrite:
        raise UsageError(f"{old[0]}: exists; give -overwrite to replace the exported frames")
    for name in old:
        os.unlink(name)
    args = portable_args(base, folder)
    for frame in plan:
        own = [os.path.basename(a) if os.path.dirname(a) == os.path.abspath(folder) else a
               for a in plan.frame_args(frame, os.path.abspath(folder))]
        line = shlex.join(args + own) + "\n"
        atomic_write_bytes(frame_name(os.path.join(folder, "frame"), frame.index, plan.count, "args"), line.encode())
    script = os.path.join(folder, "run_c.sh")
    atomic_write_bytes(script, RUN_C.encode())
    os.chmod(script, 0o755)
    say(f"wrote nanoBragg.c arguments of {plan.count} frames to {folder} (run_c.sh runs them all)")
