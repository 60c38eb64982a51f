"""MOSFLM orientation matrix: the first nine numbers, three per row; later lines are ignored.

Row i holds (a*_i, b*_i, c*_i), so the columns are a*, b*, c* (in 1/Angstrom, times wavelength).
"""
import numpy as np

from ..errors import InputFileError
from .hkl import read_text


def read_mosflm_matrix(path):
    tokens = []
    for lineno, line in enumerate(read_text(path).split("\n"), 1):
        for token in line.split():
            if len(tokens) == 9:
                break
            try:
                tokens.append(float(token))
            except ValueError:
                raise InputFileError(f"{path} line {lineno}: non-numeric value {token[:40]!r}") from None
        if len(tokens) == 9:
            break
    if len(tokens) < 9:
        raise InputFileError(f"{path}: expected 9 numbers, found {len(tokens)}")
    matrix = np.array(tokens, dtype=np.float64).reshape(3, 3)
    if not np.isfinite(matrix).all():
        raise InputFileError(f"{path}: non-finite value in the orientation matrix")
    # rescale first so that absurd magnitudes cannot overflow the norms or the determinant
    peak = np.abs(matrix).max()
    scaled = matrix / peak if peak > 0 else matrix
    with np.errstate(all="ignore"):  # underflow in degenerate cases just means "singular"
        singular = not abs(np.linalg.det(scaled)) > 1e-9 * np.prod(np.linalg.norm(scaled, axis=0))
    if singular:
        raise InputFileError(f"{path}: orientation matrix is singular (a*, b*, c* are not independent)")
    return matrix
