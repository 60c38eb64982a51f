"""Shots rendered on the fly for machine learning, with their labels.

    from nanobrag_torch.datasets.ml import ShotDataset, iter_shots
    data = ShotDataset(["-cell", "70", "80", "90", "90", "90", "90", "-default_F", "100", "-N", "5",
                        "-detpixels", "256", "-misset_seed", "1", "-seed", "1"], count=1000,
                       shots="shots.toml", maps=True)
    loader = torch.utils.data.DataLoader(data, batch_size=8, num_workers=4)

Each item is a dict: `index`, `image` (the noise image as float32 counts, or the float photons with
noise=False), and the labels `orientation` (3x3: the crystal's rotation, lab frame), `real_vectors`
(rows a, b, c in Angstrom as rendered), `cell` (a, b, c, alpha, beta, gamma), `N` (cells per edge),
`size_um` (crystal edges), `mosaic_deg`, `mosaic_domains`, `fluence`, `wavelengths_A` and `weights`
(the spectrum as rendered), `phi_deg`; with maps=True also `resolution` (d-spacing of each pixel
centre, Angstrom) and `hkl` (nearest Miller indices of each pixel centre, int32 (slow, fast, 3)).

Shot i is the same whoever renders it (a seed-per-index plan): with several DataLoader workers each
renders every num_workers-th shot, in its own process, with its own set-up.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from ..settings import RTD
from .meta import unit_cell


def make_plan_and_args(args, count: int, shots=None, kind: str = "stills"):
    """(FramePlan, base arguments) for `count` shots (kind "stills") or frames (kind "rotation")."""
    from .cli import make_plan, split_args

    opts, base = split_args([str(a) for a in args])
    opts = {("stills" if kind == "stills" else "frames"): [str(count)]}
    if shots is not None:
        opts["shots"] = [os.fspath(shots)]
    return make_plan(base, opts), base


def _rodrigues(axis, angle):
    k = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def labels(result, sim, maps: bool = False) -> dict:
    """The labels of a rendered FrameResult (see the module docstring)."""
    v, frame = result.settings, result.frame
    misset = frame.misset_deg if frame.misset_deg is not None else (0.0, 0.0, 0.0)
    rx, ry, rz = (math.radians(a) for a in misset)
    orientation = _rodrigues((0, 0, 1), rz) @ _rodrigues((0, 1, 0), ry) @ _rodrigues((1, 0, 0), rx)
    real = np.asarray(v.real, dtype=np.float64)
    lengths = np.linalg.norm(real, axis=1)
    out = {
        "index": frame.index, "phi_deg": frame.phi_deg, "orientation": orientation, "real_vectors": real,
        "cell": unit_cell(real), "N": np.array([v.Na, v.Nb, v.Nc]), "size_um": lengths * [v.Na, v.Nb, v.Nc] * 1e-4,
        "mosaic_deg": v.mosaic_spread * RTD, "mosaic_domains": v.mosaic_domains, "fluence": v.fluence,
        "wavelengths_A": sim.beam.wavelengths.detach().cpu().numpy() * 1e10,
        "weights": _weights(sim.beam),
    }
    if maps:
        out["resolution"], out["hkl"] = pixel_maps(v, real, v.phi0)
    return out


def _weights(beam) -> np.ndarray:
    n = beam.wavelengths.numel()
    if beam.weights is None:
        return np.full(n, 1.0 / n)
    w = beam.weights.detach().cpu().numpy().astype(np.float64)
    return w / w.sum()


def pixel_maps(v, real, phi) -> tuple:
    """(d-spacing per pixel centre in Angstrom, nearest hkl per pixel centre) for the central wavelength."""
    g = v.geo
    f = (np.arange(v.fpixels) + 0.5) * v.pixel_size
    s = (np.arange(v.spixels) + 0.5) * v.pixel_size
    pos = (np.asarray(g["pix0"])[None, None, :] + f[None, :, None] * np.asarray(g["fdet"])
           + s[:, None, None] * np.asarray(g["sdet"]))
    out_dir = pos / np.linalg.norm(pos, axis=-1, keepdims=True)
    beam = np.asarray(v.beam, dtype=np.float64)
    lam = v.lambda0 * 1e10
    scattering = (out_dir - beam) / lam  # 1/Angstrom
    sin_theta = np.linalg.norm(scattering, axis=-1) * lam / 2
    with np.errstate(divide="ignore"):
        resolution = np.where(sin_theta > 0, lam / (2 * np.maximum(sin_theta, 1e-300)), np.inf)
    rotated = real @ _rodrigues(v.spindle, phi).T  # rows a, b, c at the frame's starting phi
    hkl = np.rint(scattering @ rotated.T).astype(np.int32)
    return resolution.astype(np.float32), hkl


def iter_shots(args, count: int, shots=None, indices=None, noise: bool = True, maps: bool = False,
               kind: str = "stills"):
    """Yield each shot's dict (numpy arrays) for `indices` (default: all), rendered in this process.

    args: nanoBragg options; files they name are read relative to the current folder. No output
    file is written (not even Fdump.bin)."""
    from .render import Renderer

    plan, base = make_plan_and_args(args, count, shots, kind)
    if not noise:
        base = base + ["-nonoise"]
    with Renderer(base, plan, write_fdump=False) as renderer:
        for index in (range(count) if indices is None else indices):
            result = renderer.render(plan.frame(index))
            item = labels(result, renderer.last_sim, maps)
            image = result.counts if result.counts is not None else result.photons
            item["image"] = np.asarray(image, dtype=np.float32)
            yield item


class ShotDataset(torch.utils.data.IterableDataset):
    """A torch IterableDataset of rendered shots (see the module docstring); items hold tensors."""

    def __init__(self, args, count: int, shots=None, noise: bool = True, maps: bool = False,
                 kind: str = "stills"):
        super().__init__()
        self.args, self.count, self.shots = [str(a) for a in args], int(count), shots
        self.noise, self.maps, self.kind = noise, maps, kind

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        indices = range(worker, self.count, workers)
        for item in iter_shots(self.args, self.count, self.shots, indices, self.noise, self.maps, self.kind):
            yield {k: (torch.as_tensor(x) if isinstance(x, np.ndarray) else x) for k, x in item.items()}
