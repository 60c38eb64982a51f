"""Flat (or curved) pixel detector: basis vectors, origin and pixel positions as tensors.

Mirrors nanoBragg's two pivots: BEAM keeps the direct-beam spot (Fbeam, Sbeam) fixed while
the detector rotates; SAMPLE keeps the near point (Fclose, Sclose) at close_distance.
"""
import math
from dataclasses import dataclass, field

import torch

from ..geometry.conventions import CONVENTIONS, default_beam_centre
from ..geometry.vectors import dot, rotate_axis, rotate_xyz

DBL_MIN = 2.2250738585072014e-308


@dataclass
class Detector:
    """All lengths in metres, angles in radians; any float field may be a tensor with grad."""

    fpixels: int
    spixels: int
    pixel_size: object
    fdet: object  # unit vectors before rotations (convention or custom)
    sdet: object
    odet: object
    beam: object  # unit vector along the x-ray beam (shared with Beam)
    twotheta_axis: object
    pivot: str = "beam"
    distance: object = 0.1
    close_distance: object = None  # None: derived from distance
    Fbeam: object = 0.0
    Sbeam: object = 0.0
    Fclose: object = 0.0
    Sclose: object = 0.0
    rotx: object = 0.0
    roty: object = 0.0
    rotz: object = 0.0
    twotheta: object = 0.0
    pix0: object = None  # pivot "pix0": the corner of pixel (0, 0) before the rotations (an .expt panel)
    curved: bool = False
    point_pixel: bool = False
    thickness: object = 0.0
    thicksteps: int = 1
    thickstep: object = 0.0
    mu: object = 0.0
    oversample: int = 1
    dtype: torch.dtype = torch.float64
    device: object = "cpu"
    _cache: dict = field(default=None, repr=False)

    @classmethod
    def mosflm(cls, distance_mm=100.0, pixel_mm=0.1, fpixels=1024, spixels=None, beam_mm=None,
               rotations_deg=(0.0, 0.0, 0.0), twotheta_deg=0.0, thickness_um=0.0, thicksteps=2,
               attenuation_um=None, oversample=None, point_pixel=False, curved=False,
               dtype=torch.float64, device="cpu"):
        """Detector in nanoBragg's MOSFLM convention (beam along +x, pivot about the beam spot).

        beam_mm = (Xbeam, Ybeam): MOSFLM beam centre (Xbeam along the slow axis), default the
        detector centre; rotations_deg: -detector_rotx/y/z; thickness_um/thicksteps/attenuation_um:
        sensor thickness, layers and attenuation depth (default depth = thickness, as nanoBragg);
        oversample: sub-pixels per axis, None = chosen from the crystal size when the Simulation
        is made, as the command line does without -oversample."""
        conv = CONVENTIONS["MOSFLM"]
        spixels = spixels or fpixels
        ps = pixel_mm * 1e-3
        if beam_mm is None:
            xbeam, ybeam = default_beam_centre("MOSFLM", ps * fpixels, ps * spixels, ps)
        else:
            xbeam, ybeam = beam_mm[0] * 1e-3, beam_mm[1] * 1e-3
        thick = thickness_um * 1e-6
        layers, step, mu = 1, 0.0, 0.0
        if thick > 0:
            layers = max(int(thicksteps), 2)
            step = thick / (layers - 1)
            mu = 1.0 / (attenuation_um * 1e-6 if attenuation_um else thick)
        fl = lambda v: tuple(float(c) for c in v)
        return cls(fpixels=int(fpixels), spixels=int(spixels), pixel_size=ps, fdet=fl(conv["fdet"]),
                   sdet=fl(conv["sdet"]), odet=fl(conv["odet"]), beam=fl(conv["beam"]),
                   twotheta_axis=fl(conv["twotheta_axis"]), pivot="beam", distance=distance_mm * 1e-3,
                   Fbeam=ybeam + 0.5 * ps, Sbeam=xbeam + 0.5 * ps, rotx=math.radians(rotations_deg[0]),
                   roty=math.radians(rotations_deg[1]), rotz=math.radians(rotations_deg[2]),
                   twotheta=math.radians(twotheta_deg), curved=curved, point_pixel=point_pixel, thickness=thick,
                   thicksteps=layers, thickstep=step, mu=mu, oversample=None if oversample is None else int(oversample),
                   dtype=dtype, device=device)

    def t(self, x):
        if isinstance(x, torch.Tensor):
            return x.to(dtype=self.dtype, device=self.device)
        return torch.tensor(x, dtype=self.dtype, device=self.device)

    def geometry(self):
        """Rotated basis, pix0 and the derived beam/near-point values (C's set-up block)."""
        f0, s0, o0 = self.t(self.fdet), self.t(self.sdet), self.t(self.odet)
        beam, axis = self.t(self.beam), self.t(self.twotheta_axis)
        rx, ry, rz, tt = self.t(self.rotx), self.t(self.roty), self.t(self.rotz), self.t(self.twotheta)
        ratio = dot(beam, rotate_xyz(o0, rx, ry, rz))
        ratio = torch.where(ratio == 0, torch.full_like(ratio, DBL_MIN), ratio)
        if self.close_distance is None:
            close = torch.abs(ratio * self.t(self.distance))
        else:
            close = self.t(self.close_distance)
        distance = close / ratio
        pix0 = None
        if self.pivot == "sample":
            pix0 = -self.t(self.Fclose) * f0 - self.t(self.Sclose) * s0 + close * o0
            pix0 = rotate_axis(rotate_xyz(pix0, rx, ry, rz), axis, tt)
        elif self.pivot == "pix0":
            pix0 = rotate_axis(rotate_xyz(self.t(self.pix0), rx, ry, rz), axis, tt)
        f = rotate_axis(rotate_xyz(f0, rx, ry, rz), axis, tt)
        s = rotate_axis(rotate_xyz(s0, rx, ry, rz), axis, tt)
        o = rotate_axis(rotate_xyz(o0, rx, ry, rz), axis, tt)
        if self.pivot == "beam":
            pix0 = -self.t(self.Fbeam) * f - self.t(self.Sbeam) * s + distance * beam
        close = dot(pix0, o)
        to_beam = close / ratio * beam - pix0
        return dict(fdet=f, sdet=s, odet=o, pix0=pix0, beam=beam, ratio=ratio,
                    Fclose=-dot(pix0, f), Sclose=-dot(pix0, s), close_distance=close,
                    Fbeam=dot(f, to_beam), Sbeam=dot(s, to_beam), distance=close / ratio)

    def subpixel_offsets(self, index, pixel_size):
        """Metres from the detector origin to each sub-pixel centre along one axis.

        index: (n,) pixel indices -> (n, oversample)."""
        o = self.oversample
        sub = pixel_size / o
        ticks = torch.arange(o, device=self.device, dtype=self.dtype)
        return sub * (index.to(self.dtype).unsqueeze(-1) * o + ticks) + sub / 2.0

    def layer_offsets(self):
        return torch.arange(self.thicksteps, device=self.device, dtype=self.dtype) * self.t(self.thickstep)

    def positions(self, geo, slow, fast):
        """Sub-pixel positions for pixels (slow[i], fast[i]): shape (n, layers, O*O, 3).

        Sub-pixel order is slow-major (subS, subF) as nanoBragg loops."""
        ps = self.t(self.pixel_size)
        fd = self.subpixel_offsets(fast, ps)  # (n, O)
        sd = self.subpixel_offsets(slow, ps)
        o = self.oversample
        fd = fd[:, None, :].expand(-1, o, -1).reshape(-1, o * o)  # subF fastest
        sd = sd[:, :, None].expand(-1, -1, o).reshape(-1, o * o)
        od = self.layer_offsets()
        f, s, ov, pix0 = geo["fdet"], geo["sdet"], geo["odet"], geo["pix0"]
        pos = fd[:, None, :, None] * f + sd[:, None, :, None] * s
        pos = pos + od[None, :, None, None] * ov
        pos = pos + pix0
        if self.curved:
            dist = geo["distance"]
            start = (dist * geo["beam"]).expand_as(pos)
            tmp = rotate_axis(start, s, pos[..., 1] / dist)
            pos = rotate_axis(tmp, f, pos[..., 2] / dist)
        return pos
