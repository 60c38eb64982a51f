"""The incident beam: source directions, wavelengths and weights, polarization, fluence (SI)."""
from dataclasses import dataclass

import torch


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
    lambda0: object = None  # central wavelength (m) and fractional bandpass that the wavelengths
    dispersion: object = 0.0  # were made from (used to make them differentiable)

    @classmethod
    def monochromatic(cls, wavelength_A=1.0, dispersion_pct=0.0, dispsteps=1, direction=(1.0, 0.0, 0.0),
                      polar_axis=(0.0, 0.0, 1.0), kahn=0.0, nopolar=False, fluence=1.25932015286227086e29,
                      dtype=torch.float64, device="cpu"):
        """One beam direction (default MOSFLM's +x), optionally with nanoBragg's flat bandpass:
        `dispsteps` wavelengths spread evenly over +/- dispersion_pct / 2 percent."""
        lam0, disp = wavelength_A * 1e-10, dispersion_pct / 100.0
        steps = max(int(dispsteps), 1) if disp > 0 else 1
        step = disp / (steps - 1) if steps > 1 else 0.0
        lams = [lam0 * (1.0 + step * i - disp / 2.0) for i in range(steps)] if steps > 1 else [lam0]
        d = torch.as_tensor(direction, dtype=torch.float64)
        dirs = (-d / torch.linalg.norm(d)).repeat(steps, 1)
        t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)
        return cls(source_dirs=t(dirs), wavelengths=t(lams), weights=None, polar_axis=tuple(polar_axis), kahn=kahn,
                   nopolar=nopolar, fluence=fluence, lambda0=lam0, dispersion=disp if steps > 1 else 0.0)

    def weight_factor(self):
        if self.weights is None:
            return None
        w = self.weights
        if not w.requires_grad and bool((w == w[0]).all()):
            return None
        return w * w.numel() / w.sum()
