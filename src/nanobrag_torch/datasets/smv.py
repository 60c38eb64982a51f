"""SMV files, one per frame (PREFIX_00001.img ...), as nanoBragg writes its -noisefile / -intfile."""
from __future__ import annotations

import glob
import os

import numpy as np

from ..errors import InputFileError
from ..io.smv import int_image, read_smv, write_smv
from ..outputs import header_fields, statistics


def frame_name(prefix: str, index: int, count: int, ext: str) -> str:
    """PREFIX_00001.ext for frame index 0 (1-based numbers, as processing programs' templates expect)."""
    return "%s_%0*d.%s" % (prefix, max(5, len(str(count))), index + 1, ext)


def integer_image(result) -> np.ndarray:
    """The frame's -noisefile image, or with -nonoise its -intfile image (scaled as a single run scales it)."""
    if result.counts is not None:
        return result.counts
    v = result.settings
    rendered = np.zeros(result.photons.shape, dtype=bool)
    x0, x1, y0, y1 = v.roi
    rendered[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
    if v.mask_image is not None:
        rendered &= v.mask_image != 0
    scale = v.intfile_scale
    if scale <= 0.0:
        max_i = statistics(result.photons, rendered, tuple(v.roi), v.oversample, v.pixel_size)["max_I"]
        scale = 55000.0 / max_i if max_i > 0.0 else 1.0
    return int_image(result.photons, scale, v.adc_offset, tuple(v.roi))


class PerFrameFiles:
    """Base of the one-file-per-frame outputs: names, the overwrite/resume rules, resumption.

    Each file is written under a temporary name and renamed when complete, so an interrupted run
    leaves only whole frames; -resume continues after the last frame whose file exists."""

    ext = "img"
    option = "-smv"

    def __init__(self, prefix: str, plan, argv):
        self.prefix, self.count, self.plan = prefix, plan.count, plan
        self.argv = [a for a in argv if a not in ("-resume", "-overwrite")]
        folder = os.path.dirname(os.path.abspath(prefix))
        if not os.path.isdir(folder):
            raise InputFileError(f"{prefix}: output folder {folder} does not exist")

    def name(self, index: int) -> str:
        return frame_name(self.prefix, index, self.count, self.ext)

    def existing(self) -> list:
        return sorted(glob.glob(glob.escape(self.prefix) + "_" + "[0-9]" * 5 + "*." + self.ext))

    def frames_done(self) -> int:
        done = 0
        while done < self.count and os.path.exists(self.name(done)):
            done += 1
        return done

    def open(self, renderer, start: int) -> None:
        self.renderer = renderer

    def close(self, complete: bool) -> None:
        pass

    def sheet_name(self) -> str:
        return f"{self.prefix}.{self.ext}.png"


class SMVSeries(PerFrameFiles):
    """-smv PREFIX: PREFIX_00001.img ... (noise images; with -nonoise the scaled integer images).

    SMV headers are nanoBragg's own, so the series' provenance (program version, command line, plan,
    every frame's seed and arguments) goes beside them in PREFIX.img.json."""

    def open(self, renderer, start: int) -> None:
        import json
        import shlex

        from ..io.atomic import atomic_write_bytes
        from .meta import program_version

        frames = [{"file": os.path.basename(self.name(f.index)), "seed": f.seed, "args": shlex.join(f.args)}
                  for f in self.plan]
        record = {"program": "nanobrag_torch", "version": program_version(),
                  "command_line": shlex.join(["nanoBragg", *self.argv]), "plan": self.plan.describe(),
                  "frames": frames}
        atomic_write_bytes(f"{self.prefix}.{self.ext}.json", (json.dumps(record, indent=1) + "\n").encode())

    def write(self, result) -> None:
        write_smv(self.name(result.frame.index), header_fields(result.settings), integer_image(result))

    def read_frame(self, index: int) -> np.ndarray:
        return read_smv(self.name(index)).data
