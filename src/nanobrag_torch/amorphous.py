"""Scattering from amorphous material (water, air, ice...): nonBragg's physics on the shared engine.

Each sub-pixel and source contributes sign(F) F(stol)^2 * polarization * solid angle, where F is
the structure factor of one molecule interpolated (4-point Lagrange, as the C's polint) from a
sin(theta)/lambda table; the pixel's sum is scaled by r_e^2 * fluence * molecules / steps.
Vectorized over pixel chunks x sub-pixels x sources; differentiable in every continuous input.
"""
from dataclasses import dataclass

import torch

from .geometry.vectors import dot, unitize
from .physics import polarization_factor

R_E_SQR = 7.94079248018965e-30  # Thomson cross section (m^2)
AVOGADRO = 6.02214179e23
# (pixel x sub-pixel x source) evaluations per chunk: bounds memory whatever the detector size
TERM_BUDGET = 1 << 20


@dataclass
class StolTable:
    """F of one molecule against sin(theta)/lambda (1/m), padded as the C pads it: two far points
    on each side carry the first/last F, so interpolation never leaves the table."""

    stol: torch.Tensor  # (n + 4,) ascending
    F: torch.Tensor

    @classmethod
    def from_rows(cls, rows, mult=1e10, dtype=torch.float64, device="cpu"):
        """rows: (n, 2) [stol in the file's unit, F]; mult converts the first column to 1/m
        (1e10 for -stol, 1e10/4 for -4stol, 1e10/(4 pi) for -Q)."""
        data = torch.as_tensor(rows, dtype=torch.float64)
        s = data[:, 0] * mult
        f = torch.nan_to_num(data[:, 1], nan=0.0)
        big = torch.tensor([1e98, 1e99], dtype=torch.float64)
        stol = torch.cat([-big.flip(0), s, big])
        F = torch.cat([f[:1], f[:1], f, f[-1:], f[-1:]])
        return cls(stol.to(dtype=dtype, device=device), F.to(dtype=dtype, device=device))

    def __len__(self):
        return int(self.stol.numel())

    def interpolate(self, stol):
        """F at `stol` (any shape): cubic through the four table points around it, written as the
        C's polint (same products, same order)."""
        n = self.stol.numel()
        nearest = torch.searchsorted(self.stol, stol.detach().contiguous(), right=True) - 1
        nearest = nearest.clamp(1, n - 3)
        xa = [self.stol[nearest + k - 1] for k in range(4)]
        ya = [self.F[nearest + k - 1] for k in range(4)]
        total = 0.0
        for i in range(4):
            others = [j for j in range(4) if j != i]
            num = (stol - xa[others[0]]) * (stol - xa[others[1]]) * (stol - xa[others[2]]) * ya[i]
            den = (xa[i] - xa[others[0]]) * (xa[i] - xa[others[1]]) * (xa[i] - xa[others[2]])
            total = total + num / den
        return total


def molecule_count(thick_m, height_m, width_m, density_g_m3, molecular_weight, molecules=0.0):
    """Molecules illuminated in a thick x height x width block (nonBragg's -molecules overrides
    the density)."""
    volume = thick_m * height_m * width_m
    if molecules:
        density_g_m3 = molecules / volume / AVOGADRO * molecular_weight
    return volume * density_g_m3 * AVOGADRO / molecular_weight, density_g_m3


@dataclass
class AmorphousSample:
    """What scatters: the table and how many molecules see the beam."""

    table: StolTable
    molecules: object


def background_terms(detector, geo, fast, slow, incident, wavelengths, intensities, table,
                     polar_axis, kahn, nopolar):
    """Sum over sub-pixels and sources of sign F^2 polar omega I for pixels (slow[i], fast[i])."""
    pos = detector.positions(geo, fast, slow)  # (n, layers, O*O, 3)
    diffracted, airpath = unitize(pos)
    ps = detector.t(detector.pixel_size)
    if detector.point_pixel:
        omega = 1.0 / airpath / airpath
    else:
        omega = ps * ps / airpath / airpath * geo["close_distance"] / airpath
    d = diffracted.unsqueeze(-2)  # (..., 1, 3) against sources (S, 3)
    scattering = (d - incident) / wavelengths.unsqueeze(-1)
    stol = 0.5 * torch.sqrt(dot(scattering, scattering))
    F = table.interpolate(stol)
    signed = torch.where(F < 0, -F * F, F * F)
    if nopolar:
        polar = 1.0
    else:
        polar = polarization_factor(kahn, incident.expand_as(scattering), d.expand_as(scattering), polar_axis)
    terms = signed * polar * omega.unsqueeze(-1) * intensities
    return terms.sum(dim=(-1, -2, -3)), omega.sum()


def render_background(detector, sources, intensities, wavelengths, sample, fluence, kahn=0.0,
                      nopolar=False, polar_axis=(0.0, 0.0, 1.0), roi=None, progress=None):
    """Photons/pixel (spixels, fpixels) of amorphous scattering; 0 outside the inclusive ROI
    (xmin, xmax, ymin, ymax).  `sources` (S, 3) are positions (or directions) from the sample
    towards each source; `intensities` (S,) their weights (nonBragg: 1 each), `wavelengths` (S,)
    in metres.  Returns (image, solid-angle sum over rendered sub-pixels)."""
    t = detector.t
    geo = detector.geometry()
    towards, _ = unitize(t(sources))
    incident = -towards
    wl, weights = t(wavelengths), t(intensities)
    axis, _ = unitize(t(polar_axis))
    image = torch.zeros(detector.spixels, detector.fpixels, dtype=detector.dtype, device=detector.device)
    x0, x1, y0, y1 = roi if roi is not None else (0, detector.fpixels - 1, 0, detector.spixels - 1)
    rows = torch.arange(max(y0, 0), min(y1, detector.spixels - 1) + 1, device=detector.device)
    cols = torch.arange(max(x0, 0), min(x1, detector.fpixels - 1) + 1, device=detector.device)
    steps = wl.numel() * detector.oversample ** 2
    per_pixel = max(1, steps * detector.thicksteps)
    rows_per_chunk = max(1, TERM_BUDGET // per_pixel // max(1, cols.numel()))
    omega_sum = 0.0
    scale = R_E_SQR * t(fluence) * t(sample.molecules) / steps
    pieces = []
    for r0 in range(0, rows.numel(), rows_per_chunk):
        r = rows[r0:r0 + rows_per_chunk]
        slow = r.repeat_interleave(cols.numel())
        fast = cols.repeat(r.numel())
        values, chunk_omega = background_terms(detector, geo, fast, slow, incident, wl, weights, sample.table,
                                               axis, kahn, nopolar)
        pieces.append(values.reshape(r.numel(), cols.numel()) * scale)
        omega_sum = omega_sum + chunk_omega
        if progress is not None:
            progress(min(r0 + rows_per_chunk, rows.numel()) / max(1, rows.numel()))
    if pieces:
        block = torch.cat(pieces, 0)
        image = torch.nn.functional.pad(block, (int(cols[0]), detector.fpixels - 1 - int(cols[-1]),
                                                int(rows[0]), detector.spixels - 1 - int(rows[-1])))
    return image, omega_sum
