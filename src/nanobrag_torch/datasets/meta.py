"""What every dataset file records besides pixels: lab frames, orientations, version, spectra."""
from __future__ import annotations

import math

import numpy as np

# nanoBragg's lab frame -> DIALS's (x, y, z) -> (z, y, -x), as its "dials origin" line; DIALS's
# frame -> McStas (NeXus: z along the beam, y up) is a half turn about y
_NANOBRAGG_TO_MCSTAS = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def lab_to_mcstas(beam) -> np.ndarray:
    """3x3 rotation taking nanoBragg lab vectors to the McStas frame, with the beam along +z
    (for a beam other than nanoBragg's MOSFLM +x, the smallest extra rotation that aligns it)."""
    b = _NANOBRAGG_TO_MCSTAS @ np.asarray(beam, dtype=np.float64)
    b = b / np.linalg.norm(b)
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(b, z)
    s, c = np.linalg.norm(axis), float(b @ z)
    if s < 1e-15:
        turn = np.eye(3) if c > 0 else np.diag([-1.0, 1.0, -1.0])
    else:
        k = axis / s
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        turn = np.eye(3) + s * kx + (1 - c) * kx @ kx
    return turn @ _NANOBRAGG_TO_MCSTAS


def unit_cell(real) -> np.ndarray:
    """(a, b, c in Angstrom, alpha, beta, gamma in degrees) of real-space rows a, b, c."""
    a, b, c = (np.asarray(x, dtype=np.float64) for x in real)
    angle = lambda u, w: math.degrees(math.acos(float(u @ w) / (np.linalg.norm(u) * np.linalg.norm(w))))
    return np.array([np.linalg.norm(a), np.linalg.norm(b), np.linalg.norm(c), angle(b, c), angle(c, a), angle(a, b)])


def frame_orientation(v) -> tuple:
    """(unit cell, UB) of a frame's crystal at phi = 0: UB's columns are a*, b*, c* (1/Angstrom)
    in the McStas frame, so that the scattering vector of hkl is UB @ hkl."""
    return unit_cell(v.real), lab_to_mcstas(v.beam) @ np.asarray(v.recip, dtype=np.float64).T


def program_version() -> str:
    try:
        from importlib.metadata import version
        return version("nanobrag_torch")
    except ImportError:  # importlib.metadata.PackageNotFoundError: running from a source tree
        return "unknown"


def spectrum(shot: dict) -> tuple:
    """(wavelengths in Angstrom, weights) of a shot's spectrum."""
    return np.asarray(shot["wavelengths_A"], dtype=np.float64), np.asarray(shot["weights"], dtype=np.float64)
