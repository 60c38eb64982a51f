"""Compatibility modes (-compat): how input files are read and whether nanoBragg.c's numeric bugs stay.

- default: input read sensibly (comments skipped, source weights honoured), C's numbers otherwise;
- c: input read exactly as nanoBragg.c reads it (see read_sources_c, read_hkl_c);
- fixed: sensible input and none of C's numeric bugs (Simulation.compat == "fixed").

In the default mode a one-line note (stderr on the command line, INFO on the `nanobrag_torch`
logger for library users) says when nanoBragg.c would give a different image.
"""
import logging
import math
import re

import numpy as np

from .cnum import atof
from .errors import InputFileError
from .io import hkl as hkl_io

MODES = ("default", "c", "fixed")
LOG = logging.getLogger(__name__)

# nanoBragg.c's read_text_file: field separators, the characters a number may be made of, line buffer
_DELIMITERS = " \t,;:!"
_NUMBER_CHARS = "0123456789-+.EGeg"
_FGETS_CHARS = 10240 - 1


def note(text):
    """One line telling the user that nanoBragg.c would give a different result."""
    LOG.info(text)


def check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"compat mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


# ---- source files -------------------------------------------------------------------------------

def _physical_lines(text):
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _chunks(line):
    for i in range(0, len(line), _FGETS_CHARS):
        yield line[i:i + _FGETS_CHARS]


def _span(text, pos, chars):
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _cspan(text, pos, chars):
    while pos < len(text) and text[pos] not in chars:
        pos += 1
    return pos


def _c_row(line, columns):
    """One line's values as read_text_file fills them (NaN where it leaves a column unset), or None
    for a line it skips. A word that is not a number reads as 0; after the last word of a line the
    remaining columns read as 0 unless the word is followed directly by the newline."""
    pos = _span(line, 0, _DELIMITERS)
    if line[pos:] == "\n":
        return None
    row = [math.nan] * columns
    for i in range(columns):
        row[i] = atof(line[pos:])
        pos = _span(line, pos, _NUMBER_CHARS)
        if line[pos:] == "\n":
            break
        pos = _span(line, _cspan(line, pos, _DELIMITERS), _DELIMITERS)
        if line[pos:] == "\n":
            break
    return row


def read_sources_c(path, columns=5):
    """Source rows (n, 5) exactly as nanoBragg.c reads a source file: every line that is not blank
    counts, so a '#' comment line becomes a row of zeros (a source at the origin, weight 0,
    wavelength 0); NaN marks the columns it leaves for the defaults."""
    text = hkl_io.read_bytes(path).decode("latin-1")
    rows = [row for piece in _pieces(text) if (row := _c_row(piece, columns)) is not None]
    if not rows:
        raise InputFileError(f"{path}: no sources found")
    return np.array(rows, dtype=np.float64)


def _pieces(text):
    for line in _physical_lines(text):
        yield from _chunks(line)


def source_note(path, c_rows, rows):
    """The note for a source file that nanoBragg.c would read differently, or None."""
    text = hkl_io.read_bytes(path).decode("latin-1")
    phantoms = sum(1 for line in _physical_lines(text) if line.lstrip(_DELIMITERS).startswith("#"))
    weights = rows[:, 3]
    weights = np.where(np.isnan(weights), 1.0, weights)
    unequal = bool(np.any(weights != weights[0]))
    same_rows = c_rows.shape == rows.shape and np.array_equal(c_rows, rows, equal_nan=True)
    if same_rows and not unequal:
        return None
    what = []
    if not same_rows:
        extra = f" ({phantoms} from comment lines)" if phantoms else ""
        what.append(f"count {len(c_rows)} sources{extra}" if len(c_rows) != len(rows)
                    else "read its lines differently")
    if unequal:
        what.append("ignore the weights")
    return (f"{path}: nanoBragg.c would {' and '.join(what)}; this run reads {len(rows)} sources"
            f"{' with their weights' if unequal else ''} (-compat c reproduces nanoBragg.c)")


def read_sources(path, mode):
    """(rows (n, 5) with NaN for missing columns, weights used?) for the given -compat mode."""
    from .io.sources import read_sources as read_sensibly

    if mode == "c":
        return read_sources_c(path), False
    rows = read_sensibly(path)
    if mode == "default":
        try:
            c_rows = read_sources_c(path)
        except InputFileError:
            c_rows = np.zeros((0, 5))
        message = source_note(path, c_rows, rows)
        if message:
            note(message)
    return rows, True


# ---- HKL files ----------------------------------------------------------------------------------

_FLOAT = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)"
_SCAN_FLOAT = re.compile(r"\s*(" + _FLOAT + ")", re.IGNORECASE)
_SCAN_RUN = re.compile(r"(?:\s*" + _FLOAT + ")*", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?\d+\Z")


def _scanned_numbers(text):
    """The numbers fscanf("%lg") reads one after another until the first that is not a number."""
    run = _SCAN_RUN.match(text)
    return _SCAN_FLOAT.findall(text, 0, run.end())


def read_hkl_c(path, default_F, say=None):
    """The structure factors nanoBragg.c reads from an HKL file: any four numbers in a row are
    h k l F whatever the line breaks (a fifth column shifts every later value), reading stops at the
    first word that is not a number, the index ranges come from all of them (truncated to integers)
    and the values are stored up to the first entry whose h, k or l is not written as an integer
    (its second reading is fscanf("%d%d%d%lg"))."""
    tokens = _scanned_numbers(hkl_io.read_text(path))
    count = len(tokens) // 4
    if count == 0:
        raise InputFileError(f"{path}: no reflections found")
    words = np.array(tokens[:4 * count]).reshape(count, 4)
    values = np.array([float(t) for t in tokens[:4 * count]]).reshape(count, 4)
    hkl = values[:, :3]
    if not np.isfinite(hkl).all():
        raise InputFileError(f"{path}: non-finite index (nanoBragg.c's behaviour is undefined)")
    if say is not None:
        _say_non_integer(hkl, say)
    lo, hi = np.trunc(hkl.min(axis=0)).astype(np.int64), np.trunc(hkl.max(axis=0)).astype(np.int64)
    shape = tuple(int(v) for v in hi - lo + 1)
    cells = shape[0] * shape[1] * shape[2]
    if cells > hkl_io.MAX_CELLS:
        raise InputFileError(f"{path}: index range {shape[0]}x{shape[1]}x{shape[2]} = {cells} grid cells "
                             f"is too large (limit {hkl_io.MAX_CELLS})")
    stored = _stored_prefix(words)
    F = np.full(shape, float(default_F), dtype=np.float64)
    idx = hkl[:stored].astype(np.int64) - lo
    F[tuple(idx.T)] = values[:stored, 3]  # later entries win, as in C's loop
    return hkl_io.HKLGrid(F, int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]), int(lo[2]), int(hi[2]), count)


def _stored_prefix(words):
    plain = np.array([bool(_INTEGER.match(w)) for w in words[:, :3].ravel()]).reshape(-1, 3).all(axis=1)
    return int(np.argmin(plain)) if not plain.all() else len(plain)


def _say_non_integer(hkl, say):
    for line, axis in np.argwhere(hkl != np.ceil(hkl - 0.4)):
        say(f"WARNING: non-integer value for {'hkl'[axis]} ({hkl[line, axis]:g}) at line {line}")


# the characters str.split() takes for whitespace in ASCII text
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


def _column_counts(text):
    """The set of word counts (str.split) of the text's non-empty lines: counted with numpy for
    ASCII text (a Python loop over a 300,000-line file took ~0.8 s, more than its whole render)."""
    if not text.isascii():
        return {len(words) for words in (line.split() for line in text.split("\n")) if words}
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    space = _ASCII_SPACE[chars]
    starts = np.flatnonzero(space[:-1] > space[1:]) + 1  # the first character of each word
    if chars.size and not space[0]:
        starts = np.concatenate(([0], starts))
    line = np.searchsorted(np.flatnonzero(chars == 10), starts)  # a word's line: the newlines before it
    counts = np.bincount(line)
    return set(np.unique(counts[counts > 0]).tolist())


def _all_four_columns(text, rows):
    """Whether the text's words are four a line, given that each of its `rows` non-empty lines has
    at least four (its reading succeeded) and that it is ASCII: then the word count says it, and
    counting words takes a fifth of the time of counting them per line."""
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    if not chars.size or (chars < 9).any() or ((chars > 13) & (chars < 28)).any():
        return False  # characters str.split() treats otherwise than whitespace or a word
    space = chars <= 32
    words = np.count_nonzero(space[:-1] & ~space[1:]) + int(not space[0])
    return words == 4 * rows


def hkl_note(path, text=None, rows=None):
    """The note for an HKL file that nanoBragg.c would read differently, or None.

    text, rows: the file's text and its count of reflections, when the caller has read them."""
    text = hkl_io.read_text(path) if text is None else text
    first = text.find("#")
    if first < 0 and rows is not None and text.isascii() and _all_four_columns(text, rows):
        return None
    read_by_c = text if first < 0 else text[:first]  # nanoBragg.c stops at the first '#'
    columns = _column_counts(read_by_c)
    after = text[first:].split("\n")[1:] if first >= 0 else []
    if any(line.split() and not line.lstrip().startswith("#") for line in after):
        why = "stop reading at its first comment"
    elif columns - {4}:
        why = f"read it four numbers at a time although its lines have {'/'.join(map(str, sorted(columns)))} columns"
    else:
        return None
    return f"{path}: nanoBragg.c would {why}, giving different structure factors (-compat c reproduces nanoBragg.c)"


def read_hkl(path, default_F, mode, say):
    """The HKL grid for the given -compat mode (C's reading under -compat c)."""
    if mode == "c":
        return read_hkl_c(path, default_F, say)
    text = hkl_io.read_text(path)
    grid = hkl_io.read_hkl(path, default_F, text=text)
    if mode == "default":
        message = hkl_note(path, text, grid.count)
        if message:
            note(message)
    return grid


# ---- numeric quirks -----------------------------------------------------------------------------

def phi_zero_note(v):
    """The note for a run whose image nanoBragg.c's phi = 0 quirk changes (default mode only)."""
    last = v.phi0 + v.phistep * (v.phisteps - 1)
    if v.compat != "default" or v.phisteps <= 1 or v.phi0 != 0.0 or math.sin(last) == 0.0 and math.cos(last) == 1.0:
        return
    note(f"-phi 0 with {v.phisteps} phi steps: as in nanoBragg.c, the phi = 0 step is rendered at the last "
         f"step's orientation (phi = {math.degrees(last):g} deg) except for the first pixel; -compat fixed "
         "renders it at phi = 0")
