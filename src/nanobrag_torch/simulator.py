"""Simulator: runs the engine over the detector in bounded pixel chunks.

Holds the physical models (Detector, Crystal, beam/sources) as tensors and renders either the
whole detector, a region of interest, or an explicit list of pixels. Differentiable end to end.
"""
import dataclasses
import logging
import math
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .compat import check_mode
from .engine import Flags, InterpolationState, _omega_per_pixel, render
from .engine import render_pixels as engine_render_pixels
from .models.sample import Sample
from .scoped import scoped

# budget of (pixel x term) elements per chunk: bounds peak memory whatever the detector size
DEFAULT_TERM_BUDGET = 1 << 20
# the compiled kernel keeps per-term values in registers, so its chunks can be larger (fewer calls)
FUSED_BUDGET_FACTOR = 4
MAX_CHUNK_PIXELS = 1 << 18
# from this many (pixel x term) evaluations a run looks for a compiled kernel (loading one costs
# more than it saves below); building one first pays off from COMPILE_MIN_WORK (datasets use it)
KERNEL_MIN_WORK = 1 << 20
COMPILE_MIN_WORK = 5e7
# pixel x term evaluations rendered eagerly to estimate a whole eager render's time
PROBE_WORK = 1 << 16
_COMPILED = {}
# the models whose tensors state_dict() holds (as "crystal.real", "beam.wavelengths" ...)
MODEL_NAMES = ("detector", "crystal", "beam")
LOG = logging.getLogger(__package__)


def recommended_oversample(xmax, lambda0, distance, pixel_size):
    """nanoBragg's sub-pixel count: ceil(3 x crystal size / reciprocal pixel size), at least 1.

    xmax: largest crystal dimension (m); lambda0: central wavelength (m); distance, pixel_size (m).
    The command line uses it when -oversample is not given, the API when oversample is None."""
    recip_pixel = lambda0 * distance / pixel_size
    ratio = 3.0 * xmax / recip_pixel if recip_pixel != 0 else math.inf
    recommended = int(math.ceil(ratio)) if ratio < 2**31 else 2**31 - 1  # C keeps it in an int
    return max(recommended, 1)


def compile_available():
    if "ok" not in _COMPILED:
        flag = os.environ.get("NANOBRAGG_COMPILE", "auto").lower()
        _COMPILED["ok"] = flag not in ("0", "off", "no", "false") and hasattr(torch, "compile")
    return _COMPILED["ok"]


def _joined(pieces):
    """torch.cat, without copying a single piece (a plain image's chunk is one piece)."""
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def _pad(index, size):
    if index.numel() == size:
        return index
    return torch.cat((index, index[-1:].expand(size - index.numel())))


def _after_render():
    """Background kernel builds that waited for this render may start now (see
    fused.Kernel.build_in_background: beside the render they would take one of its cores)."""
    fused = sys.modules.get(__package__ + ".fused")
    if fused is not None:
        fused.start_deferred_builds()


def _torch_threads(count):
    """torch's intra-op thread count set to `count` (None: unchanged) for a block, then restored."""
    return scoped(torch.get_num_threads, torch.set_num_threads, count)


@dataclass(frozen=True)
class RenderInputs:
    """Everything one render reads, made once per render from the models (and the differentiable
    parameters written into them): the functional `render_chunk` takes this and pixel indices.

    geo: the detector's rotated basis, pix0 and derived distances (metres), plus polar_axis;
    incident: (sources, 3) unit vectors along the beam; wavelengths: (sources,) m; weight_factor:
    (sources,) or None; rot: (phi steps, domains, 3, 3) real vectors (m) of every orientation;
    first_rot: the true phi = 0 vectors while nanoBragg's phi = 0 reuse quirk applies, else None."""

    detector: object
    crystal: object
    flags: Flags
    geo: dict
    incident: torch.Tensor
    wavelengths: torch.Tensor
    weight_factor: object
    rot: torch.Tensor
    first_rot: object


def render_chunk(inputs, slow, fast, state, diagnostics=False):
    """Photons for the pixels (slow[i], fast[i]) on the eager engine: (values (n,), extras).

    extras is the engine's diagnostics dict with diagnostics=True, else its small per-pixel
    quantities (omega_pixel, the pixels' share of the solid-angle sum)."""
    i = inputs
    if diagnostics:
        pos = i.detector.positions(i.geo, slow, fast)
        return render(pos, i.geo, i.detector, i.incident, i.wavelengths, i.weight_factor, i.rot, i.crystal, i.flags,
                      state, diagnostics=True)
    return engine_render_pixels(slow, fast, i.geo, i.detector, i.incident, i.wavelengths, i.weight_factor, i.rot,
                                i.crystal, i.flags, state)


def _conversion(args, kwargs):
    """(device, dtype) named by the arguments of Module.to (either may be None)."""
    device = dtype = None
    for x in (*args, *kwargs.values()):
        if isinstance(x, torch.dtype):
            dtype = x
        elif isinstance(x, (str, torch.device)):
            device = torch.device(x)
        elif torch.is_tensor(x):
            device, dtype = x.device, x.dtype
    return device, dtype


class Simulation(torch.nn.Module):
    """A detector, a crystal and a beam, rendered in bounded pixel chunks (a torch.nn.Module).

    `run()` (or calling the module) gives the whole image (spixels, fpixels) in photons per pixel
    on the detector's device and dtype; `roi_image((y0, y1), (x0, x1))` a rectangle;
    `render_pixels(slow, fast)` a list of pixels. `flags` (oversampling rules, polarization,
    fluence, water background, the normalizing step count) are made from the models when not
    given. `nanobrag_torch.parameters(sim, name, ...)` registers the named quantities as
    parameters of this module (`sim.named_parameters()`, `state_dict()`, optimizers);
    `state_dict()` also holds every tensor of the models that defines the simulation (lattice
    vectors, structure factors, mosaic rotations, sources and wavelengths ...) as "model.field",
    and `load_state_dict` writes them back; the models' plain numbers and choices (pixel counts,
    shape, step counts) are its configuration, as layer sizes are for torch's own modules;
    `sim.to(device, dtype)` moves the models and the parameters. Differentiable end to end.

    roi: ((first row, last row), (first column, last column)) inclusive, (slow, fast) like the
    image (the command line's -roi xmin xmax ymin ymax is ((ymin, ymax), (xmin, xmax)));
    mask: (spixels, fpixels) bool, True = render; term_budget: pixel x term evaluations per chunk
    (bounds memory); use_compile: None = the compiled kernel for large runs without autograd,
    True/False force it; compat: "default" and "c" keep nanoBragg.c's numeric quirks, "fixed"
    renders without them."""

    def __init__(self, detector, crystal, beam, sample=None, flags=None, roi=None, mask=None,
                 term_budget=DEFAULT_TERM_BUDGET, use_compile=None, compat="default"):
        super().__init__()
        self.detector, self.beam, self.flags = detector, beam, flags
        self.sample = Sample() if sample is None else sample
        self.crystal = crystal
        self.roi, self.term_budget, self.use_compile = roi, term_budget, use_compile
        # a factor_cache.FactorCache: per-pixel factors kept across the frames of a series (datasets)
        self.factor_cache = None
        self.register_buffer("mask", mask)
        self.stats = {}
        # differentiable parameters (differentiable.Parameters) written into the models before each render
        self.parametrization = None
        # -compat mode: "default" and "c" keep nanoBragg.c's numeric quirks, "fixed" renders without them
        self.compat = compat
        check_mode(self.compat)
        if self.detector.oversample is None:
            self.detector.oversample = self._auto_oversample()
        if self.flags is None:
            steps = (self.beam.wavelengths.numel() * self.crystal.domains * self.crystal.phisteps
                     * self.detector.oversample ** 2)
            self.flags = Flags(nopolar=self.beam.nopolar, kahn=self.beam.kahn, fluence=self.beam.fluence,
                               water_background=self.sample.background(self.beam.fluence), steps=steps)
        self.crystal = self.crystal.to(self.detector.dtype, self.detector.device)
        # the model tensors a strict load_state_dict requires (parameters may write more, saved too)
        self._defining_keys = {key for key, _, _ in self._model_tensors()}

    def forward(self):
        """The whole image, as run()."""
        return self.run()

    def to(self, *args, **kwargs):
        """Move the models and the parameters to a device and/or dtype (as torch.nn.Module.to)."""
        device, dtype = _conversion(args, kwargs)
        super().to(*args, **kwargs)
        d = self.detector
        d.dtype = dtype or d.dtype
        d.device = device or d.device
        self.crystal = self.crystal.to(d.dtype, d.device)
        b = self.beam
        for name in ("source_dirs", "wavelengths", "weights"):
            value = getattr(b, name)
            if torch.is_tensor(value):
                setattr(b, name, value.to(dtype=d.dtype, device=d.device))
        self._fused_cache = None
        return self

    def _model_tensors(self):
        """(state_dict key, model, field) of every tensor the models hold now."""
        for model_name in MODEL_NAMES:
            model = getattr(self, model_name)
            for f in dataclasses.fields(model):
                if not f.name.startswith("_") and torch.is_tensor(getattr(model, f.name)):
                    yield f"{model_name}.{f.name}", model, f.name

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """The registered parameters and buffers, plus the models' tensors as "model.field"."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for key, model, name in self._model_tensors():
            value = getattr(model, name)
            destination[prefix + key] = value if keep_vars else value.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """Load the parameters and buffers, and write "model.field" tensors into the models (on
        the simulation's device; floating ones in its dtype)."""
        mine = set()
        for model_name in MODEL_NAMES:
            model = getattr(self, model_name)
            names = {f.name for f in dataclasses.fields(model) if not f.name.startswith("_")}
            for key in state_dict:
                head, _, name = key[len(prefix):].partition(".")
                if key.startswith(prefix) and head == model_name and name in names:
                    setattr(model, name, self._placed(state_dict[key]))
                    mine.add(key)
        if strict:
            missing_keys.extend(prefix + key for key in sorted(self._defining_keys) if prefix + key not in mine)
        rest = {k: v for k, v in state_dict.items() if k not in mine}
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self._fused_cache = None

    def _placed(self, value):
        d = self.detector
        value = value.detach().to(device=d.device)
        return value.to(d.dtype) if value.is_floating_point() else value.clone()

    def _auto_oversample(self):
        """The command line's automatic -oversample for these models (crystal size vs pixel)."""
        real = self.crystal.real.detach().to("cpu", torch.float64).tolist()
        lens = [math.sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]) for x in real]
        c = self.crystal
        xmax = max(lens[0] * float(c.Na), lens[1] * float(c.Nb), lens[2] * float(c.Nc))
        b = self.beam
        lambda0 = float(b.lambda0) if b.lambda0 is not None else float(b.wavelengths.detach().double().mean())
        distance = float(self.detector.geometry()["distance"].detach())
        return recommended_oversample(xmax, lambda0, distance, float(self.detector.pixel_size))

    def terms_per_pixel(self):
        d = self.detector
        return max(1, d.thicksteps * d.oversample ** 2 * self.beam.source_dirs.shape[0]
                   * self.crystal.phisteps * self.crystal.domains)

    def chunk_size(self, fused=False):
        budget = self.term_budget * (FUSED_BUDGET_FACTOR if fused else 1)
        # per-pixel arrays (positions, solid angles, indices) also bound a chunk with few terms
        return max(1, min(budget // self.terms_per_pixel(), MAX_CHUNK_PIXELS))

    def phi_zero_quirk_active(self):
        """nanoBragg.c only rotates the crystal when phi != 0, so a phi = 0 step reuses the previous
        step's (the last phi step's) orientation for every term but the run's first one."""
        return check_mode(self.compat) != "fixed" and self.crystal.starts_at_phi_zero()

    def new_state(self, inputs):
        """The run-long engine state (interpolation switch-off, phi = 0 quirk) at the start of a run."""
        return InterpolationState(self.crystal.interpolate, inputs.first_rot, c_rules=self.compat != "fixed")

    def inputs(self):
        """The frozen RenderInputs of the current models (parameters written in first)."""
        if self.parametrization is not None:
            self.parametrization.apply(self)
        geo = self.detector.geometry()
        t = self.detector.t
        geo["polar_axis"] = t(self.beam.polar_axis)
        wf = self.beam.weight_factor()
        rot = self.crystal.rotated_vectors()
        first = None
        if self.phi_zero_quirk_active():
            first, rot = rot[0], torch.cat((rot[-1:], rot[1:]))
        return RenderInputs(detector=self.detector, crystal=self.crystal, flags=self.flags, geo=geo,
                            incident=-t(self.beam.source_dirs), wavelengths=t(self.beam.wavelengths),
                            weight_factor=None if wf is None else t(wf), rot=rot, first_rot=first)

    def render_pixels(self, slow, fast, state=None, inputs=None, diagnostics=False):
        """Values for explicit pixels (1-D index tensors), rendered in bounded chunks.

        With diagnostics=True also returns the engine's per-chunk intermediate quantities."""
        inputs = inputs or self.inputs()
        state = state or self.new_state(inputs)
        try:
            values, diags, _ = self._render(slow, fast, state, inputs, diagnostics)
        finally:
            _after_render()
        return (values, diags) if diagnostics else values

    def _render(self, slow, fast, state, inputs, diagnostics, total=None):
        """total: pixels of the whole run this call is part of (default: these)."""
        geo, incident, wl, wf, rot = inputs.geo, inputs.incident, inputs.wavelengths, inputs.weight_factor, inputs.rot
        out, diags, omega_sum = [], [], 0.0
        # sized for the compiled kernel even while the phi = 0 first term is pending: only one
        # pixel goes through the eager path for it
        step = self.chunk_size(fused=not diagnostics and self._compile_ok(state, pending_ok=True))
        bounds = list(range(0, slow.numel(), step))
        if state.phi_first_pending and not diagnostics and slow.numel() > 1:
            # only the very first term needs the eager path; the rest can use the fused kernel
            bounds = [0, 1] + [b for b in range(1, slow.numel(), step)][1:]
        ends = bounds[1:] + [slow.numel()]
        omegas = []
        for start, end in zip(bounds, ends):
            s, f = slow[start:end], fast[start:end]
            if diagnostics:
                pos = self.detector.positions(geo, s, f)
                value, diag = render(pos, geo, self.detector, incident, wl, wf, rot, self.crystal, self.flags,
                                     state, diagnostics=True)
                diags.append(diag)
                omega = _omega_per_pixel(diag["omega"].detach(), self.flags)
            else:
                value = omega = None
                if self.factor_cache is not None and self.factor_cache.applies(self, state):
                    value, omega = self._render_factors(s, f, inputs)
                if value is None and self._compile_ok(state):
                    value, omega = self._render_fused(s, f, inputs, state, total or slow.numel())
                if value is None:
                    value, omega = self._render_eager(s, f, inputs, state)
            out.append(value)
            omegas.append(omega)
        if omegas:
            omega_sum = float(_joined(omegas).sum())
        values = _joined(out) if out else torch.zeros(0, dtype=self.detector.dtype, device=self.detector.device)
        return values, diags, omega_sum

    def _render_eager(self, slow, fast, inputs, state):
        """(values, omega shares) from the eager engine, in chunks of its own (smaller) size."""
        geo, incident, wl, wf, rot = inputs.geo, inputs.incident, inputs.wavelengths, inputs.weight_factor, inputs.rot
        step = self.chunk_size()

        def chunk(start):
            value, small = engine_render_pixels(slow[start:start + step], fast[start:start + step], geo,
                                                self.detector, incident, wl, wf, rot, self.crystal, self.flags,
                                                state)
            return value, small["omega_pixel"].detach()

        starts = range(0, slow.numel(), step)
        threads = torch.get_num_threads()
        # a kernel build running beside this render (another process's) takes a core
        threads = max(1, threads - 1) if getattr(self, "_build_running", False) else threads
        if len(starts) > 1 and threads > 1 and self._chunks_on_threads(state):
            # one chunk per thread, each on one torch thread: the engine's hundred small operations
            # per block would each end at a barrier of the OpenMP team, where a busy machine keeps
            # both threads waiting for the one it has descheduled (W2 cold: 51 s instead of 12).
            # The same chunks with the same operations: the same numbers
            with _torch_threads(1), ThreadPoolExecutor(min(threads, len(starts))) as pool:
                pieces = list(pool.map(chunk, starts))
        else:
            with _torch_threads(threads if threads != torch.get_num_threads() else None):
                pieces = [chunk(start) for start in starts]
        return torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])

    def _chunks_on_threads(self, state):
        """Whether eager chunks may render on threads of their own, in any order: no run-long state
        (interpolation switch-off, phi = 0 first term), nothing to differentiate, on the CPU."""
        return (not state.enabled and not state.phi_first_pending and not torch.is_grad_enabled()
                and torch.device(self.detector.device).type == "cpu"
                # torch's thread count is process-wide: renders on other threads (a Dask worker's)
                # keep it as it is, or concurrent ones would change it under one another
                and threading.current_thread() is threading.main_thread())

    def _render_factors(self, slow, fast, inputs):
        """(values, omega shares) from the factor cache's per-pixel factors, compiled when this run
        compiles and eagerly otherwise, or (None, None) when they exceed the cache's budget."""
        cache = self.factor_cache
        factors = cache.factors(self, inputs, slow, fast)
        if factors is None:
            return None, None
        value = None
        if self.use_compile is True and compile_available():
            value, _ = self._compiled(lambda: (cache.compiled(self, inputs, factors), None))
        if value is None:
            value = cache.eager(self, inputs, factors)
        return value, factors["omega_pixel"]

    def _render_fused(self, slow, fast, inputs, state, total):
        """(values, omega shares) from the compiled plain path, or (None, None) to render eagerly."""
        def call():
            run = self._fused(inputs, slow, fast, state, total)
            return (None, None) if run is None else run(slow, fast)[:2]

        return self._compiled(call)

    def _compiled(self, call):
        """call()'s (values, omega shares) from a compiled kernel, or (None, None) where no kernel can
        be built or loaded (the eager engine renders instead, for the rest of the session)."""
        from .fused import NoCompiler

        try:
            value, omega = call()
            if value is None:
                return None, None
        except NoCompiler as exc:
            _COMPILED["ok"] = False
            self.use_compile = False
            LOG.info("%s", exc)
            return None, None
        except Exception as exc:
            # no working compiler here: stay on the eager path for the rest of the session
            _COMPILED["ok"] = False
            self.use_compile = False
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            warnings.warn(f"compiled kernel unavailable ({type(exc).__name__}: {reason}); "
                          "rendering with the eager engine (slower; NANOBRAGG_COMPILE=0 skips the attempt)",
                          RuntimeWarning, stacklevel=2)
            return None, None
        self.stats["compiled_kernel"] = True
        return value, omega

    def _fused(self, inputs, slow, fast, state, total):
        """The compiled kernel for this run with its per-run inputs bound, (slow, fast) -> outputs, or
        None when this run renders eagerly (see fused.kernel_for_run)."""
        cached = getattr(self, "_fused_cache", None)
        if cached is not None and cached[0] is inputs:
            return cached[1]
        from .fused import family_for_run, kernel_for_run, kernel_inputs

        geo, incident, wl, wf, rot = inputs.geo, inputs.incident, inputs.wavelengths, inputs.weight_factor, inputs.rot
        kernel = family_for_run(self.detector, self.crystal, self.flags, wf, self.terms_per_pixel() == 1)
        if self.use_compile is True:
            run = kernel.load()
        else:
            run = kernel_for_run(kernel, total * self.terms_per_pixel(),
                                 lambda: self._eager_seconds_per_term(slow, fast, inputs, state))
            # None here: this run renders eagerly; another process's build may be running beside it
            self._build_running = run is None and kernel.shares_cpu
        if run is not None:
            index = torch.zeros(1, dtype=torch.long, device=self.detector.device)
            rest = kernel_inputs(index, index, geo, self.detector, incident, wl, wf, rot, self.crystal,
                                 self.flags)[2:]
            run = (lambda kernel_run: lambda slow, fast: kernel_run([slow, fast] + rest))(run)
        self._fused_cache = (inputs, run)
        return run

    def _eager_seconds_per_term(self, slow, fast, inputs, state):
        """The eager engine's time per pixel x term on an idle machine, measured on a few of these
        pixels: CPU seconds on one thread, over the threads of the run. A busy machine's wall clock
        would overstate it, and so would CPU seconds on several threads: there OpenMP's threads
        spin while they wait for one another (10-50x the work on a 2-core machine with 8 jobs)."""
        from .fused import cpu_seconds

        count = max(1, min(slow.numel(), PROBE_WORK // self.terms_per_pixel()))
        threads = torch.get_num_threads()
        cpu = math.inf
        with _torch_threads(1):
            # the best of a few: a first call of each operation (and its first use of fresh memory)
            # costs more than the probe itself (it doubled or tripled the estimate)
            for _ in range(3):
                start = cpu_seconds()
                self._render_eager(slow[:count], fast[:count], inputs, state)
                cpu = min(cpu, cpu_seconds() - start)
        return cpu / max(1, threads) / (count * self.terms_per_pixel())

    def _compile_ok(self, state, pending_ok=False):
        """Use the compiled plain path when it pays off and nothing needs autograd or per-term state.

        pending_ok: ignore the phi = 0 first term (only one pixel needs the eager path for it)."""
        f = self.flags
        # several panels render on the eager engine (the compiled kernel takes one panel's frame)
        if (self.use_compile is False or getattr(self.detector, "n_panels", 1) > 1 or state.enabled
                or (state.phi_first_pending and not pending_ok) or torch.is_grad_enabled()
                or f.oversample_thick or f.oversample_polar or f.oversample_omega):
            return False
        if self.use_compile is True:
            return True
        d = self.detector
        work = d.spixels * d.fpixels * self.terms_per_pixel()
        return work >= KERNEL_MIN_WORK and compile_available()

    def roi_image(self, slow, fast):
        """Image of a rectangle, in (slow, fast) order like the image tensor: slow = (first row,
        last row) and fast = (first column, last column), inclusive like -roi; shape
        (last row - first row + 1, last column - first column + 1)."""
        (y0, y1), (x0, x1) = slow, fast
        dev = self.detector.device
        rows = torch.arange(y0, y1 + 1, device=dev)
        cols = torch.arange(x0, x1 + 1, device=dev)
        slow = rows.repeat_interleave(cols.numel())
        fast = cols.repeat(rows.numel())
        return self.render_pixels(slow, fast).reshape(rows.numel(), cols.numel())

    def rendered_ranges(self):
        """(rows, columns): the slow and fast indices that run() renders (the ROI, clipped to the detector)."""
        d = self.detector
        (ymin, ymax), (xmin, xmax) = self.roi or ((0, d.spixels - 1), (0, d.fpixels - 1))
        rows = torch.arange(max(ymin, 0), min(ymax, d.spixels - 1) + 1, device=d.device)
        cols = torch.arange(max(xmin, 0), min(xmax, d.fpixels - 1) + 1, device=d.device)
        return rows, cols

    def run(self, progress=None):
        """Whole image (spixels, fpixels); pixels outside the ROI or masked stay 0."""
        try:
            return self._run(progress)
        finally:
            _after_render()

    def _run(self, progress):
        d = self.detector
        dev = d.device
        rows, cols = self.rendered_ranges()
        inputs = self.inputs()
        state = self.new_state(inputs)
        # whole rows, every pixel rendered: each chunk is one contiguous slice of the image
        whole_rows = self.mask is None and cols.numel() == d.fpixels
        full = whole_rows and rows.numel() == d.spixels
        first_row = int(rows[0]) if rows.numel() else 0
        image = (torch.empty if full else torch.zeros)(d.spixels * d.fpixels, dtype=d.dtype, device=dev)
        chunk = self.chunk_size(fused=self._compile_ok(state, pending_ok=True))
        rows_per_chunk = max(1, chunk // max(1, cols.numel()))
        omega_sum = 0.0
        pieces = []
        # compiled_kernel: whether the plain path ran compiled (not when it rendered eagerly this time)
        self.stats = dict(compiled_kernel=False)
        total = rows.numel() * cols.numel() if self.mask is None else int(self.mask.sum())
        # the rows are consecutive: a chunk's indices are the first chunk's, its rows shifted by r0
        first = rows[:rows_per_chunk]
        slow0, fast0 = first.repeat_interleave(cols.numel()), cols.repeat(first.numel())
        for r0 in range(0, rows.numel(), rows_per_chunk):
            r = rows[r0:r0 + rows_per_chunk]
            n = r.numel() * cols.numel()
            slow = slow0[:n] + r0 if r0 else slow0
            fast = fast0[:n]
            if self.mask is not None:
                keep = self.mask[slow, fast]
                slow, fast = slow[keep], fast[keep]
            values, _, chunk_omega = self._render(slow, fast, state, inputs, False, total)
            omega_sum += chunk_omega
            if values.requires_grad:
                pieces.append((slow * d.fpixels + fast, values))
            elif whole_rows:  # written in place: nothing to differentiate, and no second copy of the image
                start = (first_row + r0) * d.fpixels
                image[start:start + values.numel()].copy_(values)
            else:
                image.index_put_((slow * d.fpixels + fast,), values)
            if progress is not None:
                progress(min(r0 + rows_per_chunk, rows.numel()) / max(1, rows.numel()))
        if pieces:
            idx = torch.cat([p[0] for p in pieces])
            vals = torch.cat([p[1] for p in pieces])
            image = image.index_put((idx,), vals)
        self.stats.update(omega_sum=omega_sum, interpolation_warning=state.warning)
        return image.reshape(d.spixels, d.fpixels)
