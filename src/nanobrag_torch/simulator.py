"""Simulator: runs the engine over the detector in bounded pixel chunks.

Holds the physical models (Detector, Crystal, beam/sources) as tensors and renders either the
whole detector, a region of interest, or an explicit list of pixels. Differentiable end to end.
"""
import logging
import math
import os
import warnings
from dataclasses import dataclass, field

import torch

from .compat import check_mode
from .engine import Flags, InterpolationState, _omega_per_pixel, render
from .engine import render_pixels as engine_render_pixels

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


@dataclass
class Beam:
    """Incident beam: source directions (unit vectors from sample to source), wavelengths (m)."""

    source_dirs: torch.Tensor
    wavelengths: torch.Tensor
    weights: torch.Tensor = None  # None or equal weights: nanoBragg's plain average
    polar_axis: object = (0.0, 0.0, 1.0)
    kahn: object = 0.0
    nopolar: bool = False
    fluence: object = 1.25932015286227086e29
    lambda0: object = None  # central wavelength (m) and fractional bandpass that the wavelengths
    dispersion: object = 0.0  # were made from (used to make them differentiable)

    @classmethod
    def monochromatic(cls, wavelength_A=1.0, dispersion_pct=0.0, dispsteps=1, direction=(1.0, 0.0, 0.0),
                      polar_axis=(0.0, 0.0, 1.0), kahn=0.0, nopolar=False, fluence=1.25932015286227086e29,
                      dtype=torch.float64, device="cpu"):
        """One beam direction (default MOSFLM's +x), optionally with nanoBragg's flat bandpass:
        `dispsteps` wavelengths spread evenly over +/- dispersion_pct / 2 percent."""
        lam0, disp = wavelength_A * 1e-10, dispersion_pct / 100.0
        steps = max(int(dispsteps), 1) if disp > 0 else 1
        step = disp / (steps - 1) if steps > 1 else 0.0
        lams = [lam0 * (1.0 + step * i - disp / 2.0) for i in range(steps)] if steps > 1 else [lam0]
        d = torch.as_tensor(direction, dtype=torch.float64)
        dirs = (-d / torch.linalg.norm(d)).repeat(steps, 1)
        t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)
        return cls(source_dirs=t(dirs), wavelengths=t(lams), weights=None, polar_axis=tuple(polar_axis), kahn=kahn,
                   nopolar=nopolar, fluence=fluence, lambda0=lam0, dispersion=disp if steps > 1 else 0.0)

    def weight_factor(self):
        if self.weights is None:
            return None
        w = self.weights
        if not w.requires_grad and bool((w == w[0]).all()):
            return None
        return w * w.numel() / w.sum()


@dataclass
class Simulation:
    """A detector, a crystal and a beam, rendered in bounded pixel chunks.

    `run()` gives the whole image (spixels, fpixels) in photons per pixel on the detector's
    device and dtype; `roi_image` a rectangle; `render_pixels(slow, fast)` a list of pixels.
    `flags` (oversampling rules, polarization, fluence, water background, the normalizing step
    count) are made from the models when not given. Differentiable end to end."""

    detector: object
    crystal: object
    beam: Beam
    flags: Flags = None  # None: made from the beam (fluence, polarization) and the sampling counts
    roi: tuple = None  # (xmin, xmax, ymin, ymax) inclusive, like nanoBragg
    mask: torch.Tensor = None  # (spixels, fpixels) bool, True = render
    term_budget: int = DEFAULT_TERM_BUDGET
    use_compile: object = None  # None: automatic (large runs without autograd); True/False force it
    stats: dict = field(default_factory=dict)
    # differentiable parameters (api.Parameters) written into the models before each render
    parametrization: object = None
    # -compat mode: "default" and "c" keep nanoBragg.c's numeric quirks, "fixed" renders without them
    compat: str = "default"

    def __post_init__(self):
        check_mode(self.compat)
        if self.detector.oversample is None:
            self.detector.oversample = self._auto_oversample()
        if self.flags is None:
            steps = (self.beam.wavelengths.numel() * self.crystal.domains * self.crystal.phisteps
                     * self.detector.oversample ** 2)
            self.flags = Flags(nopolar=self.beam.nopolar, kahn=self.beam.kahn, fluence=self.beam.fluence,
                               steps=steps)
        self.crystal = self.crystal.to(self.detector.dtype, self.detector.device)

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

    def new_state(self, prepared):
        first = prepared[5] if self.phi_zero_quirk_active() else None
        return InterpolationState(self.crystal.interpolate, first, c_rules=self.compat != "fixed")

    def _prepared(self):
        if self.parametrization is not None:
            self.parametrization.apply(self)
        geo = self.detector.geometry()
        t = self.detector.t
        geo["polar_axis"] = t(self.beam.polar_axis)
        incident = -t(self.beam.source_dirs)
        wl = t(self.beam.wavelengths)
        wf = self.beam.weight_factor()
        wf = None if wf is None else t(wf)
        rot = self.crystal.rotated_vectors()
        first = rot[0]
        if self.phi_zero_quirk_active():
            rot = torch.cat((rot[-1:], rot[1:]))
        return geo, incident, wl, wf, rot, first

    def render_pixels(self, slow, fast, state=None, prepared=None, diagnostics=False):
        """Values for explicit pixels (1-D index tensors), rendered in bounded chunks.

        With diagnostics=True also returns the engine's per-chunk intermediate quantities."""
        prepared = prepared or self._prepared()
        state = state or self.new_state(prepared)
        values, diags, _ = self._render(slow, fast, state, prepared, diagnostics)
        return (values, diags) if diagnostics else values

    def _render(self, slow, fast, state, prepared, diagnostics, total=None):
        """total: pixels of the whole run this call is part of (default: these)."""
        geo, incident, wl, wf, rot, _ = prepared
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
                pos = self.detector.positions(geo, f, s)
                value, diag = render(pos, geo, self.detector, incident, wl, wf, rot, self.crystal, self.flags,
                                     state, diagnostics=True)
                diags.append(diag)
                omega = _omega_per_pixel(diag["omega"].detach(), self.flags)
            else:
                value = omega = None
                if self._compile_ok(state):
                    value, omega = self._render_fused(s, f, prepared, state, total or slow.numel())
                if value is None:
                    value, omega = self._render_eager(s, f, prepared, state)
            out.append(value)
            omegas.append(omega)
        if omegas:
            omega_sum = float(torch.cat(omegas).sum())
        values = torch.cat(out) if out else torch.zeros(0, dtype=self.detector.dtype, device=self.detector.device)
        return values, diags, omega_sum

    def _render_eager(self, slow, fast, prepared, state):
        """(values, omega shares) from the eager engine, in chunks of its own (smaller) size."""
        geo, incident, wl, wf, rot, _ = prepared
        step = self.chunk_size()
        values, omegas = [], []
        for start in range(0, slow.numel(), step):
            value, small = engine_render_pixels(slow[start:start + step], fast[start:start + step], geo,
                                                self.detector, incident, wl, wf, rot, self.crystal, self.flags,
                                                state)
            values.append(value)
            omegas.append(small["omega_pixel"].detach())
        return torch.cat(values), torch.cat(omegas)

    def _render_fused(self, slow, fast, prepared, state, total):
        """(values, omega shares) from the compiled plain path, or (None, None) to render eagerly."""
        from .fused import NoCompiler

        try:
            run = self._fused(prepared, slow, fast, state, total)
            if run is None:
                return None, None
            value, omega = run(slow, fast)[:2]
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

    def _fused(self, prepared, slow, fast, state, total):
        """The compiled kernel for this run with its per-run inputs bound, (slow, fast) -> outputs, or
        None when this run renders eagerly (see fused.kernel_for_run)."""
        cached = getattr(self, "_fused_cache", None)
        if cached is not None and cached[0] is prepared:
            return cached[1]
        from .fused import Kernel, kernel_for_run, kernel_inputs

        geo, incident, wl, wf, rot, _ = prepared
        kernel = Kernel(self.detector, self.crystal, self.flags, wf)
        if self.use_compile is True:
            run = kernel.load()
        else:
            run = kernel_for_run(kernel, total * self.terms_per_pixel(),
                                 lambda: self._eager_seconds_per_term(slow, fast, prepared, state))
        if run is not None:
            index = torch.zeros(1, dtype=torch.long, device=self.detector.device)
            rest = kernel_inputs(index, index, geo, self.detector, incident, wl, wf, rot, self.crystal,
                                 self.flags)[2:]
            run = (lambda kernel_run: lambda slow, fast: kernel_run([slow, fast] + rest))(run)
        self._fused_cache = (prepared, run)
        return run

    def _eager_seconds_per_term(self, slow, fast, prepared, state):
        """The eager engine's time per pixel x term on an idle machine, measured on a few of these
        pixels: CPU seconds over its threads (a busy machine's wall clock would overstate it)."""
        from .fused import cpu_seconds

        count = max(1, min(slow.numel(), PROBE_WORK // self.terms_per_pixel()))
        start = cpu_seconds()
        self._render_eager(slow[:count], fast[:count], prepared, state)
        cpu = cpu_seconds() - start
        return cpu / max(1, torch.get_num_threads()) / (count * self.terms_per_pixel())

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

    def roi_image(self, x0, x1, y0, y1):
        """Image of the pixels x0..x1 (fast) by y0..y1 (slow), inclusive like -roi: (y1-y0+1, x1-x0+1)."""
        dev = self.detector.device
        rows = torch.arange(y0, y1 + 1, device=dev)
        cols = torch.arange(x0, x1 + 1, device=dev)
        slow = rows.repeat_interleave(cols.numel())
        fast = cols.repeat(rows.numel())
        return self.render_pixels(slow, fast).reshape(rows.numel(), cols.numel())

    def run(self, progress=None):
        """Whole image (spixels, fpixels); pixels outside the ROI or masked stay 0."""
        d = self.detector
        dev = d.device
        xmin, xmax, ymin, ymax = self.roi or (0, d.fpixels, 0, d.spixels)
        rows = torch.arange(max(ymin, 0), min(ymax, d.spixels - 1) + 1, device=dev)
        cols = torch.arange(max(xmin, 0), min(xmax, d.fpixels - 1) + 1, device=dev)
        prepared = self._prepared()
        state = self.new_state(prepared)
        image = torch.zeros(d.spixels * d.fpixels, dtype=d.dtype, device=dev)
        chunk = self.chunk_size(fused=self._compile_ok(state, pending_ok=True))
        rows_per_chunk = max(1, chunk // max(1, cols.numel()))
        omega_sum = 0.0
        pieces = []
        # compiled_kernel: whether the plain path ran compiled (not when it rendered eagerly this time)
        self.stats = dict(compiled_kernel=False)
        total = rows.numel() * cols.numel() if self.mask is None else int(self.mask.sum())
        for r0 in range(0, rows.numel(), rows_per_chunk):
            r = rows[r0:r0 + rows_per_chunk]
            slow = r.repeat_interleave(cols.numel())
            fast = cols.repeat(r.numel())
            if self.mask is not None:
                keep = self.mask[slow, fast]
                slow, fast = slow[keep], fast[keep]
            values, _, chunk_omega = self._render(slow, fast, state, prepared, False, total)
            omega_sum += chunk_omega
            if values.requires_grad:
                pieces.append((slow * d.fpixels + fast, values))
            else:  # written in place: nothing to differentiate, and no second copy of the image
                image.index_put_((slow * d.fpixels + fast,), values)
            if progress is not None:
                progress(min(r0 + rows_per_chunk, rows.numel()) / max(1, rows.numel()))
        if pieces:
            idx = torch.cat([p[0] for p in pieces])
            vals = torch.cat([p[1] for p in pieces])
            image = image.index_put((idx,), vals)
        self.stats.update(omega_sum=omega_sum, interpolation_warning=state.warning)
        return image.reshape(d.spixels, d.fpixels)
