"""nanobrag_torch: a differentiable, vectorized PyTorch reimplementation of nanoBragg.

The Python API (see README, "Python API") is importable from the package; it is loaded on first
use so that `python -m nanobrag_torch` and the small modules stay quick to import.

    import nanobrag_torch as nb
    sim = nb.from_args("-cell 100 100 100 90 90 90 -default_F 100 -N 5 -detpixels 64")
    image = nb.simulate(sim)            # (slow, fast) tensor, the command line's float image
"""
_API = ("Beam", "Crystal", "Detector", "Flags", "PanelDetector", "Parameters", "RenderInputs", "SPECS", "Sample",
        "Simulation", "available_parameters", "from_args", "parameters", "read_expt", "release", "render_chunk",
        "simulate", "write_expt")

__all__ = [*_API, "__version__"]

def _version() -> str:
    """The installed version, looked up on first use (importlib.metadata costs ~50 ms at start-up)."""
    from importlib import metadata

    try:
        return metadata.version("nanobrag_torch")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        globals()["__version__"] = version = _version()
        return version
    if name in _API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'nanobrag_torch' has no attribute {name!r}")


def __dir__() -> list:
    """The public API (submodules stay importable by name but are not advertised)."""
    return sorted(__all__)
