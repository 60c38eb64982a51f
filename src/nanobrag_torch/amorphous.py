"""Scattering from amorphous material (water, air, ice...): nonBragg's physics on the shared engine.

Each sub-pixel and source contributes sign(F) F(stol)^2 * polarization * solid angle, where F is
the structure factor of one molecule interpolated (4-point Lagrange, as the C's polint) from a
sin(theta)/lambda table; the pixel's sum is scaled by r_e^2 * fluence * molecules / steps.
Vectorized over pixel chunks x sub-pixels x sources; differentiable in every continuous input.
"""
from dataclasses import dataclass

import numpy as np
import torch

from .geometry.vectors import unitize
from .physics import polarization_factor

R_E_SQR = 7.94079248018965e-30  # Thomson cross section (m^2)
AVOGADRO = 6.02214179e23
# (pixel x sub-pixel x source) evaluations per chunk: bounds memory whatever the detector size
TERM_BUDGET = 1 << 20
COMPILED_BLOCK = 1 << 18  # pixels per call of the compiled loop feeding a consumer (256 rows of 1024)


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
        """F at `stol` (any shape): the cubic through the four table points around it (the C's
        polint), evaluated from per-interval polynomial coefficients (one gather, three
        multiply-adds); differentiable in stol and in the table's F values."""
        anchor, basis = self._basis()
        coefficients = torch.einsum("nij,nj->ni", basis, self._windows(self.F))  # (n, 4): t^0..t^3
        n = self.stol.numel()
        nearest = (torch.searchsorted(self.stol, stol.detach().contiguous(), right=True) - 1).clamp(1, n - 3)
        c = coefficients[nearest]
        t = stol - anchor[nearest]
        return ((c[..., 3] * t + c[..., 2]) * t + c[..., 1]) * t + c[..., 0]

    def _windows(self, values):
        """(n, 4) values at points m-1 .. m+2 for each interval start m (rows 0 and n-2.. unused):
        views of one unfold, m clamped to [1, n-3] (no gather: a few hundred microseconds less)."""
        u = values.unfold(0, 4, 1)
        return torch.cat([u[:1], u, u[-1:], u[-1:]])

    def _basis(self):
        """Per interval: an anchor (a real table point) and the (4 x 4) matrix taking the four F
        values to polynomial coefficients in t = stol - anchor (Lagrange basis, expanded)."""
        if getattr(self, "_cached", None) is None:
            x = self._windows(self.stol.detach()).to("cpu", torch.float64).numpy()
            n = x.shape[0]
            anchor = np.where(np.arange(n) <= 1, x[:, 2], x[:, 1])  # interval 1 starts at a far point
            u = x - anchor[:, None]
            basis = np.zeros((n, 4, 4))
            for i in range(4):
                poly = np.ones((n, 1))
                den = np.ones(n)
                for j in range(4):
                    if j != i:
                        poly = np.concatenate([-u[:, j:j + 1] * poly, np.zeros((n, 1))], 1) \
                            + np.concatenate([np.zeros((n, 1)), poly], 1)
                        den = den * (x[:, i] - x[:, j])
                basis[:, :, i] = poly / den[:, None]
            self._cached = tuple(torch.as_tensor(a, dtype=self.stol.dtype, device=self.stol.device)
                                 for a in (anchor, basis))
        return self._cached


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


def _subpixel_rays(detector, geo, fast, slow):
    """(x, y, z) components (n, layers*O*O) of the sample-to-sub-pixel vectors and their length."""
    if detector.curved or detector.thicksteps > 1:
        comps = detector.positions(geo, slow, fast).flatten(1, 2).unbind(-1)
    else:  # flat, one layer: the same positions without the (n, O*O, 3) temporaries
        ps, o = detector.t(detector.pixel_size), detector.oversample
        fd = detector.subpixel_offsets(fast, ps)[:, None, :].expand(-1, o, -1).reshape(-1, o * o)
        sd = detector.subpixel_offsets(slow, ps)[:, :, None].expand(-1, -1, o).reshape(-1, o * o)
        f, s, p0 = geo["fdet"], geo["sdet"], geo["pix0"]
        comps = [fd * f[k] + sd * s[k] + p0[k] for k in range(3)]
    x, y, z = comps
    return comps, torch.sqrt(x * x + y * y + z * z)


def _safe_sqrt(u):
    positive = u > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, u, torch.ones_like(u))), torch.zeros_like(u))


def background_terms(detector, geo, slow, fast, incident, wavelengths, intensities, table,
                     polar_axis, kahn, nopolar):
    """Sum over sub-pixels and sources of sign F^2 polar omega I for pixels (slow[i], fast[i])."""
    (x, y, z), airpath = _subpixel_rays(detector, geo, fast, slow)
    ps = detector.t(detector.pixel_size)
    if detector.point_pixel:
        omega = 1.0 / (airpath * airpath)
    else:
        omega = ps * ps * geo["close_distance"] / (airpath * airpath * airpath)
    inv = (1.0 / airpath).unsqueeze(-1)
    # d.i for unit d, i; |d - i|^2 = 2 - 2 d.i, so stol = |d - i| / (2 lambda)
    cos2t = (x.unsqueeze(-1) * incident[:, 0] + y.unsqueeze(-1) * incident[:, 1]
             + z.unsqueeze(-1) * incident[:, 2]) * inv
    stol = _safe_sqrt(2.0 - 2.0 * cos2t) * (0.5 / wavelengths)
    F = table.interpolate(stol)
    signed = F * F.abs()
    if nopolar:
        polar = 1.0
    elif isinstance(kahn, (int, float)) and kahn == 0.0:
        polar = 0.5 * (1.0 + cos2t * cos2t)
    else:
        d = torch.stack((x, y, z), -1) * inv
        polar = polarization_factor(kahn, incident.expand(*cos2t.shape, 3), d.unsqueeze(-2).expand(*cos2t.shape, 3),
                                    polar_axis)
    terms = signed * polar * intensities
    return (terms.sum(-1) * omega).sum(-1), omega.sum()


def render_background(detector, sources, intensities, wavelengths, sample, fluence, kahn=0.0,
                      nopolar=False, polar_axis=(0.0, 0.0, 1.0), roi=None, progress=None, on_rows=None):
    """Photons/pixel (spixels, fpixels) of amorphous scattering; 0 outside the inclusive ROI
    ((first row, last row), (first column, last column)), (slow, fast) like the image.
    `sources` (S, 3) are positions (or directions) from the sample towards each source;
    `intensities` (S,) their weights (nonBragg: 1 each), `wavelengths` (S,) in metres.
    `on_rows(first_row, block)` receives each finished block of ROI rows (ROI columns) in
    order, e.g. to start their noise.  Returns (image, solid-angle sum over rendered sub-pixels)."""
    t = detector.t
    geo = detector.geometry()
    towards, _ = unitize(t(sources))
    incident = -towards
    wl, weights = t(wavelengths), t(intensities)
    axis, _ = unitize(t(polar_axis))
    image = torch.zeros(detector.spixels, detector.fpixels, dtype=detector.dtype, device=detector.device)
    (y0, y1), (x0, x1) = roi if roi is not None else ((0, detector.spixels - 1), (0, detector.fpixels - 1))
    rows = torch.arange(max(y0, 0), min(y1, detector.spixels - 1) + 1, device=detector.device)
    cols = torch.arange(max(x0, 0), min(x1, detector.fpixels - 1) + 1, device=detector.device)
    steps = wl.numel() * detector.oversample ** 2
    per_pixel = max(1, steps * detector.thicksteps)
    rows_per_chunk = max(1, TERM_BUDGET // per_pixel // max(1, cols.numel()))
    omega_sum = 0.0
    scale = R_E_SQR * t(fluence) * t(sample.molecules) / steps
    pieces = []
    compiled = compiled_path_applies(detector, [geo["pix0"], geo["fdet"], incident, wl, weights, sample.table.F,
                                                scale], kahn)
    if compiled:
        pieces, omega_sum = _render_compiled(detector, geo, incident, wl, weights, sample.table, axis, kahn, nopolar,
                                             rows, cols, scale, on_rows)
        if progress is not None:
            progress(1.0)
    for r0 in range(0, 0 if compiled else rows.numel(), rows_per_chunk):
        r = rows[r0:r0 + rows_per_chunk]
        slow = r.repeat_interleave(cols.numel())
        fast = cols.repeat(r.numel())
        values, chunk_omega = background_terms(detector, geo, slow, fast, incident, wl, weights, sample.table,
                                               axis, kahn, nopolar)
        pieces.append(values.reshape(r.numel(), cols.numel()) * scale)
        omega_sum = omega_sum + chunk_omega
        if on_rows is not None:
            on_rows(int(r[0]), pieces[-1])
        if progress is not None:
            progress(min(r0 + rows_per_chunk, rows.numel()) / max(1, rows.numel()))
    if pieces:
        block = pieces[0] if len(pieces) == 1 else torch.cat(pieces, 0)
        margins = (int(cols[0]), detector.fpixels - 1 - int(cols[-1]),
                   int(rows[0]), detector.spixels - 1 - int(rows[-1]))
        image = torch.nn.functional.pad(block, margins) if any(margins) else block  # a whole image: no copy
    return image, omega_sum


def compiled_path_applies(detector, tensors, kahn):
    """The compiled loop serves CPU runs of a flat one-layer detector when nothing needs a gradient."""
    if detector.curved or detector.thicksteps > 1 or torch.device(detector.device).type != "cpu":
        return False
    if torch.is_grad_enabled() and any(isinstance(x, torch.Tensor) and x.requires_grad for x in tensors + [kahn]):
        return False
    from . import amorphous_kernel
    return amorphous_kernel.compiled() is not None


def _as_np(x):
    return x.detach().to("cpu", torch.float64).numpy()


def _compiled_inputs(detector, geo, incident, wl, weights, table, axis):
    """The compiled loop's float64 arrays (geometry, sources, polarization frames, table), once."""
    g = np.concatenate([_as_np(geo["fdet"]), _as_np(geo["sdet"]), _as_np(geo["pix0"]),
                        [float(detector.pixel_size), float(geo["close_distance"])]])
    inc = np.ascontiguousarray(_as_np(incident).reshape(-1, 3))
    b_in = _unit_rows(np.cross(_as_np(axis), inc))  # the E-vector frame of each source (C's polarization)
    e_in = _unit_rows(np.cross(inc, b_in))
    anchor, basis = table._basis()
    coefficients = np.einsum("nij,nj->ni", _as_np(basis), _as_np(table._windows(table.F)))
    return (g, inc, np.ascontiguousarray(np.concatenate([e_in, b_in], 1)), _as_np(wl), _as_np(weights),
            _as_np(table.stol), _as_np(anchor), coefficients)


def _render_compiled(detector, geo, incident, wl, weights, table, axis, kahn, nopolar, rows, cols, scale, on_rows):
    """([scaled image block], omega sum) by the compiled loop: in one call, or for a consumer
    (on_rows) in row blocks with one thread fewer, numpy only between blocks (torch
    operations there wake its thread pool against the loop's)."""
    from . import amorphous_kernel

    prepared = _compiled_inputs(detector, geo, incident, wl, weights, table, axis)
    rows, cols = rows.cpu().numpy().astype(np.int64), cols.cpu().numpy().astype(np.int64)
    dtype = torch.empty(0, dtype=detector.dtype).numpy().dtype
    factor = dtype.type(scale.item())  # the scale in the image's precision, as the torch path multiplies
    step = len(rows) if on_rows is None else max(1, COMPILED_BLOCK // max(1, len(cols)))
    image, omega_sum, r0 = np.empty((len(rows), len(cols)), dtype=dtype), 0.0, 0
    while r0 < len(rows):
        # blocks shrink towards the end: the consumer's work on the last one is all that is left after it
        size = step if on_rows is None else max(min(step, (len(rows) - r0) // 2), -(-step // 8))
        # the consumer has nothing to do before the first block: that one gets every thread
        out, omega = amorphous_kernel.render(*prepared, detector.oversample, detector.point_pixel, nopolar,
                                             float(kahn), rows[r0:r0 + size], cols, on_rows is not None and r0 > 0)
        block = image[r0:r0 + size]
        np.multiply(out.astype(dtype, copy=False), factor, out=block)  # scaled in place: no copies to join
        omega_sum += omega
        if on_rows is not None:
            on_rows(int(rows[r0]), block)
        r0 += size
    return [torch.as_tensor(image, device=detector.device)], omega_sum


def _unit_rows(v):
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)
