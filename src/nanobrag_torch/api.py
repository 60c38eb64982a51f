"""Python API: simulations from nanoBragg arguments or from Python objects, rendered as tensors.

    sim = from_args(["-cell", "70", "80", "90", "75", "85", "95", "-default_F", "100", ...])
    image = simulate(sim)                      # == the command line's float image
    p = parameters(sim, "cell", "distance")    # float64 leaves; gradients flow from the image
    simulate(sim).sum().backward(); p["cell"].grad

Models: `Detector.mosflm(...)`, `Crystal.from_cell(...)` / `Crystal.from_matrix(...)`,
`Beam.monochromatic(...)`, then `Simulation(detector, crystal, beam)`.
"""
import dataclasses
import shlex

import torch

from .differentiable import SPECS, Parameters, available_parameters, parameters, release
from .engine import Flags
from .errors import InputFileError
from .io.expt import read_expt, write_expt
from .models import Beam, Crystal, Detector, PanelDetector, Sample
from .simulator import RenderInputs, Simulation, render_chunk

__all__ = ["Beam", "Crystal", "Detector", "Flags", "PanelDetector", "Parameters", "RenderInputs", "SPECS", "Sample",
           "Simulation", "available_parameters", "from_args", "parameters", "read_expt", "release", "render_chunk",
           "simulate", "write_expt"]

_DTYPES = {torch.float32: "float32", torch.float64: "float64", "float32": "float32", "float64": "float64"}


def _quiet(text):
    pass


def from_args(args, device=None, dtype=None, write_fdump=False):
    """The Simulation that the command line builds for `args`: one string split like a shell
    (`"-cell 70 80 90 90 90 90 -N 5"`) or a list of options and values (strings or numbers).

    Files are read relative to the current folder. device/dtype override -device/-dtype. Output
    options are accepted and ignored; with write_fdump=False an -hkl file does not leave an
    Fdump.bin behind. The resolved nanoBragg settings are kept as `sim.settings`."""
    from . import cli, setup

    args = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
    v = cli.load_settings(args, _quiet)
    if dtype is not None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be float32 or float64, not {dtype!r}")
        v = dataclasses.replace(v, dtype=_DTYPES[dtype])
    if device is not None:
        v = dataclasses.replace(v, device=str(device))
    sim = setup.build(v, write_fdump=write_fdump)
    v = sim.settings
    if v.mask_image is not None and v.mask_image.shape != (v.spixels, v.fpixels):
        raise InputFileError(f"{v.maskfile}: mask is {v.mask_image.shape[1]}x{v.mask_image.shape[0]} pixels "
                             f"but the detector is {v.fpixels}x{v.spixels}")
    _attach_lattice_definition(sim.crystal, v)
    return sim


def _attach_lattice_definition(crystal, v):
    """Record what the lattice was computed from (the command line's cell/matrix/misset rules)
    so that it can be recomputed from differentiable values."""
    for name, value in v.lattice_definition.items():
        if value is not None:
            setattr(crystal, name, value)


def simulate(sim):
    """The float image (spixels, fpixels) on the simulation's device and dtype (differentiable)."""
    return sim.run()
