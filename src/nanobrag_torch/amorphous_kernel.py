"""The amorphous render as one compiled loop (numba, CPU, no gradients): what nonBragg's command
line uses when nothing needs a gradient.  Same sums as amorphous.background_terms (which stays the
differentiable, device-neutral path; tests/test_nonbragg.py compares the two)."""
import math

import numpy as np


def _interval(table, x, start):
    """Index m with table[m] <= x < table[m+1], searched from `start` (neighbours are close)."""
    n = table.shape[0]
    m = min(max(start, 1), n - 3)
    while m < n - 3 and x >= table[m + 1]:
        m += 1
    while m > 1 and x < table[m]:
        m -= 1
    return m


def _pixel(fp, sp, geo, inc, ebin, wl, weight, table, anchor, coef, flags, hint):
    """sum over sub-pixels and sources of sign F^2 polar omega I, and the pixel's omega sum."""
    o, ps, close, kahn = int(flags[0]), geo[9], geo[10], flags[3]
    sub = ps / o
    total, omega_sum = 0.0, 0.0
    for ss in range(o):
        sdet = sub * (sp * o + ss) + sub / 2.0
        for fs in range(o):
            fdet = sub * (fp * o + fs) + sub / 2.0
            x = fdet * geo[0] + sdet * geo[3] + geo[6]
            y = fdet * geo[1] + sdet * geo[4] + geo[7]
            z = fdet * geo[2] + sdet * geo[5] + geo[8]
            air = math.sqrt(x * x + y * y + z * z)
            dx, dy, dz = x / air, y / air, z / air
            omega = 1.0 / air / air if flags[1] else ps * ps / air / air * close / air
            omega_sum += omega
            for k in range(wl.shape[0]):
                ux, uy, uz = dx - inc[k, 0], dy - inc[k, 1], dz - inc[k, 2]
                stol = 0.5 * math.sqrt(ux * ux + uy * uy + uz * uz) / wl[k]
                m = _interval(table, stol, hint[0])
                hint[0] = m
                t = stol - anchor[m]
                f = ((coef[m, 3] * t + coef[m, 2]) * t + coef[m, 1]) * t + coef[m, 0]
                polar = 1.0
                if not flags[2]:
                    c = dx * inc[k, 0] + dy * inc[k, 1] + dz * inc[k, 2]
                    polar = 0.5 * (1.0 + c * c)
                    if kahn != 0.0:
                        e = dx * ebin[k, 0] + dy * ebin[k, 1] + dz * ebin[k, 2]
                        b = dx * ebin[k, 3] + dy * ebin[k, 4] + dz * ebin[k, 5]
                        r2 = e * e + b * b
                        cos2psi = (e * e - b * b) / r2 if r2 > 0 else 1.0
                        polar = 0.5 * (1.0 + c * c - kahn * cos2psi * (1.0 - c * c))
                total += f * abs(f) * polar * omega * weight[k]
    return total, omega_sum


def _render(rows, cols, geo, inc, ebin, wl, weight, table, anchor, coef, flags, out, omega_rows):
    for r in _prange(rows.shape[0]):
        hint = np.ones(1, dtype=np.int64)
        acc = 0.0
        for q in range(cols.shape[0]):
            value, om = _pixel(cols[q], rows[r], geo, inc, ebin, wl, weight, table, anchor, coef, flags, hint)
            out[r, q] = value
            acc += om
        omega_rows[r] = acc


def _render_rows(rows, cols, geo, inc, ebin, wl, weight, table, anchor, coef, flags, out, omega_rows):
    """_render for a non-decreasing table (where the interval found does not depend on where its
    search starts): the same expressions, each pixel's sums in the same order (sub-pixels, then
    sources), but every step runs along the row's pixels, so the square roots and divisions
    vectorize; only the table search stays one pixel at a time."""
    o, ps, close, kahn = int(flags[0]), geo[9], geo[10], flags[3]
    sub = ps / o
    n = cols.shape[0]
    for r in _prange(rows.shape[0]):
        total, omega_sum = np.zeros(n), np.zeros(n)
        dx, dy, dz, omega = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
        stol, m = np.empty(n), np.empty(n, dtype=np.int64)
        hint = 1
        for ss in range(o):
            sdet = sub * (rows[r] * o + ss) + sub / 2.0
            for fs in range(o):
                for q in range(n):
                    fdet = sub * (cols[q] * o + fs) + sub / 2.0
                    x = fdet * geo[0] + sdet * geo[3] + geo[6]
                    y = fdet * geo[1] + sdet * geo[4] + geo[7]
                    z = fdet * geo[2] + sdet * geo[5] + geo[8]
                    air = math.sqrt(x * x + y * y + z * z)
                    dx[q], dy[q], dz[q] = x / air, y / air, z / air
                    omega[q] = 1.0 / air / air if flags[1] else ps * ps / air / air * close / air
                    omega_sum[q] += omega[q]
                for k in range(wl.shape[0]):
                    for q in range(n):
                        ux, uy, uz = dx[q] - inc[k, 0], dy[q] - inc[k, 1], dz[q] - inc[k, 2]
                        stol[q] = 0.5 * math.sqrt(ux * ux + uy * uy + uz * uz) / wl[k]
                    for q in range(n):
                        hint = _interval(table, stol[q], hint)
                        m[q] = hint
                    for q in range(n):
                        j = m[q]
                        t = stol[q] - anchor[j]
                        f = ((coef[j, 3] * t + coef[j, 2]) * t + coef[j, 1]) * t + coef[j, 0]
                        polar = 1.0
                        if not flags[2]:
                            c = dx[q] * inc[k, 0] + dy[q] * inc[k, 1] + dz[q] * inc[k, 2]
                            polar = 0.5 * (1.0 + c * c)
                            if kahn != 0.0:
                                e = dx[q] * ebin[k, 0] + dy[q] * ebin[k, 1] + dz[q] * ebin[k, 2]
                                b = dx[q] * ebin[k, 3] + dy[q] * ebin[k, 4] + dz[q] * ebin[k, 5]
                                r2 = e * e + b * b
                                cos2psi = (e * e - b * b) / r2 if r2 > 0 else 1.0
                                polar = 0.5 * (1.0 + c * c - kahn * cos2psi * (1.0 - c * c))
                        total[q] += f * abs(f) * polar * omega[q] * weight[k]
        acc = 0.0
        for q in range(n):
            out[r, q] = total[q]
            acc += omega_sum[q]
        omega_rows[r] = acc


_prange = range
_BUILT = {}


def _jit(name, helpers=()):
    """`name` compiled with numba (parallel, cached on disk), its helpers compiled for it to call;
    None without numba.  Built once per process."""
    if name not in _BUILT:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency
            _BUILT[name] = None
            return None
        import types
        scope = dict(globals(), _prange=numba.prange)
        for helper in helpers:
            scope[helper] = numba.njit(cache=True)(types.FunctionType(globals()[helper].__code__, scope, helper))
        fn = types.FunctionType(globals()[name].__code__, scope, name)
        _BUILT[name] = numba.njit(cache=True, parallel=True)(fn)
    return _BUILT[name]


def compiled(sorted_table=False):
    """The compiled render loop (the row-vectorized one for a non-decreasing table), or None
    without numba."""
    return _jit("_render_rows", ("_interval",)) if sorted_table else _jit("_render", ("_interval", "_pixel"))


def render(geo, incident, e_b, wavelengths, weights, table, anchor, coefficients, oversample, point_pixel,
           nopolar, kahn, rows, cols, spare_core=False):
    """(len(rows), len(cols)) unscaled sums and the solid-angle sum, float64 numpy throughout.
    spare_core: use one thread fewer (this calling thread's setting only), leaving a core to a
    worker that consumes the rows meanwhile (the noise draws)."""
    out = np.zeros((len(rows), len(cols)))
    omega_rows = np.zeros(len(rows))
    flags = np.array([oversample, 1.0 if point_pixel else 0.0, 1.0 if nopolar else 0.0, kahn])
    fn = compiled(bool(np.all(table[1:] >= table[:-1])))
    args = (np.asarray(rows, np.int64), np.asarray(cols, np.int64), geo, incident, e_b, wavelengths, weights, table,
            anchor, coefficients, flags, out, omega_rows)
    if fn is None:
        _render(*args)
    else:
        import numba

        threads = numba.get_num_threads()
        numba.set_num_threads(max(1, threads - 1) if spare_core else threads)
        try:
            fn(*args)
        finally:
            numba.set_num_threads(threads)
    return out, float(omega_rows.sum())


def _spread(image, radii, kernel, levels, ext):
    """noisify's PSF spread as a gather (race-free in parallel): ext[y, x] (y <= H, x <= W; zeros
    on entry) sums kernel[dy, dx] * image[y - dy, x - dx] over taps whose distance level the
    source's radius reaches.  Tap-major along each output row (each pixel still sums its taps
    in the same order), so the inner loop over x is a vectorizable masked multiply-add."""
    h, w = image.shape
    big = kernel.shape[0] // 2
    for y in _prange(h + 1):
        out = ext[y]
        for i in range(kernel.shape[0]):
            sy = y - (i - big)
            if sy < 0 or sy >= h:
                continue
            source, reach = image[sy], radii[sy]
            for j in range(kernel.shape[1]):
                k = kernel[i, j]
                if k == 0.0:
                    continue
                level, dx = levels[i, j], j - big
                for x in range(max(dx, 0), min(w + dx, w + 1)):
                    value = k * source[x - dx]  # loaded unconditionally: the add becomes a select
                    r = reach[x - dx]
                    out[x] += value if r >= level else 0.0


def _spread_c_order(image, radii, reach_min, taps, weights, out, y0, y1):
    """noisify.c's PSF spread bit for bit into rows y0..y1-1 of the float32 (H, W) `out` (zeros
    on entry): each pixel adds its sources' kernel[dy, dx] * image[source] in the C's order
    (source index ascending: taps sorted by dy * W + dx descending), rounding to float32 at every
    add as the C's float buffer does; spill past the right edge lands at the next row's start.
    Row y reads the image and radii of rows y - r .. y + r only (r: the kernel's radius).
    reach_min[row]: the row's smallest radius; a tap no farther than it needs no per-pixel test."""
    h, w = image.shape
    for y in _prange(y0, y1):
        acc = out[y]
        for t in range(taps.shape[0]):
            dy, dx, level, k = taps[t, 0], taps[t, 1], taps[t, 2], weights[t]
            sy = y - dy
            if 0 <= sy < h:
                lo, hi = max(dx, 0), min(w, w + dx)
                # views from index 0, so that no index can be negative (no wrap-around test per pixel)
                into, source, reach = acc[lo:hi], image[sy, lo - dx:hi - dx], radii[sy, lo - dx:hi - dx]
                if reach_min[sy] >= level:
                    for x in range(hi - lo):
                        into[x] = into[x] + k * source[x]
                else:
                    for x in range(hi - lo):
                        value = into[x] + k * source[x]  # loaded unconditionally: a select below
                        into[x] = value if reach[x] >= level else into[x]
            # x == W of the row above (never above row 0) lands here: from that row's last pixels
            if dx >= 1 and y >= 1 and 1 <= sy <= h and radii[sy - 1, w - dx] >= level:
                acc[0] = acc[0] + k * image[sy - 1, w - dx]


def _pixel_radius(v, fiber, fwhm, g, log16, user_radius, clip):
    """noisify.c's PSF radius of a pixel of v > 0 photons: the user's, or where fewer than
    sqrt(v)/10 photons fall beyond (1 where the formula has no value); within 1 .. clip."""
    r = user_radius
    if r <= 0:
        noise = math.sqrt(v) / 10.0
        rr = 1.0 + math.ceil(g * (v / noise) if fiber else math.sqrt(-math.log(noise / v) / log16) * fwhm)
        r = int(min(rr, 2147483647.0)) if math.isfinite(rr) else 1
    return min(max(r, 1), clip)


def _psf_rows(values, y0, y1, fiber, fwhm, user_radius, clip, lost_of, known, radii, reach_min, lost):
    """noisify.c's per-pixel PSF radius for rows y0..y1-1 of `values` (photons, float64) into
    `radii` (-1: nothing to spread; reach_min: each row's smallest), and the photons falling
    past it, added to `lost` one by one in the C's order (returned).  lost_of[r]: the fraction
    lost past radius r (gauss: the factor; fiber: the divisor, as the C's order of operations);
    known[n]: the radius of n photons (whole n; 0: not computed yet), counts repeating a lot."""
    g = fwhm * 0.652383013252053
    log16 = math.log(16.0)
    for y in range(y0, y1):
        low = clip
        for x in range(values.shape[1]):
            v = values[y, x]
            if not v > 0.0:
                radii[y, x] = -1
                low = -1
                continue
            if v < known.shape[0] and v == math.floor(v):
                n = int(v)
                if known[n] == 0:
                    known[n] = _pixel_radius(v, fiber, fwhm, g, log16, user_radius, clip)
                r = known[n]
            else:
                r = _pixel_radius(v, fiber, fwhm, g, log16, user_radius, clip)
            radii[y, x] = r
            low = min(low, r)
            lost += v * g / lost_of[r] if fiber else v * lost_of[r]
        reach_min[y] = low
    return lost


def _adc_pixels(photons, gain, adc, noise, readout, bits, out):
    """noisify.c's integer image of flat photons: photons * gain + adc (+ noise * readout[i]),
    clipped at 2^31 - 1 and (16 bits) at 65535, cast as gcc on x86-64 casts (truncation, low
    bits; NaN and values out of the int range give 0).  Returns the overloads."""
    over = 0
    for i in _prange(photons.shape[0]):
        a = photons[i] * gain + adc
        if readout.shape[0]:
            a = a + noise * readout[i]
        if a > 2147483647.0:
            a = 2147483647.0
        if bits == 32:
            if a >= 2147483647.0:
                over += 1
            out[i] = int(a) & 0xFFFFFFFF if abs(a) < 2.0**62 else 0
        else:
            if a > 65535.0:
                a = 65535.0
                over += 1
            out[i] = int(a) & 0xFFFF if -2147483648.0 < a < 2147483648.0 else 0
    return over


def compiled_adc():
    """The compiled integer conversion (parallel), or None without numba."""
    return _jit("_adc_pixels")


def compiled_spread():
    """The compiled PSF gather, or None without numba."""
    return _jit("_spread")


def compiled_spread_c_order():
    """The compiled C-order PSF spread, or None without numba."""
    return _jit("_spread_c_order")


def compiled_psf_rows():
    """The compiled per-pixel PSF radii and lost photons (sequential), or None without numba."""
    if "_psf_rows" not in _BUILT:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency
            _BUILT["_psf_rows"] = None
        else:
            import types
            scope = dict(globals())
            scope["_pixel_radius"] = numba.njit(cache=True, nogil=True)(_pixel_radius)
            fn = types.FunctionType(_psf_rows.__code__, scope, "_psf_rows")
            _BUILT["_psf_rows"] = numba.njit(cache=True, nogil=True)(fn)
    return _BUILT["_psf_rows"]
