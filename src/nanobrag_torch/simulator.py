"""Simulator: runs the engine over the detector in bounded pixel chunks.

Holds the physical models (Detector, Crystal, beam/sources) as tensors and renders either the
whole detector, a region of interest, or an explicit list of pixels. Differentiable end to end.
"""
import math
from dataclasses import dataclass, field

import torch

from .engine import Flags, InterpolationState, render

# budget of (pixel x term) elements per chunk: bounds peak memory whatever the detector size
DEFAULT_TERM_BUDGET = 1 << 20


@dataclass
class Beam:
    """Incident beam: source directions (unit vectors from sample to source), wavelengths (m)."""

    source_dirs: torch.Tensor
    wavelengths: torch.Tensor
    weights: torch.Tensor = None  # None or equal weights: nanoBragg's plain average
    polar_axis: object = (0.0, 0.0, 1.0)
    kahn: object = 0.0
    nopolar: bool = False
    fluence: object = 1.25932015286227086e29

    def weight_factor(self):
        if self.weights is None:
            return None
        w = self.weights
        if not w.requires_grad and bool((w == w[0]).all()):
            return None
        return w * w.numel() / w.sum()


@dataclass
class Simulation:
    detector: object
    crystal: object
    beam: Beam
    flags: Flags
    roi: tuple = None  # (xmin, xmax, ymin, ymax) inclusive, like nanoBragg
    mask: torch.Tensor = None  # (spixels, fpixels) bool, True = render
    term_budget: int = DEFAULT_TERM_BUDGET
    stats: dict = field(default_factory=dict)

    def terms_per_pixel(self):
        d = self.detector
        return max(1, d.thicksteps * d.oversample ** 2 * self.beam.source_dirs.shape[0]
                   * self.crystal.phisteps * self.crystal.domains)

    def chunk_size(self):
        return max(1, self.term_budget // self.terms_per_pixel())

    def new_state(self, prepared):
        first = prepared[5] if self.crystal.phi_zero_quirk_active() else None
        return InterpolationState(self.crystal.interpolate, first)

    def _prepared(self):
        geo = self.detector.geometry()
        t = self.detector.t
        geo["polar_axis"] = t(self.beam.polar_axis)
        incident = -t(self.beam.source_dirs)
        wl = t(self.beam.wavelengths)
        wf = self.beam.weight_factor()
        wf = None if wf is None else t(wf)
        rot = self.crystal.rotated_vectors()
        first = rot[0]
        if self.crystal.phi_zero_quirk_active():
            rot = torch.cat((rot[-1:], rot[1:]))
        return geo, incident, wl, wf, rot, first

    def render_pixels(self, slow, fast, state=None, prepared=None, diagnostics=False):
        """Values for explicit pixels (1-D index tensors), rendered in bounded chunks."""
        prepared = prepared or self._prepared()
        geo, incident, wl, wf, rot, _ = prepared
        state = state or self.new_state(prepared)
        out, diags = [], []
        step = self.chunk_size()
        for start in range(0, slow.numel(), step):
            s, f = slow[start:start + step], fast[start:start + step]
            pos = self.detector.positions(geo, f, s)
            value, diag = render(pos, geo, self.detector, incident, wl, wf, rot, self.crystal, self.flags, state)
            out.append(value)
            if diagnostics:
                diags.append(diag)
        values = torch.cat(out) if out else torch.zeros(0, dtype=self.detector.dtype, device=self.detector.device)
        return (values, diags) if diagnostics else values

    def run(self, progress=None):
        """Whole image (spixels, fpixels); pixels outside the ROI or masked stay 0."""
        d = self.detector
        dev = d.device
        xmin, xmax, ymin, ymax = self.roi or (0, d.fpixels, 0, d.spixels)
        rows = torch.arange(max(ymin, 0), min(ymax, d.spixels - 1) + 1, device=dev)
        cols = torch.arange(max(xmin, 0), min(xmax, d.fpixels - 1) + 1, device=dev)
        prepared = self._prepared()
        state = self.new_state(prepared)
        image = torch.zeros(d.spixels * d.fpixels, dtype=d.dtype, device=dev)
        chunk = self.chunk_size()
        rows_per_chunk = max(1, chunk // max(1, cols.numel()))
        omega_sum = 0.0
        pieces = []
        for r0 in range(0, rows.numel(), rows_per_chunk):
            r = rows[r0:r0 + rows_per_chunk]
            slow = r.repeat_interleave(cols.numel())
            fast = cols.repeat(r.numel())
            if self.mask is not None:
                keep = self.mask[slow, fast]
                slow, fast = slow[keep], fast[keep]
            values, diags = self.render_pixels(slow, fast, state, prepared, diagnostics=True)
            for dg in diags:
                om = dg["omega"].detach()
                omega_sum += float(om.sum() if self.flags.oversample_omega else om[:, :1, :1].sum() * om[0].numel())
            pieces.append((slow * d.fpixels + fast, values))
            if progress is not None:
                progress(min(r0 + rows_per_chunk, rows.numel()) / max(1, rows.numel()))
        if pieces:
            idx = torch.cat([p[0] for p in pieces])
            vals = torch.cat([p[1] for p in pieces])
            image = image.index_put((idx,), vals)
        self.stats = dict(omega_sum=omega_sum, interpolation_warning=state.warning)
        return image.reshape(d.spixels, d.fpixels)
