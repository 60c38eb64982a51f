"""Ahead-of-time compiled copies of the engine's hot loop, cached on disk.

`engine.lattice_sum` (the per-term work: Miller indices, lattice transform, structure-factor
lookup, sum over orientations) is exported and compiled by AOTInductor once per configuration and
chunk shape, then loaded in later runs without any tracing or compiler start-up. The compiled
kernel is the same function, so results are those of the eager engine (to rounding).
"""
import dataclasses
import hashlib
import os
import tempfile

import torch

from . import engine, physics
from .engine import lattice_sum

_LOADED = {}


def cache_dir():
    return os.environ.get("NANOBRAGG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nanobrag_torch")


def _constant(x):
    return float(x.detach()) if torch.is_tensor(x) else float(x)


_SOURCE = {}


def _source_digest():
    if "digest" not in _SOURCE:
        digest = hashlib.sha256()
        for module in (engine, physics):
            with open(module.__file__, "rb") as handle:
                digest.update(handle.read())
        _SOURCE["digest"] = digest.hexdigest()
    return _SOURCE["digest"]


def _key(crystal, shapes, n_vectors, dtype):
    digest = hashlib.sha256(_source_digest().encode())
    grid = crystal.Fhkl
    consts = (crystal.shape, _constant(crystal.Na), _constant(crystal.Nb), _constant(crystal.Nc),
              _constant(crystal.fudge), _constant(crystal.default_F), tuple(crystal.hkl_min), crystal.hkl_count,
              None if grid is None else tuple(grid.shape), tuple(shapes), n_vectors, str(dtype), torch.__version__)
    digest.update(repr(consts).encode())
    return digest.hexdigest()[:32]


class _Kernel(torch.nn.Module):
    """lattice_sum with the crystal's constants baked in and its tensors as inputs."""

    def __init__(self, crystal):
        super().__init__()
        self.crystal = crystal

    def forward(self, diffracted, incident, wavelengths, vectors, grid, recip):
        has_grid = self.crystal.Fhkl is not None
        crystal = dataclasses.replace(self.crystal, Fhkl=grid if has_grid else None, recip=recip)
        return lattice_sum(diffracted, incident, wavelengths, vectors, crystal)


def _build(path, crystal, inputs):
    import torch._inductor

    frozen = dataclasses.replace(crystal, mosaic_umats=None)
    program = torch.export.export(_Kernel(frozen), tuple(inputs))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build.", suffix=".pt2", dir=folder)
    os.close(fd)
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=tmp)
        os.replace(tmp, path)  # atomic: concurrent runs never see half a package
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fused_lattice_sum(crystal, diffracted_shape, sources, n_vectors, dtype):
    """A drop-in for engine.lattice_sum on CPU chunks of one shape, compiled ahead of time."""
    shapes = (tuple(diffracted_shape), sources)
    key = _key(crystal, shapes, n_vectors, dtype)
    if key in _LOADED:
        return _LOADED[key]
    path = os.path.join(cache_dir(), key + ".pt2")
    dummy = torch.zeros(1, dtype=dtype)

    def inputs(diffracted, incident, wavelengths, vectors, c):
        grid = c.Fhkl if c.Fhkl is not None else dummy
        recip = c.recip if c.recip is not None else torch.zeros(3, 3, dtype=dtype)
        return [x.contiguous() for x in (diffracted, incident, wavelengths, vectors, grid, recip.to(dtype))]

    if not os.path.exists(path):
        example = (torch.zeros(diffracted_shape, dtype=dtype), torch.ones(sources, 3, dtype=dtype),
                   torch.ones(sources, dtype=dtype), torch.zeros(n_vectors, 3, 3, dtype=dtype))
        _build(path, crystal, inputs(*example, crystal))
    loader = torch._C._aoti.AOTIModelPackageLoader(path, "model", False, 1, -1)

    def run(diffracted, incident, wavelengths, vectors, c):
        return loader.run(inputs(diffracted, incident, wavelengths, vectors, c))[0]

    _LOADED[key] = run
    return run
