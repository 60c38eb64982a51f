"""A detector of several flat panels, rendered as one image with the panels stacked along slow.

Pixel (slow, fast) of the stacked image is pixel (slow - p * spixels, fast) of panel p =
slow // spixels, so one render (and every pixel chunk, which may span panels) covers all panels
and `-floatfile` holds the panels one after another. Each pixel takes its own panel's frame,
pixel size, thickness and attenuation; every per-pixel factor (solid angle, obliquity, parallax,
capture fraction) follows from those.

Per-panel offsets and rotations (`shifts` in metres along the lab axes, `rotations` in radians
about the panel's own fast, slow and normal axes through its centre, applied in that order) are
tensors that may carry gradients: diffBragg's panel origin / rotation refinement.
"""
from dataclasses import dataclass, field

import torch

from ..geometry.vectors import dot, rotate_axis


@dataclass
class PanelDetector:
    """Panels of equal pixel counts; lengths in metres (tensors of shape (P, ...) or lists)."""

    origins: object  # (P, 3) corner of pixel (0, 0) of each panel
    fasts: object  # (P, 3) unit vectors
    slows: object
    normals: object  # (P, 3) pointing away from the sample (nanoBragg's odet)
    pixel_sizes: object  # (P,)
    fpixels: int
    panel_spixels: int
    beam: object  # (3,) unit vector along the x-ray beam
    thickness: object = None  # (P,) or None: thin panels
    mu: object = None  # (P,) 1/m
    thicksteps: int = 1
    shifts: object = None  # (P, 3) offsets, None = zero
    rotations: object = None  # (P, 3) radians about fast, slow, normal; None = zero
    names: list = field(default_factory=list)
    oversample: int = 1
    point_pixel: bool = False
    curved: bool = False
    dtype: torch.dtype = torch.float64
    device: object = "cpu"

    pivot = "panels"

    @classmethod
    def from_panels(cls, panels, beam, thicksteps=1, **kw):
        """From `io.expt.Panel`s (equal pixel counts; thickness and mu per panel)."""
        sizes = {(p.fpixels, p.spixels) for p in panels}
        if len(sizes) != 1:
            raise ValueError(f"panels must have equal pixel counts, got {sorted(sizes)}")
        thick = [p.thickness if p.mu > 0 else 0.0 for p in panels]
        if any(thick) and not all(thick):
            raise ValueError("either every panel or none must have a sensor thickness (with mu)")
        f, s = sizes.pop()
        return cls(origins=[p.origin for p in panels], fasts=[p.fast for p in panels], slows=[p.slow for p in panels],
                   normals=[p.normal for p in panels], pixel_sizes=[p.pixel_size for p in panels], fpixels=f,
                   panel_spixels=s, beam=list(beam), thickness=thick if any(thick) else None,
                   mu=[p.mu for p in panels] if any(thick) else None, thicksteps=thicksteps if any(thick) else 1,
                   names=[p.name or f"panel{i:02d}" for i, p in enumerate(panels)], **kw)

    @classmethod
    def from_detectors(cls, detectors, **kw):
        """Stack single-panel `Detector`s (their rotated frames as they render) into one detector."""
        geos = [d.geometry() for d in detectors]
        d0 = detectors[0]
        stack = lambda key: torch.stack([g[key].detach() for g in geos])
        thick = [float(d.thickness) for d in detectors]
        kw.setdefault("oversample", d0.oversample)
        kw.setdefault("point_pixel", d0.point_pixel)
        return cls(origins=stack("pix0"), fasts=stack("fdet"), slows=stack("sdet"), normals=stack("odet"),
                   pixel_sizes=torch.stack([d.t(d.pixel_size) for d in detectors]), fpixels=d0.fpixels,
                   panel_spixels=d0.spixels, beam=geos[0]["beam"], thickness=thick if any(thick) else None,
                   mu=[float(d.mu) for d in detectors] if any(thick) else None, thicksteps=d0.thicksteps,
                   dtype=d0.dtype, device=d0.device, **kw)

    def __post_init__(self):
        if not self.names:
            self.names = [f"panel{i:02d}" for i in range(self.n_panels)]

    @property
    def n_panels(self):
        return len(self.origins)

    @property
    def spixels(self):
        return self.n_panels * self.panel_spixels

    @property
    def pixel_size(self):
        return self.pixel_sizes

    def t(self, x):
        if isinstance(x, torch.Tensor):
            return x.to(dtype=self.dtype, device=self.device)
        return torch.tensor(x, dtype=self.dtype, device=self.device)

    def thick(self):
        return self.thickness is not None and bool((torch.as_tensor(self.thickness) > 0).any())

    def geometry(self):
        """Every panel's frame after its offset and rotation: values shaped (P, 3) or (P,)."""
        f0, s0, n0, o0 = self.t(self.fasts), self.t(self.slows), self.t(self.normals), self.t(self.origins)
        ps, beam = self.t(self.pixel_sizes), self.t(self.beam)
        f, s, n, pix0 = f0, s0, n0, o0
        if self.rotations is not None:
            centre = o0 + (0.5 * self.fpixels) * ps[:, None] * f0 + (0.5 * self.panel_spixels) * ps[:, None] * s0
            arm = o0 - centre
            rot = self.t(self.rotations)
            turned = []
            for v in (f0, s0, n0, arm):
                for k, axis in enumerate((f0, s0, n0)):
                    v = rotate_axis(v, axis, rot[:, k])
                turned.append(v)
            f, s, n = turned[:3]
            # written as a correction so that zero rotations leave the origin bit for bit
            pix0 = o0 + (turned[3] - arm)
        if self.shifts is not None:
            pix0 = pix0 + self.t(self.shifts)
        ratio = dot(beam, n)
        close = dot(pix0, n)
        distance = close / ratio
        to_beam = distance[:, None] * beam - pix0
        return {"fdet": f, "sdet": s, "odet": n, "pix0": pix0, "beam": beam, "ratio": ratio, "close_distance": close,
                "distance": distance, "Fclose": -dot(pix0, f), "Sclose": -dot(pix0, s), "Fbeam": dot(f, to_beam),
                "Sbeam": dot(s, to_beam), "panel_pixel_size": ps}

    def panel_index(self, slow):
        return torch.div(slow, self.panel_spixels, rounding_mode="floor")

    def chunk_geometry(self, geo, slow):
        """The per-pixel values the engine reads from `geo`, for the pixels of one chunk."""
        p = self.panel_index(slow)
        out = dict(geo)
        out["odet"] = geo["odet"][p][:, None, None, :]
        out["close_distance"] = geo["close_distance"][p][:, None, None]
        out["pixel_size"] = geo["panel_pixel_size"][p][:, None, None]
        out["thick"] = self.thick()
        if out["thick"]:
            out["step_mu"] = (self.layer_steps() * self.t(self.mu))[p][:, None, None]
        return out

    def layer_steps(self):
        """Distance between sensor layers per panel (nanoBragg: thickness / (layers - 1))."""
        if not self.thick() or self.thicksteps <= 1:
            return torch.zeros(self.n_panels, dtype=self.dtype, device=self.device)
        return self.t(self.thickness) / (self.thicksteps - 1)

    def positions(self, geo, slow, fast):
        """Sub-pixel positions (n, layers, O*O, 3) for stacked pixels (slow[i], fast[i]), with the
        same arithmetic as a single panel's so that each panel matches its one-panel run exactly."""
        p = self.panel_index(slow)
        local = slow - p * self.panel_spixels
        ps = geo["panel_pixel_size"][p][:, None]
        o = self.oversample
        ticks = torch.arange(o, device=self.device, dtype=self.dtype)
        sub = ps / o
        fd = sub * (fast.to(self.dtype).unsqueeze(-1) * o + ticks) + sub / 2.0
        sd = sub * (local.to(self.dtype).unsqueeze(-1) * o + ticks) + sub / 2.0
        fd = fd[:, None, :].expand(-1, o, -1).reshape(-1, o * o)
        sd = sd[:, :, None].expand(-1, -1, o).reshape(-1, o * o)
        od = torch.arange(self.thicksteps, device=self.device, dtype=self.dtype) * self.layer_steps()[p][:, None]
        f, s, ov, pix0 = (geo[k][p][:, None, None, :] for k in ("fdet", "sdet", "odet", "pix0"))
        pos = fd[:, None, :, None] * f + sd[:, None, :, None] * s
        pos = pos + od[:, :, None, None] * ov
        return pos + pix0
