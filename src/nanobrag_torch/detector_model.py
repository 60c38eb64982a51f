"""Detector response as noisify.c models it: point-spread function, photon shot noise, beam
flicker, per-pixel calibration error, gain, ADC offset and read-out noise.

`apply_psf` is a differentiable convolution (torch); the noise draws use the C's generators in
the C's pixel order (rng.SharedStreams), so a seed gives noisify.c's bytes.  `detector_response`
applies the whole model to one float image (photons/pixel) and is what nanoBragg's detector
options and datasets call per frame.
"""
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from . import rng
from .scoped import scoped

FIBER_G_PER_FWHM = 0.652383013252053  # fiber PSF g = fwhm / (2 sqrt(2^(2/3) - 1))
PHOTON_LOSS_FACTOR = 10.0  # the auto radius keeps what falls outside below sqrt(I)/10 photons
LOG16 = math.log(16.0)
DIRECT_MAX_RADIUS = 12  # larger kernels are applied by FFT
DIRECT_MAX_TAPS = 450  # kernels with more taps are applied by FFT, one per distinct radius
COMPILED_MAX_TAPS = 2000  # ...or, without gradients on a CPU, up to this many by the compiled gather


@dataclass
class DetectorModel:
    """noisify's parameters.  psf: None, "gauss" or "fiber"; psf_fwhm_px: FWHM in pixels;
    psf_radius: kernel radius in pixels (0: automatic, per pixel as the C)."""

    gain: float = 1.0
    adc_offset: float = 40.0
    readout_noise: float = 0.0
    flicker: float = 0.0
    calibration: float = 0.03
    psf: str = None
    psf_fwhm_px: object = 0.0
    psf_radius: int = 0
    bits: int = 16

    @property
    def has_psf(self):
        return self.psf in ("gauss", "fiber") and _number(self.psf_fwhm_px) > 0.0


def fwhm_pixels(fwhm_m, pixel_m):
    """The PSF width in pixels as noisify.c computes it: it keeps the width (m) in a float."""
    return float(np.float32(fwhm_m)) / pixel_m


def _number(x):
    """A parameter's value for tests and messages (it may be a tensor carrying a gradient)."""
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


def _gauss_cdf_term(x, y):
    """Integral of the unit-FWHM normalized 2-D Gaussian from the origin to (x, y)."""
    return 0.125 * (torch.erf(2 * x * math.sqrt(math.log(2))) * torch.erf(y * math.sqrt(LOG16))
                    * math.sqrt(LOG16 / math.log(2)))


def _fiber_cdf_term(x, y, g):
    return torch.atan((x * y) / (g * torch.sqrt(g * g + x * x + y * y))) / 2.0 / math.pi


def _pixel_integral(term, x, y, h):
    """term over the square of half-width h around (x, y), from the corner values (as the C)."""
    return term(x + h, y + h) - term(x + h, y - h) - term(x - h, y + h) + term(x - h, y - h)


def psf_kernel(kind, fwhm_px, radius, dtype=torch.float64, device="cpu"):
    """(2r+1, 2r+1) kernel: the PSF integrated over each pixel, zero beyond `radius`."""
    fwhm = torch.as_tensor(fwhm_px, dtype=dtype, device=device)
    d = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    if kind == "gauss":
        k = _pixel_integral(_gauss_cdf_term, dx / fwhm, dy / fwhm, 1.0 / fwhm / 2.0)
    else:
        g = fwhm * FIBER_G_PER_FWHM
        k = _pixel_integral(lambda x, y: _fiber_cdf_term(x, y, g), dx, dy, 0.5)
    return torch.where(dx * dx + dy * dy <= radius * radius, k, torch.zeros_like(k))


def _auto_radius(kind, intensity, fwhm, g, log_divisor):
    """1 + ceil(r): the radius beyond which fewer than sqrt(I)/10 of I's photons fall (float64
    numpy, as the C computes it; gauss: log_divisor is the C's log(4)*2 or log(16))."""
    with np.errstate(invalid="ignore", divide="ignore"):
        lost = np.sqrt(intensity) / PHOTON_LOSS_FACTOR
        if kind == "gauss":
            r = 1.0 + np.ceil(np.sqrt(-np.log(lost / intensity) / log_divisor) * fwhm)
        else:
            r = 1.0 + np.ceil(g * (intensity / lost))
    # below 0.01 photons the C's formula has no value (undefined behaviour there): radius 1
    return np.where(np.isfinite(r), np.minimum(r, 2.0**31 - 1), 1.0).astype(np.int64)


def psf_radii(kind, values, fwhm, user_radius, maxwidth):
    """(kernel radius, per-pixel radii) as apply_psf.c picks them; values: float64 numpy."""
    g = fwhm * FIBER_G_PER_FWHM
    if user_radius > 0:
        return min(user_radius, maxwidth), np.full(values.shape, min(user_radius, maxwidth), dtype=np.int64)
    max_i = float(values.max()) if values.size else 0.0
    radius = int(_auto_radius(kind, np.array(max_i), fwhm, g, math.log(4) * 2))
    radius = min(max(radius, 1), maxwidth)
    per_pixel = _auto_radius(kind, values, fwhm, g, LOG16)
    per_pixel = np.clip(np.where(per_pixel == 0, 1, per_pixel), 1, maxwidth)
    # a radius beyond the kernel's reads past it in the C (undefined); the kernel's edge here
    return radius, np.minimum(per_pixel, radius)


def _full_convolution(image, kernel):
    """Full 2-D convolution (H + 2r, W + 2r) of image with a (2r+1)^2 kernel."""
    r = kernel.shape[0] // 2
    h, w = image.shape
    if r <= DIRECT_MAX_RADIUS:
        flipped = kernel.flip(0, 1)[None, None]
        return torch.nn.functional.conv2d(image[None, None], flipped, padding=2 * r)[0, 0]
    shape = (h + 2 * r, w + 2 * r)
    spectrum = torch.fft.rfft2(image, s=shape) * torch.fft.rfft2(kernel, s=shape)
    return torch.fft.irfft2(spectrum, s=shape)


def _lost_photons(kind, intensity, radius, fwhm):
    """Photons of each pixel falling beyond its radius (added back evenly over the image)."""
    if kind == "gauss":
        return intensity * torch.exp(-LOG16 * (radius / fwhm) ** 2)
    g = fwhm * FIBER_G_PER_FWHM
    return intensity * g / torch.sqrt(g * g + radius * radius)


def apply_psf(image, kind, fwhm_px, radius=0, say=None, c_rounding=False):
    """Blur a (H, W) photon image with noisify's PSF: each pixel spreads over its own radius
    (automatic: where fewer than sqrt(I)/10 photons would fall beyond), photons beyond it are
    spread evenly over the image, and (as the C) spill past the right edge lands at the start of
    the next row.  Differentiable in the image and the width.  c_rounding: round the spread
    image to float32 before the lost photons are added, as the C's float buffer does."""
    say = say or (lambda text: None)
    h, w = image.shape
    fwhm = torch.as_tensor(fwhm_px, dtype=image.dtype, device=image.device)
    values = image.detach().to("cpu", torch.float64).numpy()
    if radius <= 0:
        say("  maximum input photon/pixel: %g" % float(values.max()))
        if not values.max() > 0.0:
            say("WARNING: no photons, PSF skipped")
            return torch.zeros_like(image)
    kernel_radius, radii = psf_radii(kind, values, float(fwhm.detach()), int(radius), max(h, w))
    if radius <= 0:
        say("  auto-selected psf_radius = %d pixels" % kernel_radius)
    kernel = psf_kernel(kind, fwhm, kernel_radius, image.dtype, image.device)
    grad = torch.is_grad_enabled() and (image.requires_grad or kernel.requires_grad)
    compiled = int((kernel != 0).sum()) <= COMPILED_MAX_TAPS and image.device.type == "cpu" and not grad \
        and _compiled_spread() is not None
    if c_rounding and compiled:
        out, lost = _spread_c_order(kind, values, radii, kernel.numpy(), float(fwhm))
        say("adding back %g lost photons" % lost)
        return torch.as_tensor(out + lost / (h * w), dtype=image.dtype)
    lit = torch.as_tensor(values > 0.0, device=image.device)
    r_t = torch.as_tensor(radii, dtype=image.dtype, device=image.device)
    lost = torch.where(lit, _lost_photons(kind, image, r_t, fwhm), torch.zeros_like(image)).sum()
    weights = torch.as_tensor(np.where(values > 0.0, radii, -1), device=image.device)
    if compiled:
        ext = _spread_compiled(image, weights, kernel)
    elif int((kernel != 0).sum()) <= DIRECT_MAX_TAPS:
        ext = _spread_by_taps(image, weights, kernel)
    else:
        ext = _spread_by_fft(image, weights, kernel, radii[values > 0.0])
    # ext[y, x] lands at y * W + x: x == W wraps to the next row's start; the last spill is dropped
    wrapped = torch.nn.functional.pad(ext[:h - 1, w:w + 1], (0, w - 1, 1, 0))
    out = ext[:h, :w] + wrapped
    say("adding back %g lost photons" % float(lost.detach()))
    if c_rounding:
        out = out.to(torch.float32).to(image.dtype)
    return out + lost / (h * w)


def _spread_by_taps(image, radii, kernel):
    """(H+1, W+1) image of every pixel spread over its disk (radius radii[y, x]; -1: nothing),
    on the grid x in [0, W], y in [0, H]: one shifted multiply-add per kernel tap, the tap at
    distance d taking the pixels whose radius is at least d."""
    h, w = image.shape
    big = kernel.shape[0] // 2
    levels = [torch.nn.functional.pad(torch.where(radii >= level, image, torch.zeros_like(image)),
                                      (big, big + 1, big, big + 1)) for level in range(big + 1)]
    grad = image.requires_grad or kernel.requires_grad
    ext = image.new_zeros(h + 1, w + 1)
    taps = torch.nonzero(kernel.detach() != 0).tolist()
    for i, j in taps:
        dy, dx = i - big, j - big
        level = math.ceil(math.sqrt(dy * dy + dx * dx))
        shifted = levels[level][big - dy:big - dy + h + 1, big - dx:big - dx + w + 1]
        if grad:
            ext = ext + kernel[i, j] * shifted
        else:
            ext.add_(shifted, alpha=float(kernel[i, j]))
    return ext


def _compiled_spread():
    from .amorphous_kernel import compiled_spread
    return compiled_spread()


def _spread_compiled(image, radii, kernel):
    """_spread_by_taps as one compiled parallel loop (CPU, no gradient)."""
    h, w = image.shape
    big = kernel.shape[0] // 2
    d = np.arange(-big, big + 1)
    levels = np.ceil(np.sqrt(d[:, None] ** 2 + d[None, :] ** 2)).astype(np.int64)
    ext = np.zeros((h + 1, w + 1))
    _compiled_spread()(image.detach().to(torch.float64).numpy(), radii.to("cpu").numpy().astype(np.int64),
                       kernel.detach().to(torch.float64).numpy(), levels, ext)
    return torch.as_tensor(ext, dtype=image.dtype)


def _c_order_taps(kernel, w):
    """The kernel's nonzero taps as _spread_c_order takes them: ([dy, dx, distance level] rows,
    weights), sorted by source index ascending (dy * W + dx descending), as the C visits them."""
    big = kernel.shape[0] // 2
    dy, dx = (a.ravel() for a in np.meshgrid(np.arange(-big, big + 1), np.arange(-big, big + 1), indexing="ij"))
    keep = kernel.ravel() != 0.0
    dy, dx, weights = dy[keep], dx[keep], kernel.ravel()[keep]
    order = np.argsort(-(dy * w + dx), kind="stable")
    levels = np.ceil(np.sqrt(dy * dy + dx * dx)).astype(np.int64)
    return np.ascontiguousarray(np.stack([dy, dx, levels], 1)[order]), np.ascontiguousarray(weights[order])


def _spread_c_order(kind, values, radii, kernel, fwhm):
    """(spread image as the C's float buffer holds it, lost photons summed in the C's order)
    from float64 numpy values and per-pixel radii (CPU, no gradient)."""
    from .amorphous_kernel import compiled_spread_c_order

    h, w = values.shape
    taps, weights = _c_order_taps(kernel, w)
    lit = values > 0.0
    out = np.zeros((h, w), dtype=np.float32)
    reach = np.where(lit, radii, -1).astype(np.int64)
    compiled_spread_c_order()(values, reach, reach.min(axis=1, initial=0), taps, weights, out, 0, h)
    lost = _lost_photons(kind, torch.from_numpy(values), torch.from_numpy(radii.astype(np.float64)), fwhm).numpy()
    return out.astype(np.float64), float(np.cumsum(np.where(lit, lost, 0.0).ravel())[-1]) if lost.size else 0.0


def _spread_by_fft(image, radii, kernel, lit_radii):
    """As _spread_by_taps, for large kernels: one FFT convolution per distinct radius."""
    h, w = image.shape
    c = kernel.shape[0] // 2
    ext = image.new_zeros(h + 1, w + 1)
    for r in np.unique(lit_radii).tolist():
        part = torch.where(radii == r, image, torch.zeros_like(image))
        full = _full_convolution(part, kernel[c - r:c + r + 1, c - r:c + r + 1] * _disk(r, image))
        ext = ext + full[r:r + h + 1, r:r + w + 1]
    return ext


def _disk(r, like):
    d = torch.arange(-r, r + 1, dtype=like.dtype, device=like.device)
    return (d[:, None] ** 2 + d[None, :] ** 2 <= r * r).to(like.dtype)


def c_unsigned(adu, bits):
    """C's (unsigned short) / (unsigned int) of doubles on x86-64 (truncation, then low bits)."""
    ok = np.isfinite(adu) & (np.abs(adu) < 2.0**62)
    as_int = np.trunc(np.where(ok, adu, 0.0)).astype(np.int64)
    if bits == 16:
        as_int = np.where((adu > -2147483648.0) & (adu < 2147483648.0), as_int, 0)
        return (as_int & 0xFFFF).astype(np.uint16)
    return (as_int & 0xFFFFFFFF).astype(np.uint32)


def to_pixels(photons, model, readout=None):
    """ADU image (uint16 or uint32 by model.bits) and overload count from photons/pixel (float64
    numpy): photons * gain + offset (+ read-out noise), clipped as the C clips."""
    from .amorphous_kernel import compiled_adc

    if compiled_adc() is not None and isinstance(model.gain, float) and isinstance(model.adc_offset, float):
        out = np.empty(np.shape(photons), dtype=np.uint32 if model.bits == 32 else np.uint16)
        flat = np.ascontiguousarray(photons, dtype=np.float64).ravel()
        noise = np.zeros(0) if readout is None else np.ascontiguousarray(readout, dtype=np.float64).ravel()
        over = compiled_adc()(flat, model.gain, model.adc_offset, float(model.readout_noise), noise, model.bits,
                              out.reshape(-1))
        return out, int(over)
    adu = photons * model.gain + model.adc_offset
    if readout is not None:
        adu = adu + model.readout_noise * readout
    adu = np.where(adu > 2147483647.0, 2147483647.0, adu)
    if model.bits == 32:
        return c_unsigned(adu, 32), int((adu >= 2147483647.0).sum())
    over = adu > 65535.0
    return c_unsigned(np.where(over, 65535.0, adu), 16), int(over.sum())


def photon_scale(fluence=125932015286227086360700780544.0, scale=1.0):
    """noisify's factor from the input image to photons/pixel: (fluence r_e^2) scale (1 by default)."""
    return (fluence * 7.94079248018965e-30) * scale


@dataclass
class Response:
    """What the model made of one image: the noiseless and noisy ADU images (numpy), the photon
    image the noisy one was made from (after the PSF), photon sum and overloads."""

    noiseless: np.ndarray
    noisy: np.ndarray = None
    photons: np.ndarray = None
    photon_sum: float = 0.0
    overloads: int = 0


def expected_adu(image, model, scale=1.0):
    """Differentiable noiseless response: PSF-blurred photons * gain + ADC offset (no rounding)."""
    photons = image * scale
    if model.has_psf:
        photons = apply_psf(photons, model.psf, model.psf_fwhm_px, model.psf_radius)
    return photons * model.gain + model.adc_offset


def photon_values(image, scale=1.0):
    """Photons/pixel as the C's float buffer holds them: float32 values in a float64 tensor."""
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu")
    return torch.from_numpy((np.asarray(image, dtype=np.float64) * scale).astype(np.float32).astype(np.float64))


def noiseless_response(image, model, scale=1.0, noise=True, say=None):
    """(photons/pixel as float32 values in float64 numpy, noiseless ADU image).  Without noise the
    PSF is applied here (as the C does when no noise image will carry it)."""
    say = say or (lambda text: None)
    photons = photon_values(image, scale)
    if not noise and model.has_psf:
        say("  applying PSF to noiseless image width = %g pixels" % _number(model.psf_fwhm_px))
        photons = apply_psf(photons, model.psf, model.psf_fwhm_px, model.psf_radius, say, True).to(torch.float32)
    base = photons.to(torch.float64).numpy()
    return base, _noiseless(base, model)


class _Here:
    """An executor that runs each task when it is submitted (ThreadPoolExecutor's interface)."""

    def submit(self, fn, *args):
        done = Future()
        done.set_result(fn(*args))
        return done

    def shutdown(self, wait=True):
        pass


class NoiseDraws:
    """One image's sequential draws (photon counts block of rows by block, then the read-out
    Gaussians) on a worker thread, started at once: the compiled loops release the GIL, so the
    caller can write files or apply the PSF to the rows drawn so far meanwhile.  The parallel
    preparation runs here, in the caller's thread."""

    BLOCK_ROWS = 32

    def __init__(self, photons, model, seed, calib_seed=123456789, worker=True):
        photons = np.asarray(photons, dtype=np.float32)
        self.shape = photons.shape
        h = photons.shape[0] if photons.ndim == 2 else 1
        w = photons.size // h if h else 0
        streams = rng.SharedStreams(seed, calib_seed)
        draw, self._flat = streams.prepare(photons, model.flicker, model.calibration)
        # worker=False: drawn here and now (a caller that is itself a spare thread: datasets)
        pool = ThreadPoolExecutor(1, thread_name_prefix="noise") if worker else _Here()
        blocks = [(r, min(h, r + self.BLOCK_ROWS)) for r in range(0, h, self.BLOCK_ROWS)]
        self._blocks = [(start, stop, pool.submit(draw, [start * w], [stop * w])) for start, stop in blocks]
        # the Gaussians continue the same stream: same worker, after the counts
        self._readout = pool.submit(streams.gaussians, photons.size) if model.readout_noise > 0.0 else None
        pool.shutdown(wait=False)  # the worker ends after these

    def drawn_rows(self):
        """(first, end) of each block of image rows as its draws are done, in order."""
        for start, stop, future in self._blocks:
            future.result()
            yield start, stop

    def counts(self):
        """(counts, their sum), waiting for the draws."""
        total = 0.0
        for _, _, future in self._blocks:
            total = future.result()  # each block returns the running sum
        return self._flat.reshape(self.shape), total

    def readout(self, shape):
        """The unit read-out Gaussians (shape), or None without read-out noise."""
        return None if self._readout is None else self._readout.result().reshape(shape)


def _kernel_radius(kind, top, fwhm, user_radius, maxwidth):
    """apply_psf.c's kernel radius: the user's, or automatic from the brightest pixel `top`."""
    if user_radius > 0:
        return min(user_radius, maxwidth)
    radius = int(_auto_radius(kind, np.array(top), fwhm, fwhm * FIBER_G_PER_FWHM, math.log(4) * 2))
    return min(max(radius, 1), maxwidth)


def _following_psf(draws, model, hint):
    """noisify.c's PSF on the counts, spread row block by row block as the draws finish them
    (one thread meanwhile, the draws having the other core): (C float buffer, lost photons,
    brightest count, kernel radius), or None where this path does not apply (no compiled loops,
    too many taps, no photons) or its guess of the automatic radius, from the brightest mean
    `hint`, proves wrong: apply_psf then does it all after the draws, with the same result."""
    from .amorphous_kernel import compiled_psf_rows, compiled_spread_c_order

    if len(draws.shape) != 2 or isinstance(model.psf_fwhm_px, torch.Tensor) or compiled_psf_rows() is None:
        return None
    h, w = draws.shape
    fwhm, user = float(model.psf_fwhm_px), int(model.psf_radius)
    if user <= 0 and not hint > 0.0:
        return None
    radius = _kernel_radius(model.psf, hint, fwhm, user, max(h, w))
    taps, weights = _c_order_taps(psf_kernel(model.psf, fwhm, radius).numpy(), w)
    if len(taps) > COMPILED_MAX_TAPS:
        return None
    import numba

    fiber = model.psf == "fiber"
    lost_of = np.array([math.sqrt(g * g + r * r) if fiber else math.exp(-LOG16 * ((r / fwhm) * (r / fwhm)))
                        for g in [fwhm * FIBER_G_PER_FWHM] for r in range(radius + 1)])
    known = np.zeros(int(min(max(hint, 0.0) * 1.5 + 1000.0, 1 << 22)), dtype=np.int64)
    counts, radii, reach_min = draws._flat.reshape(h, w), np.empty((h, w), dtype=np.int64), np.empty(h, np.int64)
    out, lost, done = np.zeros((h, w), dtype=np.float32), 0.0, 0
    for first, rows in draws.drawn_rows():
        lost = compiled_psf_rows()(counts, first, rows, fiber, fwhm, user, min(radius, max(h, w)), lost_of, known,
                                   radii, reach_min, lost)
        ready = h if rows == h else max(rows - radius, done)  # output row y reads rows up to y + radius
        with scoped(numba.get_num_threads, numba.set_num_threads, None if rows == h else 1):
            compiled_spread_c_order()(counts, radii, reach_min, taps, weights, out, done, ready)
        done = ready
    top = float(counts.max()) if counts.size else 0.0
    if user <= 0 and (not top > 0.0 or _kernel_radius(model.psf, top, fwhm, user, max(h, w)) != radius):
        return None
    return out, lost, top, radius


def noisy_response(photons, model, seed, calib_seed=123456789, say=None, psf_label=None, draws=None, worker=True):
    """Shot noise (after flicker and calibration error), PSF, gain, offset and read-out noise on
    photons/pixel (float64 numpy of float32 values): (counts after the PSF, ADU image, overloads).
    `draws`: NoiseDraws already started for these photons and seeds (else started here, on a
    worker thread unless worker=False)."""
    say = say or (lambda text: None)
    draws = draws or NoiseDraws(photons, model, seed, calib_seed, worker)
    followed = None
    if model.has_psf and photons.size:
        followed = _following_psf(draws, model, float(np.max(photons)))
    counts, total = draws.counts()
    if model.has_psf:
        say("%.0f photons on noise image before PSF" % total)
        say("  applying PSF width = %s" % (psf_label or "%g pixels" % _number(model.psf_fwhm_px)))
        if followed is not None:
            out, lost, top, radius = followed
            if model.psf_radius <= 0:
                say("  maximum input photon/pixel: %g" % top)
                say("  auto-selected psf_radius = %d pixels" % radius)
            say("adding back %g lost photons" % lost)
            counts = (out.astype(np.float64) + lost / counts.size).astype(np.float32).astype(np.float64)
        else:
            blurred = apply_psf(torch.from_numpy(counts), model.psf, model.psf_fwhm_px, model.psf_radius, say, True)
            counts = blurred.to(torch.float32).to(torch.float64).numpy()
    readout = draws.readout(counts.shape)
    noisy, overloads = to_pixels(counts, model, readout)
    return counts, noisy, overloads


def detector_response(image, model, seed, calib_seed=123456789, scale=1.0, noise=True, say=None):
    """noisify on one float image (H, W) of photons/pixel (tensor or array) with C seed values
    (seed: the C seed variable, e.g. -1234 for '-seed 1234'; calib_seed likewise; the default
    calibration seed is the C's).  The same seeds give noisify.c's pixels."""
    photons, noiseless = noiseless_response(image, model, scale, noise, say)
    if not noise:
        return Response(noiseless)
    counts, noisy, overloads = noisy_response(photons, model, seed, calib_seed, say)
    return Response(noiseless, noisy, counts, float(counts.sum()), overloads)


def _noiseless(photons, model):
    """The C's noiseless image: both integer widths clipped at 65535."""
    adu = photons * model.gain + model.adc_offset
    adu = np.minimum(np.where(adu > 2147483647.0, 2147483647.0, adu), 65535.0)
    return c_unsigned(adu, model.bits)
