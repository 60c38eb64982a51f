"""Compiled copies of the engine's plain path (pixel indices in, photons out), cached on disk.

`engine.plain_pixels` (sub-pixel positions, solid angle, polarization, the sum over layers,
sub-pixels, sources, phi steps and mosaic domains, final scale) is exported once per
configuration and chunk shape and compiled by AOTInductor into one fused loop nest, then loaded
in later runs without tracing or compiler start-up. On other devices the same module goes
through torch.compile. It is the same function, so results are those of the eager engine (to
the rounding of a reordered sum).

Values that change from run to run (geometry, wavelengths, orientations, structure factors,
fluence...) are inputs of the compiled kernel; only what shapes the loop nest (counts, crystal
shape and size, which optional factors apply) is baked in and named by the cache key.
"""
import atexit
import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import platform
import shutil
import tempfile
import warnings

import torch

from . import engine, physics
from .geometry import detector as detector_module
from .geometry import vectors as vectors_module
from .engine import plain_pixels

LOG = logging.getLogger(__name__)  # the command line shows its notes on stderr
_LOADED = {}  # key -> kernel function
_PACKAGES = {}  # key -> loaded package; each keeps an extracted copy in a temporary folder
_SOURCE = {}
GEO_KEYS = ("fdet", "sdet", "odet", "pix0", "distance", "beam", "close_distance", "polar_axis")


def cache_dir():
    return os.environ.get("NANOBRAGG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nanobrag_torch")


def _constant(x):
    return float(x.detach()) if torch.is_tensor(x) else float(x)


def _source_digest():
    """Hash of the code that is compiled: a changed engine never loads a stale kernel."""
    if "digest" not in _SOURCE:
        digest = hashlib.sha256()
        for module in (engine, physics, detector_module, vectors_module):
            with open(module.__file__, "rb") as handle:
                digest.update(handle.read())
        with open(__file__, "rb") as handle:
            digest.update(handle.read())
        _SOURCE["digest"] = digest.hexdigest()
    return _SOURCE["digest"]


@atexit.register
def release():
    """Unload every kernel package: each deletes its extracted temporary copy as it goes.

    Kernel functions handed out earlier stay usable (they load their package again if called)."""
    _PACKAGES.clear()


def _cpu_fingerprint():
    """The CPU's model and instruction-set flags: kernels are built for the machine that builds them
    (-march=native), so a cache shared between different machines must not hand one to the other."""
    if "cpu" not in _SOURCE:
        text = platform.machine()
        try:
            with open("/proc/cpuinfo") as handle:
                lines = [ln for ln in handle if ln.startswith(("model name", "flags", "Features"))]
            text += "".join(sorted(set(lines)))
        except OSError:
            text += platform.processor()
        _SOURCE["cpu"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return _SOURCE["cpu"]


def _kahn_is_zero(kahn):
    return not torch.is_tensor(kahn) and float(kahn) == 0.0


class PixelKernel(torch.nn.Module):
    """plain_pixels with the loop-shaping constants baked in and every other value an input."""

    def __init__(self, detector, crystal, flags, weighted):
        super().__init__()
        thick_on = bool(detector.thicksteps) and _constant(detector.thickness) != 0.0
        self.detector = dataclasses.replace(detector, thickness=1.0 if thick_on else 0.0, _cache=None)
        self.has_grid = crystal.Fhkl is not None
        # the grid comes in with a border of default_F (see kernel_inputs): no inside test per term
        border = dict(hkl_bordered=True, hkl_min=tuple(m - 1 for m in crystal.hkl_min)) if self.has_grid else {}
        self.crystal = dataclasses.replace(crystal, mosaic_umats=None, real=None, recip=None, Fhkl=None, **border)
        self.flags = flags
        self.weighted = weighted
        self.kahn_zero = _kahn_is_zero(flags.kahn)

    def key(self, chunk, sources, orientations, dtype, grid_shape):
        d, c, f = self.detector, self.crystal, self.flags
        consts = (d.oversample, d.thicksteps, d.thickness, d.curved, d.point_pixel, c.shape, _constant(c.Na),
                  _constant(c.Nb), _constant(c.Nc), _constant(c.fudge), _constant(c.default_F), tuple(c.hkl_min),
                  c.hkl_count, grid_shape, f.nopolar, self.kahn_zero, _constant(f.dmin), f.steps, self.weighted,
                  chunk, sources, tuple(orientations), str(dtype), torch.__version__, _cpu_fingerprint())
        digest = hashlib.sha256(_source_digest().encode())
        digest.update(repr(consts).encode())
        return digest.hexdigest()[:32]

    def forward(self, slow, fast, fdet, sdet, odet, pix0, distance, beam, close_distance, polar_axis, pixel_size,
                thickstep, mu, incident, wavelengths, weights, rot, grid, recip, fluence, kahn, water_background):
        geo = dict(zip(GEO_KEYS, (fdet, sdet, odet, pix0, distance, beam, close_distance, polar_axis)))
        det = dataclasses.replace(self.detector, pixel_size=pixel_size, thickstep=thickstep, mu=mu)
        crystal = dataclasses.replace(self.crystal, Fhkl=grid if self.has_grid else None, recip=recip)
        flags = dataclasses.replace(self.flags, fluence=fluence, water_background=water_background,
                                    kahn=0.0 if self.kahn_zero else kahn)
        value, small = plain_pixels(slow, fast, geo, det, incident, wavelengths, weights if self.weighted else None,
                                    rot, crystal, flags)
        # the unit diffracted vectors are an output only so that the compiler stores them once per
        # sub-pixel: otherwise it recomputes the detector geometry inside the loop over every term
        return value, small["omega_pixel"], small["diffracted"]


def kernel_inputs(slow, fast, geo, detector, incident, wavelengths, weight_factor, rot, crystal, flags):
    """The tensors PixelKernel.forward takes, in its order, converted to the run's dtype."""
    t = detector.t
    dtype = detector.dtype
    zero = torch.zeros((), dtype=dtype, device=slow.device)
    grid = zero.reshape(1)
    if crystal.Fhkl is not None:
        grid = torch.nn.functional.pad(crystal.Fhkl.detach()[None], (1, 1, 1, 1, 1, 1),
                                       value=float(crystal.default_F))[0]
    recip = crystal.recip if crystal.recip is not None else torch.zeros(3, 3, dtype=dtype, device=slow.device)
    weights = weight_factor if weight_factor is not None else zero.reshape(1)
    values = [slow, fast] + [t(geo[k]) for k in GEO_KEYS]
    values += [t(detector.pixel_size), t(detector.thickstep), t(detector.mu), incident, wavelengths, t(weights), rot,
               t(grid), t(recip), t(flags.fluence), zero if _kahn_is_zero(flags.kahn) else t(flags.kahn),
               t(flags.water_background)]
    return [v.detach().contiguous() for v in values]


def _configure_inductor():
    import torch._inductor.config as inductor_config

    # compile in-process: a pool of compile workers would multiply peak memory
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    # the CPU's vector ISA is read from cpuinfo; skip the second-long build-and-load probes
    # (a failing build falls back to the eager path)
    if inductor_config.cpp.vec_isa_ok is None:
        inductor_config.cpp.vec_isa_ok = True
    # indices into the structure-factor grid are clamped in the engine: skip the per-lane check
    inductor_config.assert_indirect_indexing = False
    # recompute per-term intermediates (q, h, k, l) inside the one reduction loop instead of
    # writing them to memory between loops: they are cheap, memory traffic is not
    inductor_config.realize_reads_threshold = 16


def _build(path, module, inputs, dtype):
    import torch._inductor
    import torch._inductor.config as inductor_config

    _configure_inductor()
    # float32 runs may fuse multiply-adds (one rounding instead of two); float64 keeps the
    # engine's operation order exactly, as nanoBragg.c evaluates it
    inductor_config.cpp.enable_floating_point_contract_flag = "fast" if dtype == torch.float32 else "off"
    # the wrapper only calls the kernel once per chunk: optimizing it costs ~2 s of every build
    inductor_config.aot_inductor.compile_wrapper_opt_level = "O0"
    with warnings.catch_warnings():
        # the exporter's deprecation notices are about torch internals, not the user's run
        warnings.simplefilter("ignore")
        program = torch.export.export(module, tuple(inputs))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build.", suffix=".pt2", dir=folder)
    os.close(fd)
    # Inductor's sources, objects and libraries (~5 MB a kernel) go to a folder of this build's
    # own, removed below: the package holds all that is needed. (Its precompiled headers stay
    # in Inductor's global folder, shared by all builds.)
    scratch = tempfile.mkdtemp(prefix=".inductor.", dir=folder)
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = scratch
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch._inductor.aoti_compile_and_package(program, package_path=tmp)
        os.replace(tmp, path)  # atomic: concurrent runs never see half a package
    finally:
        if previous is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
        shutil.rmtree(scratch, ignore_errors=True)
        if os.path.exists(tmp):
            os.unlink(tmp)


def pixel_kernel(detector, crystal, flags, weight_factor, chunk, sources, rot, aot=None):
    """A compiled drop-in for engine.plain_pixels on chunks of `chunk` pixels.

    aot: compile ahead of time with AOTInductor (default on CPU) or else with torch.compile
    (default on other devices, where the kernels are generated for that device).

    Returns a function taking kernel_inputs(...) and returning (values, omega shares, unit
    diffracted vectors)."""
    module = PixelKernel(detector, crystal, flags, weight_factor is not None)
    grid_shape = None if crystal.Fhkl is None else tuple(crystal.Fhkl.shape)
    aot = str(detector.device) == "cpu" if aot is None else aot
    key = module.key(chunk, sources, rot.shape[:2], detector.dtype, grid_shape) + ("" if aot else "-jit")
    if key in _LOADED:
        return _LOADED[key]
    if not aot:
        _configure_inductor()
        LOG.info("compiling the kernel for %s with torch.compile at its first call (or loading it from "
                 "Inductor's cache)", detector.device)
        compiled = torch.compile(module, dynamic=False)
        run = lambda inputs: compiled(*inputs)
    else:
        path = os.path.join(cache_dir(), key + ".pt2")

        def build():
            LOG.info("building a compiled kernel for this configuration (once; it is kept in %s)", cache_dir())
            _build(path, module, _example_inputs(detector, crystal, flags, weight_factor, chunk, sources, rot),
                   detector.dtype)

        if not os.path.exists(path):
            with build_lock(path):
                if not os.path.exists(path):  # else another process (a Dask worker, a parallel run) built it
                    build()

        def run(inputs):
            # the package is looked up on every call, so release() can unload it whoever holds `run`
            loader = _PACKAGES.get(key)
            if loader is None:
                loader = _PACKAGES[key] = _load_package(path, build)
            return tuple(loader.run(inputs))
    _LOADED[key] = run
    return run


@contextlib.contextmanager
def build_lock(path):
    """One build of a kernel at a time among processes sharing the cache: the others wait for it
    and then load it (the lock goes with its holder, even a killed one)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_package(path, build):
    """The package's loader; a package that cannot be loaded (damaged on disk) is built again, once."""
    try:
        return torch._C._aoti.AOTIModelPackageLoader(path, "model", False, 1, -1)
    except Exception as exc:  # the loader reports a damaged archive or library in several ways
        LOG.info("the kernel package %s could not be loaded (%s); replacing it", path, type(exc).__name__)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        build()
        return torch._C._aoti.AOTIModelPackageLoader(path, "model", False, 1, -1)


def _example_inputs(detector, crystal, flags, weight_factor, chunk, sources, rot):
    index = torch.zeros(chunk, dtype=torch.long)
    geo = {k: torch.zeros(3, dtype=detector.dtype) for k in GEO_KEYS}
    geo["distance"] = geo["close_distance"] = torch.ones((), dtype=detector.dtype)
    incident = torch.ones(sources, 3, dtype=detector.dtype)
    wavelengths = torch.ones(sources, dtype=detector.dtype)
    return kernel_inputs(index, index, geo, detector, incident, wavelengths, weight_factor, rot.detach(), crystal,
                         flags)
