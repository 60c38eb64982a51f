"""Structure-factor files: text HKL lists and the binary Fdump cache.

Fdump layout (as the C program writes it): the text line "h_min h_max k_min k_max l_min l_max",
a newline and a form feed, then (h_range+1)*(k_range+1)*(l_range+1) native float64 values in C
order; the last plane along each axis is padding and always zero.
"""
import io
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import InputFileError
from .atomic import atomic_open

MAX_CELLS = 200_000_000  # refuse grids above ~1.6 GB of float64
_INDEX_LIMIT = 2**31  # indices must fit a C int


@dataclass
class HKLGrid:
    F: np.ndarray
    h_min: int
    h_max: int
    k_min: int
    k_max: int
    l_min: int
    l_max: int
    count: int

    @property
    def ranges(self):
        return (self.h_max - self.h_min + 1, self.k_max - self.k_min + 1, self.l_max - self.l_min + 1)


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_text(path):
    # undecodable bytes become U+FFFD, which then fails as a non-numeric token
    return read_bytes(path).decode("utf-8", errors="replace")


def _to_float(path, lineno, token):
    try:
        return float(token)
    except ValueError:
        raise InputFileError(f"{path} line {lineno}: non-numeric value {token[:40]!r}") from None


def _scan_hkl(path, text):
    """Line-by-line parse: slow, but knows line numbers (used to word error messages)."""
    rows, linenos = [], []
    for lineno, line in enumerate(text.split("\n"), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) < 4:
            raise InputFileError(f"{path} line {lineno}: expected 'h k l F', got {line.strip()[:60]!r}")
        rows.append([_to_float(path, lineno, t) for t in parts[:4]])
        linenos.append(lineno)
    return np.array(rows, dtype=np.float64).reshape(-1, 4), linenos


def _first_problem(data):
    """(row, message) of the first invalid entry, or None."""
    hkl = data[:, :3]
    # whole-array tests first: per-row reductions over three columns cost ~20 ms a 300,000-line file
    if np.isfinite(data).all() and (hkl == np.round(hkl)).all() and (np.abs(hkl) < _INDEX_LIMIT).all():
        return None
    checks = [
        (~np.isfinite(data[:, 3]), "non-finite F"),
        (~np.isfinite(hkl).all(axis=1) | (hkl != np.round(hkl)).any(axis=1), "non-integer index"),
        ((np.abs(hkl) >= _INDEX_LIMIT).any(axis=1), "index out of range"),
    ]
    found = [(int(np.argmax(bad)), msg) for bad, msg in checks if bad.any()]
    return min(found, key=lambda item: item[0]) if found else None


def read_hkl(path, default_F=0.0, text=None):
    """Read 'h k l F' lines; blank lines and '#' comments are skipped, columns after F ignored.

    text: the file's text, when the caller has read it already."""
    text = read_text(path) if text is None else text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on empty input; we raise below instead
            data = np.loadtxt(io.StringIO(text), usecols=(0, 1, 2, 3), comments="#", ndmin=2)
        problem = _first_problem(data) if data.size else None
    except ValueError:
        problem = True
    if problem is not None:  # rescan to name the line (or accept what float() accepts)
        data, linenos = _scan_hkl(path, text)
        problem = _first_problem(data) if data.size else None
        if problem is not None:
            raise InputFileError(f"{path} line {linenos[problem[0]]}: {problem[1]}")
    if not data.size:
        raise InputFileError(f"{path}: no reflections found")
    hkl = data[:, :3].astype(np.int64)
    lo, hi = hkl.min(axis=0), hkl.max(axis=0)
    shape = tuple(int(v) for v in hi - lo + 1)
    cells = shape[0] * shape[1] * shape[2]
    if cells > MAX_CELLS:
        raise InputFileError(
            f"{path}: index range {shape[0]}x{shape[1]}x{shape[2]} = {cells} grid cells is too large"
            f" (limit {MAX_CELLS})")
    F = np.full(shape, float(default_F), dtype=np.float64)
    flat = np.ravel_multi_index(tuple((hkl - lo).T), shape)
    # later entries win: keep the last occurrence of each index explicitly
    uniq, first_in_reversed = np.unique(flat[::-1], return_index=True)
    F.flat[uniq] = data[::-1, 3][first_in_reversed]
    return HKLGrid(F, int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]), int(lo[2]), int(hi[2]), len(data))


def write_fdump(path, grid):
    h_range, k_range, l_range = grid.F.shape
    # one padded h plane at a time: no second copy of a large grid in memory
    plane = np.zeros((k_range + 1, l_range + 1), dtype=np.float64)
    header = f"{grid.h_min} {grid.h_max} {grid.k_min} {grid.k_max} {grid.l_min} {grid.l_max}\n\f"
    with atomic_open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        for h in range(h_range):
            plane[:-1, :-1] = grid.F[h]
            handle.write(plane.tobytes())
        handle.write(np.zeros_like(plane).tobytes())


def read_fdump(path):
    data = read_bytes(path)

    def corrupt(why):
        return InputFileError(f"corrupt {os.fspath(path)}: {why}")

    # data starts right after the first form feed (the C reader's whitespace skip could eat
    # data bytes that happen to look like whitespace; splitting on the form feed cannot)
    end = data.find(b"\f", 0, 256)
    if end < 0:
        raise corrupt("no header line")
    fields = data[:end].split()
    if len(fields) != 6 or not all(re.fullmatch(rb"[+-]?[0-9]+", f) for f in fields):
        raise corrupt(f"bad header {data[:end].strip()[:60]!r}")
    h_min, h_max, k_min, k_max, l_min, l_max = (int(f) for f in fields)
    ranges = (h_max - h_min + 1, k_max - k_min + 1, l_max - l_min + 1)
    if min(ranges) < 1:
        raise corrupt(f"header has min > max: {h_min} {h_max} {k_min} {k_max} {l_min} {l_max}")
    padded = tuple(r + 1 for r in ranges)
    expected = end + 1 + 8 * padded[0] * padded[1] * padded[2]
    if len(data) != expected:
        raise corrupt(f"size is {len(data)} bytes, header implies {expected}")
    F = np.frombuffer(data, dtype=np.float64, offset=end + 1).reshape(padded)[:-1, :-1, :-1].copy()
    if not np.isfinite(F).all():
        raise corrupt("non-finite structure factor")
    return HKLGrid(F, h_min, h_max, k_min, k_max, l_min, l_max, ranges[0] * ranges[1] * ranges[2])
