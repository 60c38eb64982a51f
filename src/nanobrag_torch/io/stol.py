"""Amorphous-scattering table for -stol / -4stol / -Q: 'sin(theta)/lambda  F' per line.

nanoBragg.c reads this table but never uses it for the image, so here it is only read and
checked (same separators as the source list; blank lines and '#' comments skipped).
"""
import math

import numpy as np

from ..errors import InputFileError
from .sources import table_lines


def read_stol(path):
    rows = []
    for lineno, line, tokens in table_lines(path):
        if len(tokens) < 2:
            raise InputFileError(f"{path} line {lineno}: expected 'stol F', got {line.strip()[:60]!r}")
        try:
            row = [float(t) for t in tokens[:2]]
        except ValueError:
            raise InputFileError(f"{path} line {lineno}: non-numeric value in {line.strip()[:60]!r}") from None
        if not all(math.isfinite(x) for x in row):
            raise InputFileError(f"{path} line {lineno}: non-finite value in {line.strip()[:60]!r}")
        rows.append(row)
    if not rows:
        raise InputFileError(f"{path}: no data found")
    return np.array(rows, dtype=np.float64)
