"""X-ray sources: divergence grid x spectral dispersion, or an explicit list from a file."""
from dataclasses import dataclass

import numpy as np
import torch

from .geometry.vectors import rotate_axis, unitize

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
    """nanoBragg's generated source list (all arguments already resolved by its step logic)."""
    ticks = []
    for ht in range(hdivsteps):
        for vt in range(vdivsteps):
            hdiv = hdivstep * ht - hdivrange / 2.0
            vdiv = vdivstep * vt - vdivrange / 2.0
            if round_div:
                test = (hdiv * hdiv - hdivstep * hdivstep / 4.0 * (1 - hdivsteps % 2)) / hdivrange / hdivrange if hdivrange else _nan()
                test += (vdiv * vdiv - vdivstep * vdivstep / 4.0 * (1 - vdivsteps % 2)) / vdivrange / vdivrange if vdivrange else _nan()
                if test * 4.0 > 1.1:
                    continue
            ticks.append((hdiv, vdiv))
    lambdas = [lambda0 * (1.0 + dispstep * t - dispersion / 2.0) for t in range(dispsteps)]
    n = len(ticks) * len(lambdas)
    weight = 1.0 / n if n else 0.0
    pos, lam = [], []
    b = torch.tensor(beam, dtype=torch.float64)
    p = torch.tensor(polar, dtype=torch.float64)
    v = torch.tensor(vert, dtype=torch.float64)
    for hdiv, vdiv in ticks:
        vec = -source_distance * b
        vec = rotate_axis(rotate_axis(vec, p, vdiv), v, hdiv)
        for wl in lambdas:
            pos.append(vec.numpy().copy())
            lam.append(wl)
    positions = np.array(pos, dtype=np.float64).reshape(-1, 3)
    return SourceGrid(positions, np.full(len(lam), weight), np.array(lam, dtype=np.float64),
                      len(ticks), ticks, lambdas)


def _nan():
    # nanoBragg divides by a zero range here, giving NaN (never trimmed)
    return float("nan")


def source_directions(positions, dtype, device):
    """Unit vectors from the sample towards each source; incident direction is their negative."""
    pos = torch.as_tensor(positions, dtype=dtype, device=device)
    unit, _ = unitize(pos)
    return unit
