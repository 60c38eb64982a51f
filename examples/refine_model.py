"""Refine an atomic model (coordinates and B factors) against Poisson-noisy stills.

A made-up model of 40 atoms in space group P 21 21 21 (160 in the unit cell) gives, through
`-model`-style structure factors computed from the atoms, four stills at random orientations.
The refinement starts from coordinates displaced by 0.3 A rms and B factors 20 % too high and
minimizes the Poisson negative log-likelihood of all pixels with L-BFGS: the gradient flows from
the pixels through the lattice transform and the structure factors down to each atom
(`parameters(sim, "atom_xyz", "atom_B")`). Reported: the rms coordinate error (A) and the rms
relative B error after refinement.

    python examples/refine_model.py      (last line: RESULT ...)
"""
import time

import numpy as np
import torch
from lbfgs_rounds import fit

import nanobrag_torch as nb
from nanobrag_torch.structure import AtomicModel, attach_model

CELL = (24.0, 28.0, 32.0, 90.0, 90.0, 90.0)
SPACEGROUP = "P 21 21 21"
ATOMS, MIN_SEPARATION = 40, 1.6  # Angstrom, between any two atoms of the unit cell
STILLS, PIXELS, PIXEL_MM, DISTANCE_MM = 4, 96, 0.33, 40.0  # corners at ~2 A
DMIN = 1.8  # structure factors are computed to here (beyond the detector's corners)
PEAK, BACKGROUND = 2e4, 1.0  # photons in the brightest pixel; flat known background per pixel
START_RMS, B_FACTOR = 0.3, 1.2
MAX_ROUNDS, STOP = 2, 0.5  # L-BFGS rounds; stop when a round gains less log-likelihood than STOP


def made_up_model(rng):
    """Atoms at random positions, every symmetry image at least MIN_SEPARATION from the others."""
    symbols, xyz = [], []
    probe = AtomicModel.from_atoms(["C"], [[0.0, 0.0, 0.0]], [1.0], cell=CELL, spacegroup=SPACEGROUP)
    rot, tran = probe.symmetry.rot, probe.symmetry.tran
    cell = np.array(CELL[:3])
    placed = np.zeros((0, 3))
    while len(xyz) < ATOMS:
        frac = rng.uniform(0.0, 1.0, 3)
        images = np.einsum("mij,j->mi", rot, frac) + tran
        diff = (images[:, None, :] - np.concatenate((placed, images))[None, :, :] + 0.5) % 1.0 - 0.5
        dist = np.linalg.norm(diff * cell, axis=-1)
        dist[np.arange(len(images)), len(placed) + np.arange(len(images))] = np.inf
        if dist.min() < MIN_SEPARATION:
            continue
        placed = np.concatenate((placed, images))
        xyz.append(frac * cell)
        symbols.append(rng.choice(["C", "N", "O", "S"], p=[0.6, 0.17, 0.2, 0.03]))
    B = rng.uniform(10.0, 30.0, ATOMS)
    return AtomicModel.from_atoms(symbols, np.array(xyz), B, cell=CELL, spacegroup=SPACEGROUP)


def stills(model, rng):
    sims = []
    for _ in range(STILLS):
        misset = tuple(rng.uniform(-180.0, 180.0, 3))
        det = nb.Detector.mosflm(distance_mm=DISTANCE_MM, pixel_mm=PIXEL_MM, fpixels=PIXELS)
        xtal = attach_model(nb.Crystal.from_cell(*CELL, misset=misset, N=5), model, dmin_A=DMIN)
        sims.append(nb.Simulation(det, xtal, nb.Beam.monochromatic(wavelength_A=1.0)))
    return sims


def main():
    start_time = time.time()
    rng = np.random.default_rng(11)
    torch.manual_seed(11)
    truth = made_up_model(rng)
    sims = stills(truth, rng)
    with torch.no_grad():
        clean = [sim.run() for sim in sims]
    scale = PEAK / max(float(c.max()) for c in clean)
    observed = [torch.poisson(c * scale + BACKGROUND) for c in clean]
    xyz_true, B_true = truth.xyz.clone(), truth.B.clone()

    shift = torch.randn(ATOMS, 3, dtype=torch.float64)
    xyz0 = xyz_true + shift * (START_RMS / shift.pow(2).sum(1).mean().sqrt())
    # one vector for the optimizer: coordinates (A), then log B (B stays positive)
    x = torch.cat((xyz0.reshape(-1), torch.log(B_true * B_FACTOR))).requires_grad_(True)
    params = [nb.parameters(sim, "atom_xyz", "atom_B") for sim in sims]

    def unpack():
        return x[:3 * ATOMS].reshape(ATOMS, 3), x[3 * ATOMS:].exp()

    def errors():
        xyz, B = (t.detach() for t in unpack())
        return {"xyz_rmsd_A": float((xyz - xyz_true).pow(2).sum(1).mean().sqrt()),
                "b_rel_err": float(((B - B_true) / B_true).pow(2).mean().sqrt()), "stills": STILLS}

    def nll():
        xyz, B = unpack()
        total = 0.0
        for p, sim, obs in zip(params, sims, observed):
            p["atom_xyz"], p["atom_B"] = xyz, B  # the same tensors: the stills share one F computation
            expected = sim.run() * scale + BACKGROUND
            total = total + (expected - obs * torch.log(expected)).sum()
        return total

    print(f"{ATOMS} atoms in {SPACEGROUP} ({len(truth.symmetry.rot) * ATOMS} in the cell), {STILLS} stills of "
          f"{PIXELS}x{PIXELS} pixels; starting {START_RMS} A rms off, B x {B_FACTOR}")
    fit(x, nll, errors, start_time, MAX_ROUNDS, STOP, max_iter=15, tolerance_grad=1e-9, tolerance_change=1e-12)


if __name__ == "__main__":
    main()
