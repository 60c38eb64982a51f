"""Refine the positions of the four panels of a detector from one Poisson-noisy still.

A 2x2 detector of 64x64-pixel panels (0.1 mm pixels, 1 mm gaps, 50 mm from the crystal) records a
still of a 30 A crystal. Each panel of the true detector is displaced by 0.1-0.3 mm in its own
plane and turned by 0.1-0.3 degrees about its normal (what spot positions on a flat panel
determine; a shift along the normal or a tilt of a few tenths of a degree moves spots by far less
than a micrometre here). The fit starts from the nominal layout and minimizes the Poisson negative
log-likelihood with L-BFGS over the per-panel offsets and rotations (PanelDetector.shifts and
.rotations), gradients by autograd through the simulator.

    python examples/refine_panels.py      (last line: RESULT ...)
"""
import time

import torch
from lbfgs_rounds import fit

import nanobrag_torch as nb
from nanobrag_torch.models import PanelDetector

PIXELS, PIXEL_M, GAP_M, DISTANCE_M = 64, 1e-4, 1e-3, 0.05
BACKGROUND = 1.0  # photons per pixel, known
PEAK = 3e4  # photons in the brightest pixel
# true in-plane displacements (mm along the panel's fast and slow axes) and turns (degrees)
SHIFT_MM = [(0.2, -0.1), (-0.15, 0.25), (0.1, 0.2), (-0.25, -0.12)]
TURN_DEG = [0.2, -0.15, 0.3, -0.1]
MAX_ROUNDS, STOP = 4, 0.01


def nominal_layout():
    """Panel corners of a 2x2 layout centred on the beam (MOSFLM frame: beam along +x,
    fast along +z, slow along -y)."""
    size = PIXELS * PIXEL_M
    corners = []
    for row in (0, 1):
        for col in (0, 1):
            z = -size - GAP_M / 2 if col == 0 else GAP_M / 2
            y = size + GAP_M / 2 if row == 0 else -GAP_M / 2
            corners.append([DISTANCE_M, y, z])
    return torch.tensor(corners, dtype=torch.float64)


def simulation(shifts=None, rotations=None):
    fast = torch.tensor([[0.0, 0.0, 1.0]] * 4, dtype=torch.float64)
    slow = torch.tensor([[0.0, -1.0, 0.0]] * 4, dtype=torch.float64)
    det = PanelDetector(origins=nominal_layout(), fasts=fast, slows=slow, normals=torch.linalg.cross(fast, slow),
                        pixel_sizes=[PIXEL_M] * 4, fpixels=PIXELS, panel_spixels=PIXELS, beam=[1.0, 0.0, 0.0],
                        shifts=shifts, rotations=rotations)
    xtal = nb.Crystal.from_cell(30.0, 30.0, 30.0, misset=(12.0, 25.0, 33.0), N=5, default_F=100.0)
    return nb.Simulation(det, xtal, nb.Beam.monochromatic(wavelength_A=1.0))


def in_plane(sim, shift_mm, turn_deg):
    """Lab-frame offsets (m) and (fast, slow, normal) rotations (rad) from in-plane values."""
    d = sim.detector
    f, s = d.t(d.fasts), d.t(d.slows)
    shifts = 1e-3 * (shift_mm[:, :1] * f + shift_mm[:, 1:] * s)
    zeros = torch.zeros_like(turn_deg)
    return shifts, torch.stack((zeros, zeros, torch.deg2rad(turn_deg)), -1)


def main():
    start_time = time.time()
    torch.manual_seed(1234)
    true_shift = torch.tensor(SHIFT_MM, dtype=torch.float64)
    true_turn = torch.tensor(TURN_DEG, dtype=torch.float64)
    sim = simulation()
    sim.detector.shifts, sim.detector.rotations = in_plane(sim, true_shift, true_turn)
    with torch.no_grad():
        clean = sim.run()
    scale = PEAK / float(clean.max())
    counts = torch.poisson(clean * scale + BACKGROUND)
    print(f"observed: 4 panels of {PIXELS}x{PIXELS} pixels, {int((clean * scale > 100).sum())} pixels above "
          f"100 photons, {float(counts.sum()):.4g} photons")

    # fitted variables: in-plane shifts in units of 0.1 mm and turns in units of 0.1 degree
    x = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)

    def assign(x):
        sim.detector.shifts, sim.detector.rotations = in_plane(sim, 0.1 * x[:, :2], 0.1 * x[:, 2])

    def errors():
        with torch.no_grad():
            return {"panel_shift_err_mm": float((0.1 * x[:, :2] - true_shift).abs().max()),
                    "panel_rot_err_deg": float((0.1 * x[:, 2] - true_turn).abs().max())}

    def nll():
        assign(x)
        expected = sim.run() * scale + BACKGROUND
        return (expected - counts * torch.log(expected)).sum()

    fit(x, nll, errors, start_time, MAX_ROUNDS, STOP, max_iter=12, tolerance_grad=1e-9, tolerance_change=1e-12)


if __name__ == "__main__":
    main()
