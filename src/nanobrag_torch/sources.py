"""X-ray sources: divergence grid x spectral dispersion, or an explicit list from a file."""
import math
from dataclasses import dataclass

import numpy as np
import torch

from .geometry.vectors import rotate_cos_sin, unitize

SOURCE_DISTANCE = 10.0  # metres; nanoBragg places generated sources 10 m upstream


@dataclass
class SourceGrid:
    """Positions (n,3) in metres (before unitizing), weights (n,) and wavelengths (n,) in metres."""

    positions: np.ndarray
    weights: np.ndarray
    wavelengths: np.ndarray
    divsteps: int
    divergence_ticks: list  # (hdiv, vdiv) pairs kept after trimming, for the report
    lambdas: list  # wavelengths of the dispersion steps, for the report


def divergence_grid(beam, polar, vert, lambda0, hdivrange, hdivstep, hdivsteps,
                    vdivrange, vdivstep, vdivsteps, dispersion, dispstep, dispsteps, round_div,
                    source_distance=SOURCE_DISTANCE):
    """nanoBragg's generated source list (all arguments already resolved by its step logic),
    in its order: divergence ticks (h outer, v inner), each with every dispersion step."""
    ht, vt = np.meshgrid(np.arange(hdivsteps), np.arange(vdivsteps), indexing="ij")
    hdiv = (hdivstep * ht - hdivrange / 2.0).ravel()
    vdiv = (vdivstep * vt - vdivrange / 2.0).ravel()
    if round_div:
        test = _trim_term(hdiv, hdivrange, hdivstep, hdivsteps) + _trim_term(vdiv, vdivrange, vdivstep, vdivsteps)
        keep = ~(test * 4.0 > 1.1)
        hdiv, vdiv = hdiv[keep], vdiv[keep]
    lambdas = [lambda0 * (1.0 + dispstep * t - dispersion / 2.0) for t in range(dispsteps)]
    n = len(hdiv) * len(lambdas)
    weight = 1.0 / n if n else 0.0
    start = -source_distance * torch.tensor(beam, dtype=torch.float64)
    p = torch.tensor(polar, dtype=torch.float64)
    v = torch.tensor(vert, dtype=torch.float64)
    tilted = rotate_cos_sin(start.expand(len(vdiv), 3), p, *_libm_cos_sin(vdiv))
    ticks = rotate_cos_sin(tilted, v, *_libm_cos_sin(hdiv)).numpy()
    positions = np.repeat(ticks, len(lambdas), axis=0)
    wavelengths = np.tile(np.array(lambdas, dtype=np.float64), len(ticks))
    return SourceGrid(positions, np.full(n, weight), wavelengths, len(ticks),
                      list(zip(hdiv.tolist(), vdiv.tolist())), lambdas)


def _libm_cos_sin(angles):
    """(cos, sin) columns from the C library, one angle at a time, so that the positions carry
    nanoBragg's bits (vectorized cos/sin may differ in the last place)."""
    return tuple(torch.tensor([f(a) for a in angles], dtype=torch.float64).reshape(-1, 1)
                 for f in (math.cos, math.sin))


def _trim_term(div, divrange, divstep, divsteps):
    """One axis's share of the elliptical trim test (-round_div)."""
    if not divrange:
        # nanoBragg divides by the zero range here, giving NaN (so nothing is trimmed)
        return np.full(len(div), np.nan)
    return (div * div - divstep * divstep / 4.0 * (1 - divsteps % 2)) / divrange / divrange


def source_directions(positions, dtype, device):
    """Unit vectors from the sample towards each source; incident direction is their negative."""
    pos = torch.as_tensor(positions, dtype=dtype, device=device)
    unit, _ = unitize(pos)
    return unit
