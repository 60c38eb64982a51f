"""Refine the unit cell, crystal orientation, detector distance and beam centre against one
Poisson-noisy still image by minimizing the Poisson negative log-likelihood with L-BFGS.

The image is simulated at the true parameters (peak ~1e4 photons, 1 photon/pixel flat
background), the fit starts from cell a +0.5 %, misset +0.3 deg about x, y and z, distance
+0.5 mm and beam centre +0.05 mm in x and y. Gradients come from autograd through the simulator.

    python examples/refine_geometry.py      (last line: RESULT ...)
"""
import time

import torch
from lbfgs_rounds import fit

import nanobrag_torch as nb

CELL = (60.0, 70.0, 80.0, 85.0, 95.0, 105.0)  # Angstrom, degrees
MISSET = (10.0, 20.0, 30.0)  # degrees
DISTANCE_MM = 50.0
PIXELS, PIXEL_MM = 128, 0.1
BACKGROUND = 1.0  # photons per pixel, known
PEAK = 1e4  # photons in the brightest pixel
MAX_ROUNDS, STOP = 5, 0.01  # L-BFGS rounds; stop when a round gains less log-likelihood than STOP


def simulation():
    det = nb.Detector.mosflm(distance_mm=DISTANCE_MM, pixel_mm=PIXEL_MM, fpixels=PIXELS, oversample=1)
    xtal = nb.Crystal.from_cell(*CELL, misset=MISSET, N=6, default_F=100.0)
    return nb.Simulation(det, xtal, nb.Beam.monochromatic(wavelength_A=1.0))


def main():
    start_time = time.time()
    torch.manual_seed(1234)
    sim = simulation()
    p = nb.parameters(sim, "cell", "misset", "distance", "Fbeam", "Sbeam")
    truth = {name: value.detach().clone() for name, value in p.items()}
    with torch.no_grad():
        clean = sim.run()
    scale = PEAK / float(clean.max())
    counts = torch.poisson(clean * scale + BACKGROUND)
    print(f"observed image: {PIXELS}x{PIXELS} pixels, {int((clean * scale > 100).sum())} pixels above 100 photons, "
          f"{float(counts.sum()):.4g} photons")

    # the starting model, and the fitted variables in units of about the starting error
    start = {name: value.clone() for name, value in truth.items()}
    start["cell"][0] *= 1.005
    start["misset"] += 0.3
    start["distance"] += 0.5
    start["Fbeam"] += 0.05
    start["Sbeam"] += 0.05
    x = torch.zeros(7, dtype=torch.float64, requires_grad=True)

    def assign(x):
        p["cell"] = torch.cat((start["cell"][:1] * (1.0 + 1e-3 * x[:1]), start["cell"][1:]))
        p["misset"] = start["misset"] + 0.1 * x[1:4]
        p["distance"] = start["distance"] + 0.1 * x[4]
        p["Fbeam"] = start["Fbeam"] + 0.01 * x[5]
        p["Sbeam"] = start["Sbeam"] + 0.01 * x[6]

    def errors():
        with torch.no_grad():
            assign(x)
            return dict(cell_a_rel_err=abs(float(p["cell"][0] / truth["cell"][0] - 1.0)),
                        misset_deg_err=float((p["misset"] - truth["misset"]).abs().max()),
                        distance_mm_err=abs(float(p["distance"] - truth["distance"])),
                        beam_mm_err=max(abs(float(p["Fbeam"] - truth["Fbeam"])),
                                        abs(float(p["Sbeam"] - truth["Sbeam"]))))

    def nll():
        assign(x)
        expected = sim.run() * scale + BACKGROUND
        return (expected - counts * torch.log(expected)).sum()

    fit(x, nll, errors, start_time, MAX_ROUNDS, STOP, max_iter=15, tolerance_grad=1e-7, tolerance_change=1e-10)


if __name__ == "__main__":
    main()
