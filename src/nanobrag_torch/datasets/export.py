"""-export_c DIR: the nanoBragg.c arguments of every frame, with the input files they need.

DIR gets frame_00001.args ... (one line each, shell-quoted: the base options plus the frame's
-phi/-seed or -misset/-seed and per-shot options), copies of the input files those arguments name
(-hkl, -mat, -sourcefile, -img, -mask, -stol, or an Fdump.bin the run would read), each shot's
source list (shot_00001_sources.txt) and run_c.sh, which runs $NB_C_BIN (default nanoBragg) on
every frame in DIR: frame_00001.bin (float image), frame_00001.img (noise image). Any frame can be
checked against C with `cd DIR && nb-compare -- $(cat frame_00001.args)`.
"""
from __future__ import annotations

import glob
import os
import shlex
import shutil

from ..errors import InputFileError, UsageError
from ..io.atomic import atomic_write_bytes
from ..options import OPTIONS
from .smv import frame_name

# options whose value is an input file (matched exactly; their values are copied into DIR)
INPUT_OPTIONS = ("-hkl", "-mat", "-matrix", "-sourcefile", "-img", "-mask", "-stol", "-4stol", "-Q")
OWN_OPTIONS = ("-dtype", "-device", "-nthreads", "-trace_pixel", "--debug", "-debug", "-noprogress", "-progress",
               "-write_expt")
# our options that change the image: nanoBragg.c cannot be given the same frame
NOT_FOR_C = ("-expt",)

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
    our own options left out."""
    refused = [tok for tok in base if tok in NOT_FOR_C]
    if refused:
        raise UsageError(f"option -export_c: {refused[0]} is not a nanoBragg.c option; give that geometry as "
                         "nanoBragg options to export the frames")
    out, i = [], 0
    while i < len(base):
        tok = base[i]
        arity = len(OPTIONS.get(tok[1:], ())) if tok.startswith("-") else 0
        values = base[i + 1:i + 1 + arity]
        if tok in OWN_OPTIONS:
            i += 1 + arity
            continue
        if tok in INPUT_OPTIONS and values:
            values = [_copy_in(values[0], folder)]
        out += [tok, *values]
        i += 1 + arity
    if not any(tok == "-hkl" for tok in out) and os.path.exists("Fdump.bin"):
        _copy_in("Fdump.bin", folder)  # nanoBragg.c reads it when no -hkl is given
    return out


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
