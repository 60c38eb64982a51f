"""Amorphous-scattering table for -stol / -4stol / -Q: 'sin(theta)/lambda  F' per line.

nanoBragg.c reads this table but never uses it for the image, so here it is only read and
checked (same separators as the source list; blank lines and '#' comments skipped).
"""
import math
import re

import numpy as np

from ..errors import InputFileError
from .hkl import read_text
from .sources import _SEPARATORS, table_lines

_COMMENT = re.compile(r"#[^\n]*")


def read_stol(path):
    """(n, 2) float64 rows [stol, F]; a clear error naming the line for anything malformed."""
    rows = _fast_rows(read_text(path))
    return rows if rows is not None else _scanned_rows(path)


def _fast_rows(text):
    """The rows when every line is well formed (one vectorized conversion), else None."""
    pairs = [fields[:2] for fields in (line.split() for line in
                                       _SEPARATORS.sub(" ", _COMMENT.sub("", text)).split("\n")) if fields]
    if not pairs or any(len(pair) < 2 for pair in pairs):
        return None
    try:
        rows = np.array(pairs, dtype=np.float64)
    except ValueError:
        return None
    return rows if np.isfinite(rows).all() else None


def _scanned_rows(path):
    """Line by line (slow), to name the first bad line."""
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
