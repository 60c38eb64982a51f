"""nanobrag_torch: a differentiable, vectorized PyTorch reimplementation of nanoBragg.

The Python API (see README, "Python API") is importable from the package; it is loaded on first
use so that `python -m nanobrag_torch` and the small modules stay quick to import.
"""
_API = ("Beam", "Crystal", "Detector", "Flags", "PanelDetector", "Parameters", "SPECS", "Simulation",
        "available_parameters", "from_args", "parameters", "read_expt", "release", "simulate", "write_expt")

__all__ = list(_API)


def __getattr__(name):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version("nanobrag_torch")
        except PackageNotFoundError:  # run from a source tree that was never installed
            return "unknown"
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'nanobrag_torch' has no attribute {name!r}")
