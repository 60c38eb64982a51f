"""Source list: up to five numbers per line, X Y Z weight wavelength(m); missing columns are NaN.

Separators are those of the C reader (blank, tab, comma, semicolon, colon, '!'). Unlike the C
reader, blank lines and '#' comments are skipped and non-numeric text is an error; an explicit
'nan' is accepted and means "use the default" like a missing column.
"""
import math
import re

import numpy as np

from ..errors import InputFileError
from .hkl import read_text

_SEPARATORS = re.compile(r"[ \t,;:!\r\v\f]+")
COLUMNS = 5


def table_lines(path):
    """(line number, line, fields) of each line that holds data: '#' comments and blank lines skipped."""
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        tokens = [t for t in _SEPARATORS.split(line.split("#", 1)[0]) if t]
        if tokens:
            yield lineno, line, tokens


def read_sources(path):
    rows = []
    for lineno, _, tokens in table_lines(path):
        row = [math.nan] * COLUMNS
        for i, token in enumerate(tokens[:COLUMNS]):
            try:
                row[i] = float(token)
            except ValueError:
                raise InputFileError(f"{path} line {lineno}: non-numeric value {token[:40]!r}") from None
            if math.isinf(row[i]):
                raise InputFileError(f"{path} line {lineno}: infinite value {token[:40]!r}")
        rows.append(row)
    if not rows:
        raise InputFileError(f"{path}: no sources found")
    return np.array(rows, dtype=np.float64)


def read_sources_with_defaults(path, beam, source_distance, lambda0):
    """The source file with missing columns filled as the C fills them: a source
    `source_distance` upstream along the beam, weight 1, wavelength lambda0."""
    return fill_source_defaults(read_sources(path), beam, source_distance, lambda0)


def fill_source_defaults(rows, beam, source_distance, lambda0):
    """Missing (NaN) columns filled in place as the C fills them; returns rows."""
    for j, default in enumerate([-source_distance * c for c in beam] + [1.0, lambda0]):
        col = rows[:, j]
        col[np.isnan(col)] = default
    return rows
