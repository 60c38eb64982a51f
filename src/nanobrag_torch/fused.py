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
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import torch

from . import engine, physics
from .engine import TABLE_ROWS, factor_pixels, plain_pixels, term_table
from .geometry import vectors as vectors_module
from .models import detector as detector_module

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


def _integer_counts(crystal):
    """Whether the sincg counts are whole numbers (one kernel family) or not (another)."""
    return all(_constant(n) == int(_constant(n)) for n in (crystal.Na, crystal.Nb, crystal.Nc))


class PixelKernel(torch.nn.Module):
    """plain_pixels with what shapes the code baked in and every value and count an input.

    Counts arrive as tensor sizes (pixels, sources, phi steps, mosaic domains, sub-pixels per
    axis, layers, structure-factor grid) or as 0-d tensors (cell counts, steps), so one kernel
    serves them all; only the dtype, the crystal shape and which optional factors apply select
    another."""

    def __init__(self, detector, crystal, flags, weighted, one_term=False):
        super().__init__()
        # one term per pixel (one layer, sub-pixel, source and orientation): those sizes are 1 in
        # the code, which then is one loop over pixels, vectorized over pixels (the general
        # kernel's vector loop runs over a pixel's terms: one lane in sixteen would be used)
        self.one_term = one_term
        self.thick_on = bool(detector.thicksteps) and _constant(detector.thickness) != 0.0
        self.detector = dataclasses.replace(detector, thickness=1.0 if self.thick_on else 0.0, _cache=None)
        self.has_grid = crystal.Fhkl is not None and crystal.hkl_count > 0
        self.integer = crystal.shape == "square" and _integer_counts(crystal)
        # the grid comes in with a border of default_F (see kernel_inputs): no inside test per term
        border = dict(hkl_bordered=True, hkl_count=1) if self.has_grid else dict(hkl_count=0)
        self.crystal = dataclasses.replace(crystal, mosaic_umats=None, real=None, recip=None, Fhkl=None, **border)
        self.flags = flags
        self.weighted = weighted
        self.kahn_zero = _kahn_is_zero(flags.kahn)
        self.per_source = per_source(flags)

    family = "pixels"

    def key(self, dtype):
        """Names the kernel family: everything that changes the generated code, nothing else."""
        d, c, f = self.detector, self.crystal, self.flags
        consts = (self.thick_on, d.curved, d.point_pixel, c.shape, self.integer, self.has_grid, f.nopolar,
                  self.kahn_zero, _constant(f.dmin), self.weighted, self.one_term, str(dtype), torch.__version__,
                  _cpu_fingerprint(), self.family)
        digest = hashlib.sha256(_source_digest().encode())
        digest.update(repr(consts).encode())
        return digest.hexdigest()[:32]

    def forward(self, slow, fast, fdet, sdet, odet, pix0, distance, beam, close_distance, polar_axis, pixel_size,
                thickstep, mu, incident, wavelengths, weights, rot, grid, recip, fluence, kahn, water_background,
                subpixels, layers, counts, steps, hkl_min, default_F, table):
        geo = dict(zip(GEO_KEYS, (fdet, sdet, odet, pix0, distance, beam, close_distance, polar_axis)))
        # sub-pixels per axis and layers are the sizes of two index tensors (symbolic when exported)
        det = dataclasses.replace(self.detector, pixel_size=pixel_size, thickstep=thickstep, mu=mu,
                                  oversample=subpixels.shape[0], thicksteps=layers.shape[0])
        crystal = self._crystal(grid, recip, counts, hkl_min, default_F)
        flags = dataclasses.replace(self.flags, fluence=fluence, water_background=water_background,
                                    kahn=0.0 if self.kahn_zero else kahn, steps=steps)
        value, small = plain_pixels(slow, fast, geo, det, incident, wavelengths, weights if self.weighted else None,
                                    rot, crystal, flags, None if self.per_source else table)
        if self.one_term:
            return value, small["omega_pixel"]
        # the unit diffracted vectors are an output only so that the compiler stores them once per
        # sub-pixel: otherwise it recomputes the detector geometry inside the loop over every term
        return value, small["omega_pixel"], small["diffracted"]

    def _crystal(self, grid, recip, counts, hkl_min, default_F):
        """The crystal with its run-time values (kernel inputs) written in."""
        crystal = dataclasses.replace(self.crystal, Fhkl=grid if self.has_grid else None, recip=recip,
                                      Na=counts[0], Nb=counts[1], Nc=counts[2], fudge=counts[3],
                                      hkl_min=(hkl_min[0], hkl_min[1], hkl_min[2]), default_F=default_F)
        crystal.runtime_counts = "integer" if self.integer else "real"
        return crystal

    def dynamic_shapes(self, inputs):
        return _dynamic_shapes(inputs, self.one_term)


class FactorKernel(PixelKernel):
    """engine.factor_pixels: the lattice sum over the term table and the final scale, over per-pixel
    factors computed once for a series (see factor_cache), so a frame evaluates only what its
    orientations change. Inputs: diffracted (n, T, S, 3), capture and omega (n, 1, 1), polarization
    (n,) (ignored under -nopolar), the term table and the crystal's values as in PixelKernel.

    The layers, sub-pixels and terms per pixel are baked in (a series keeps them): with a fixed
    count the compiler unrolls the few-term sums, ~4x quicker than over a symbolic count."""

    def __init__(self, detector, crystal, flags, weighted, sizes):
        """sizes: (layers, sub-pixels, terms) per pixel."""
        super().__init__(detector, crystal, flags, weighted)
        self.sizes = tuple(int(x) for x in sizes)
        self.family = ("factors",) + self.sizes

    def forward(self, diffracted, capture, polar, omega, table, grid, recip, counts, hkl_min, default_F, fluence,
                water_background, steps):
        crystal = self._crystal(grid, recip, counts, hkl_min, default_F)
        flags = dataclasses.replace(self.flags, fluence=fluence, water_background=water_background, kahn=0.0,
                                    steps=steps)
        factors = dict(diffracted=diffracted, capture=capture, polar=None if self.flags.nopolar else polar,
                       omega=omega)
        return (factor_pixels(factors, table, crystal, flags),)

    def dynamic_shapes(self, inputs):
        dim = torch.export.Dim
        n = dim("pixels")
        shapes = [{0: n}, {0: n}, {0: n}, {0: n}, None]
        shapes += [None] * (len(inputs) - len(shapes))
        if inputs[5].dim() == 3:
            shapes[5] = {0: dim("grid_h"), 1: dim("grid_k"), 2: dim("grid_l")}
        return tuple(shapes)


def factor_inputs(factors):
    """The per-pixel tensors FactorKernel.forward takes first (frame_inputs gives the rest)."""
    diffracted = factors["diffracted"]
    polar = factors["polar"] if factors["polar"] is not None else diffracted.new_zeros(diffracted.shape[0])
    return [v.detach().contiguous() for v in (diffracted, factors["capture"], polar, factors["omega"])]


def frame_inputs(table, crystal, flags):
    """The tensors FactorKernel.forward takes after the per-pixel factors: what a frame changes."""
    t = lambda x: torch.as_tensor(x, dtype=table.dtype, device=table.device)
    values = [table] + _crystal_inputs(crystal, table.dtype, table.device, t)
    values += [t(flags.fluence), t(flags.water_background), t(float(flags.steps))]
    return [v.detach().contiguous() for v in values]


def _crystal_inputs(crystal, dtype, device, t):
    """[grid, recip, counts, hkl_min, default_F] of a kernel's inputs (the grid framed, see bordered)."""
    grid = torch.zeros(1, dtype=dtype, device=device)
    hkl_min = [0.0, 0.0, 0.0]
    if crystal.Fhkl is not None and crystal.hkl_count > 0:
        framed = bordered(crystal)
        grid, hkl_min = framed.Fhkl, [float(m) for m in framed.hkl_min]
    recip = crystal.recip if crystal.recip is not None else torch.zeros(3, 3, dtype=dtype, device=device)
    return [t(grid), t(recip), t(_counts(crystal)), t(hkl_min), t(_constant(crystal.default_F))]


def per_source(flags):
    """A dmin cut needs per-source sums; otherwise sources and orientations are one term table."""
    return _constant(flags.dmin) > 0


def _counts(crystal):
    """Na, Nb, Nc, fudge for the kernel; a square crystal's counts of 1 or less become 1, which
    gives the factor 1 that nanoBragg's skipped axes have."""
    values = [_constant(n) for n in (crystal.Na, crystal.Nb, crystal.Nc)]
    if crystal.shape == "square":
        values = [max(n, 1.0) for n in values]
    return values + [_constant(crystal.fudge)]


def bordered(crystal):
    """`crystal` with its structure-factor grid framed by one layer of default_F on every side, as
    the compiled kernel looks it up: each lookup is then a clamp and a gather, with no inside test."""
    grid = torch.nn.functional.pad(crystal.Fhkl.detach()[None], (1, 1, 1, 1, 1, 1), value=float(crystal.default_F))[0]
    return dataclasses.replace(crystal, Fhkl=grid, hkl_bordered=True, hkl_min=tuple(m - 1 for m in crystal.hkl_min))


def kernel_inputs(slow, fast, geo, detector, incident, wavelengths, weight_factor, rot, crystal, flags):
    """The tensors PixelKernel.forward takes, in its order, converted to the run's dtype."""
    t = detector.t
    dtype = detector.dtype
    device = slow.device
    zero = torch.zeros((), dtype=dtype, device=device)
    grid, recip, counts, hkl_min, default_f = _crystal_inputs(crystal, dtype, device, t)
    weights = weight_factor if weight_factor is not None else zero.reshape(1)
    table = zero.reshape(1, 1).expand(TABLE_ROWS, 1)
    if not per_source(flags):
        # the term table carries sources, orientations and weights; polarization needs the first source
        table = term_table(incident, wavelengths, rot.reshape(-1, 3, 3), weight_factor)
        incident, wavelengths, weights, rot = incident[:1], wavelengths[:1], zero.reshape(1), rot[:1, :1]
    values = [slow, fast] + [t(geo[k]) for k in GEO_KEYS]
    values += [t(detector.pixel_size), t(detector.thickstep), t(detector.mu), incident, wavelengths, t(weights), rot,
               grid, recip, t(flags.fluence), zero if _kahn_is_zero(flags.kahn) else t(flags.kahn),
               t(flags.water_background), torch.zeros(detector.oversample, dtype=dtype, device=device),
               torch.zeros(detector.thicksteps, dtype=dtype, device=device), counts, t(float(flags.steps)),
               hkl_min, default_f, table]
    return [v.detach().contiguous() for v in values]


def _inductor_settings(dtype=None):
    """The Inductor settings of our kernel builds, applied only while one is built (or compiled
    at its first call): a library must not change the host program's compiler for its own models."""
    import torch._inductor.config as inductor_config

    settings = {
        # indices into the structure-factor grid are clamped in the engine: skip the per-lane check
        "assert_indirect_indexing": False,
        # recompute per-term intermediates (q, h, k, l) inside the one reduction loop instead of
        # writing them to memory between loops: they are cheap, memory traffic is not
        "realize_reads_threshold": 16,
        # compile in-process: a pool of compile workers would multiply peak memory
        "compile_threads": 1,
        # parallel loops that take the thread count at run time: otherwise a build in a process
        # limited to one thread (OMP_NUM_THREADS=1, -nthreads 1) caches a serial kernel for every run
        "cpp.dynamic_threads": True,
        "cpp.threads": max(2, os.cpu_count() or 1),
    }
    # the CPU's vector ISA is read from cpuinfo; skip the second-long build-and-load probes
    # (a failing build falls back to the eager path)
    if inductor_config.cpp.vec_isa_ok is None:
        settings["cpp.vec_isa_ok"] = True
    if dtype is not None:
        # float32 runs may fuse multiply-adds (one rounding instead of two); float64 keeps the
        # engine's operation order exactly, as nanoBragg.c evaluates it
        settings["cpp.enable_floating_point_contract_flag"] = "fast" if dtype == torch.float32 else "off"
        # the wrapper only calls the kernel once per chunk: optimizing it costs ~2 s of every build
        settings["aot_inductor.compile_wrapper_opt_level"] = "O0"
    return inductor_config.patch(settings)


def _dynamic_shapes(inputs, one_term=False):
    """Every count-like size of the kernel's inputs as a symbolic dimension (see PixelKernel); a
    one-term kernel keeps its term counts 1."""
    dim = torch.export.Dim
    n = dim("pixels")
    shapes = [None] * len(inputs)
    shapes[0] = shapes[1] = {0: n}
    if inputs[17].dim() == 3:
        shapes[17] = {0: dim("grid_h"), 1: dim("grid_k"), 2: dim("grid_l")}
    if one_term:
        return tuple(shapes)
    if inputs[13].shape[0] > 1:  # per-source sums: sources and orientations come separately
        sources = dim("sources")
        shapes[13] = shapes[14] = {0: sources}  # incident, wavelengths
        if inputs[15].numel() > 1:
            shapes[15] = {0: sources}  # weights
        shapes[16] = {0: dim("phisteps"), 1: dim("domains")}
    else:
        shapes[28] = {1: dim("terms")}
    shapes[22] = {0: dim("subpixels")}
    shapes[23] = {0: dim("layers")}
    return tuple(shapes)


def cpu_seconds():
    """CPU time of this process and its finished children (the C++ compiler runs as one)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _build(path, module, inputs, dtype):
    import torch._inductor

    start = cpu_seconds()
    with warnings.catch_warnings():
        # the exporter's deprecation notices are about torch internals, not the user's run
        warnings.simplefilter("ignore")
        shapes = module.dynamic_shapes(inputs)
        program = torch.export.export(module, tuple(inputs), dynamic_shapes=shapes)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    key = os.path.basename(path)[:-4]
    fd, tmp = tempfile.mkstemp(prefix=key + ".build.", suffix=".pt2", dir=folder)
    os.close(fd)
    # Inductor's sources, objects and libraries (~5 MB a kernel) go to a folder of this build's
    # own, removed below: the package holds all that is needed. (Its precompiled headers stay
    # in Inductor's global folder, shared by all builds.)
    scratch = tempfile.mkdtemp(prefix=key + ".inductor.", dir=folder)
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = scratch
    try:
        with warnings.catch_warnings(), _inductor_settings(dtype):
            warnings.simplefilter("ignore")
            torch._inductor.aoti_compile_and_package(program, package_path=tmp)
        os.replace(tmp, path)  # atomic: concurrent runs never see half a package
        _record_build_time(folder, cpu_seconds() - start, key)
    finally:
        if previous is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
        shutil.rmtree(scratch, ignore_errors=True)
        if os.path.exists(tmp):
            os.unlink(tmp)


class NoCompiler(RuntimeError):
    """No C++ compiler to build a kernel with (the eager engine renders instead)."""


def _default_compiler():
    """Inductor's default compiler ($CXX, else g++), when Inductor is not loaded yet and would pick
    that one: importing Inductor (and dynamo with it) to ask takes seconds, more than many whole
    eager renders that only start a background build."""
    if "torch._inductor.config" in sys.modules or os.name != "posix" or os.environ.get("TORCH_INDUCTOR_INSTALL_GXX"):
        return None
    return os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")


def _check_compiler():
    if _SOURCE.get("compiler"):
        return  # found earlier in this process
    default = _default_compiler()
    if default is not None:
        try:  # what Inductor's own search does for a named compiler
            subprocess.check_output([default, "--version"], stderr=subprocess.DEVNULL)
            _SOURCE["compiler"] = default
            return
        except (subprocess.SubprocessError, OSError) as exc:
            raise NoCompiler(f"no C++ compiler found ({default}; set CXX to one to compile kernels); "
                             "rendering with the eager engine") from exc
    from torch._inductor import cpp_builder

    try:
        _SOURCE["compiler"] = cpp_builder.get_cpp_compiler()
    except Exception as exc:  # InvalidCxxCompiler, or a compiler that does not run
        import torch._inductor.config as inductor_config

        names = [c for c in inductor_config.cpp.cxx if c]
        raise NoCompiler(f"no C++ compiler found ({', '.join(names)}; set CXX to one to compile kernels); "
                         "rendering with the eager engine") from exc


def _lock(path, wait):
    """An exclusive lock on the kernel `path` (its '.lock' file), or None if another process holds it
    and wait is False. The operating system drops the lock of a process that dies, so a crashed
    builder never blocks anyone."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): builds are not shared
        return -1
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path[:-4] + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _unlock(fd):
    if fd is not None and fd >= 0:
        os.close(fd)


def being_built(path):
    """Whether another process is building the kernel `path` right now."""
    fd = _lock(path, wait=False)
    _unlock(fd)
    return fd is None


def _build_locked(path, build, wait=True, held=None):
    """Build `path` unless it exists, holding its lock: concurrent processes build it once (the
    others wait, then load it). Returns False, building nothing, if busy and wait is False.
    held: the lock's descriptor when the caller holds it already."""
    fd = _lock(path, wait) if held is None else held
    if fd is None:
        return False
    try:
        if not os.path.exists(path):
            # a killed builder's partial files (only the lock holder builds this kernel)
            folder, key = os.path.dirname(path), os.path.basename(path)[:-4]
            for name in os.listdir(folder):
                if name.startswith((key + ".build.", key + ".inductor.")):
                    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
                    if os.path.exists(os.path.join(folder, name)):
                        os.unlink(os.path.join(folder, name))
            build()
    finally:
        _unlock(fd)
    return True


def _record_build_time(folder, seconds, key):
    """One line per build in the cache's builds.log: what was built and its CPU seconds (a build runs
    on one core, so on an idle machine that is also its wall time)."""
    try:
        with open(os.path.join(folder, "builds.log"), "a") as handle:
            handle.write(f"{key} {seconds:.1f}\n")
    except OSError:
        pass


def expected_build_seconds():
    """CPU seconds of the last kernel build here (a guess before the first one)."""
    try:
        with open(os.path.join(cache_dir(), "builds.log")) as handle:
            return float(handle.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return 40.0


class Kernel:
    """One kernel family for one configuration: find, build (here or in the background) and run."""

    def __init__(self, detector, crystal, flags, weight_factor, aot=None, one_term=False, factors=None):
        """one_term: the run has one term per pixel (see PixelKernel); factors: (layers, sub-pixels,
        terms) per pixel for the FactorKernel family."""
        if factors:
            self.module = FactorKernel(detector, crystal, flags, weight_factor is not None, factors)
        else:
            self.module = PixelKernel(detector, crystal, flags, weight_factor is not None, one_term)
        self.aot = str(detector.device) == "cpu" if aot is None else aot
        self.key = self.module.key(detector.dtype) + ("" if self.aot else "-jit")
        self.path = os.path.join(cache_dir(), self.key + ".pt2")
        self.dtype = detector.dtype
        if factors:
            self.example = lambda: _factor_example_inputs(detector, crystal, flags, self.module.sizes)
        else:
            self.example = lambda: _example_inputs(detector, crystal, flags, weight_factor, one_term)

    def ready(self):
        return self.key in _LOADED or not self.aot or os.path.exists(self.path)

    def busy(self):
        return self.aot and being_built(self.path)

    # whether a render beside this kernel's build (another process's) shares the CPU with it
    shares_cpu = False

    def _build(self):
        LOG.info("building a compiled kernel for this configuration (once; it is kept in %s)", cache_dir())
        _build(self.path, self.module, self.example(), self.dtype)

    def build_in_background(self, after_render=False):
        """Start a detached, low-priority process that builds this kernel for later runs.

        after_render: it takes the kernel's lock at once (other runs see the build under way) but
        starts building only once this process calls start_deferred_builds() or ends: a build
        beside the render that waits for it would take one of its cores."""
        _check_compiler()
        os.makedirs(cache_dir(), exist_ok=True)
        fd, spec = tempfile.mkstemp(prefix=self.key + ".build.", suffix=".spec", dir=cache_dir())
        os.close(fd)
        torch.save(dict(module=self.module, inputs=self.example(), dtype=self.dtype, path=self.path), spec)
        builder = subprocess.Popen([sys.executable, "-c", _BUILDER, spec, self.path[:-4] + ".lock"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        _await_lock(builder)
        if after_render:
            _DEFERRED.append(builder)
        else:
            start_deferred_builds([builder])
        return builder

    def load(self):
        """The kernel function, building it here first if needed (or waiting for another builder)."""
        if self.key in _LOADED:
            return _LOADED[self.key]
        if not self.aot:
            LOG.info("compiling the kernel for this device with torch.compile at its first call (or loading "
                     "it from Inductor's cache)")
            compiled = torch.compile(self.module, dynamic=True)
            dtype = self.dtype

            def run(inputs):
                with _inductor_settings(dtype):  # the compilation happens at the first call
                    return compiled(*inputs)
        else:
            if not os.path.exists(self.path):
                _check_compiler()
                _build_locked(self.path, self._build)
            key, path, build = self.key, self.path, lambda: _build_locked(path, self._build)

            def run(inputs):
                # the package is looked up on every call, so release() can unload it whoever holds `run`
                loader = _PACKAGES.get(key)
                if loader is None:
                    loader = _PACKAGES[key] = _load_package(path, build)
                return tuple(loader(*inputs))
        _LOADED[self.key] = run
        return run


def background_builds_allowed():
    return os.environ.get("NANOBRAGG_BACKGROUND_BUILDS", "1").lower() not in ("0", "off", "no", "false")


def kernel_for_run(kernel, work, eager_seconds_per_term):
    """The kernel function for a run of `work` pixel x term evaluations, or None to render this run
    with the eager engine: a first run never waits for a build longer than rendering eagerly would
    take. If the eager render (timed on a few pixels) is quicker than a build, the kernel is built in
    a background process for later runs instead (or is already being built by another process).

    eager_seconds_per_term: CPU seconds per evaluation on one thread divided by the threads the
    eager engine uses (its wall time per evaluation on an idle machine); both sides are CPU-based,
    so another job's load on the machine does not tip the choice."""
    if kernel.ready():
        return kernel.load()
    if kernel.aot:
        _check_compiler()
    if not background_builds_allowed():
        return None
    eager_s = eager_seconds_per_term() * work
    if eager_s > expected_build_seconds():
        return kernel.load()  # builds now, or waits for the process already building it
    if kernel.busy():
        LOG.info("another process is building the compiled kernel for this configuration; rendering with the "
                 "eager engine meanwhile (about %.0f s)", eager_s)
        kernel.shares_cpu = True
    else:
        kernel.build_in_background(after_render=True)
        LOG.info("rendering with the eager engine (about %.0f s); then a compiled kernel for this configuration "
                 "is built in the background for later runs (kept in %s)", eager_s, cache_dir())
    return None


def family_for_run(detector, crystal, flags, weight_factor, one_term):
    """The Kernel of a run: with one term per pixel the one-term kernel, unless only the general
    kernel of the same configuration is built yet; that one serves meanwhile (one vector lane in
    sixteen, still far quicker than the eager engine) while the one-term kernel is built in the
    background for later runs."""
    kernel = Kernel(detector, crystal, flags, weight_factor, one_term=one_term)
    if not one_term or kernel.ready():
        return kernel
    general = Kernel(detector, crystal, flags, weight_factor)
    if not general.ready():
        return kernel
    if background_builds_allowed() and not kernel.busy():
        try:
            kernel.build_in_background(after_render=True)
        except NoCompiler:
            return general
        LOG.info("rendering with the general compiled kernel; then one for a single term per pixel is built "
                 "in the background for later runs (kept in %s)", cache_dir())
    return general


# The background builder: it takes the kernel's lock (or leaves if another process holds it), says
# so on stdout, waits for a byte or the end of stdin from its starter (render done, or the
# process ended), then
# builds. All before importing torch, so that it costs the render nothing while it waits.
_BUILDER = """
import os, sys
try:
    import fcntl
except ImportError:
    fcntl = None
fd = None
if fcntl is not None:
    fd = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.unlink(sys.argv[1])
        sys.exit(0)
try:
    os.write(1, b"locked")  # one write: its starter stops reading at the first byte
except OSError:
    pass
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
sys.stdin.buffer.read(1)
from nanobrag_torch.fused import build_from_spec
build_from_spec(sys.argv[1], fd)
"""
_DEFERRED = []  # builders waiting for this process's render to end (see build_in_background)


def _await_lock(builder, seconds=30.0):
    """Wait until `builder` holds the kernel's lock (or has left): from then on other runs see the
    build under way, and a benchmark waiting on the lock waits for the build."""
    import select

    try:
        select.select([builder.stdout], [], [], seconds)
    except (OSError, ValueError):  # no select on pipes (Windows): no lock to wait for either
        pass
    builder.stdout.close()


def start_deferred_builds(builders=_DEFERRED):
    """Let the background builds that wait for this process's render start (see build_in_background)."""
    while builders:
        builder = builders.pop()
        try:  # a byte, not only the end of the pipe: a forked child may hold a copy of its end
            builder.stdin.write(b"go")
            builder.stdin.close()
        except OSError:  # the builder has left (another process held the lock)
            pass


def build_from_spec(spec, held=None):
    """The background builder's entry point (see Kernel.build_in_background); held: the lock's
    descriptor, taken by the builder before it waited."""
    try:
        os.nice(10)
    except OSError:
        pass
    saved = torch.load(spec, weights_only=False)
    os.unlink(spec)
    _build_locked(saved["path"], lambda: _build(saved["path"], saved["module"], saved["inputs"], saved["dtype"]),
                  wait=False, held=held)


def pixel_kernel(detector, crystal, flags, weight_factor, aot=None, one_term=False):
    """A compiled drop-in for engine.plain_pixels on chunks of any number of pixels, built if needed.

    aot: compile ahead of time with AOTInductor (default on CPU) or else with torch.compile
    (default on other devices, where the kernels are generated for that device).

    Returns a function taking kernel_inputs(...) and returning (values, omega shares, unit
    diffracted vectors)."""
    return Kernel(detector, crystal, flags, weight_factor, aot, one_term).load()


@contextlib.contextmanager
def build_lock(path):
    """One build of the kernel `path` at a time among processes sharing the cache (blocks until the
    holder is done; the lock goes with its holder, even a killed one)."""
    fd = _lock(path, wait=True)
    try:
        yield
    finally:
        _unlock(fd)


def _open_package(path):
    """A callable running the package's kernel on positional tensors.

    torch's public loader (torch._inductor.aoti_load_package) imports dynamo and probes the
    compiler's vector ISA in subprocesses: ~2.5 s of every run, ten times a plain 1024^2 render.
    Our kernels take and return flat tuples of tensors, so the C++ loader that it wraps is called
    directly; where a torch build lacks it, the public loader serves."""
    loader_class = getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)
    if loader_class is None or not hasattr(loader_class, "boxed_run"):
        from torch._inductor import aoti_load_package

        return aoti_load_package(path)
    loader = loader_class(path, "model", False, 1, -1)

    def run(*inputs):
        return loader.boxed_run([x for x in inputs if isinstance(x, torch.Tensor)])

    run.loader = loader  # keeps the extracted package alive as long as the function
    return run


def _load_package(path, build):
    """The package's loader; a package that cannot be loaded (damaged on disk) is built again, once."""
    try:
        return _open_package(path)
    except Exception as exc:  # the loader reports a damaged archive or library in several ways
        LOG.info("the kernel package %s could not be loaded (%s); replacing it", path, type(exc).__name__)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        _check_compiler()
        build()
        return _open_package(path)


def _example_inputs(detector, crystal, flags, weight_factor, one_term=False):
    """Inputs with every symbolic size at least 2 (an exporter specializes sizes 0 and 1), and
    every term count 1 for a one-term kernel."""
    # distinct sizes, so that no two symbolic dimensions are taken for one
    index = torch.zeros(11, dtype=torch.long)
    geo = {k: torch.zeros(3, dtype=detector.dtype) for k in GEO_KEYS}
    geo["distance"] = geo["close_distance"] = torch.ones((), dtype=detector.dtype)
    sources, phisteps, domains, subpixels, layers = (1, 1, 1, 1, 1) if one_term else (4, 2, 5, 6, 7)
    incident = torch.ones(sources, 3, dtype=detector.dtype)
    wavelengths = torch.ones(sources, dtype=detector.dtype)
    weights = None if weight_factor is None else torch.ones(sources, dtype=detector.dtype)
    rot = torch.zeros(phisteps, domains, 3, 3, dtype=detector.dtype)
    example = dataclasses.replace(detector, oversample=subpixels, thicksteps=layers, _cache=None)
    if crystal.Fhkl is not None and crystal.hkl_count > 0:
        crystal = dataclasses.replace(crystal, Fhkl=torch.zeros(6, 7, 8, dtype=detector.dtype))
    return kernel_inputs(index, index, geo, example, incident, wavelengths, weights, rot, crystal, flags)


def _factor_example_inputs(detector, crystal, flags, sizes):
    """FactorKernel's inputs: its baked sizes, and symbolic ones distinct and at least 2 (see
    _example_inputs)."""
    dtype = detector.dtype
    layers, subpixels, terms = sizes
    n = 11 if 11 not in sizes else 13
    factors = dict(diffracted=torch.ones(n, layers, subpixels, 3, dtype=dtype),
                   capture=torch.ones(n, 1, 1, dtype=dtype), polar=torch.ones(n, dtype=dtype),
                   omega=torch.ones(n, 1, 1, dtype=dtype))
    if crystal.Fhkl is not None and crystal.hkl_count > 0:  # framed: 16, 17, 18
        crystal = dataclasses.replace(crystal, Fhkl=torch.zeros(14, 15, 16, dtype=dtype))
    return factor_inputs(factors) + frame_inputs(torch.ones(TABLE_ROWS, terms, dtype=dtype), crystal, flags)
