"""Random numbers that reproduce the C program bit for bit.

The reference draws uniform deviates from a Park-Miller generator with a Bays-Durham shuffle,
returned as C `float`.  Poisson/Gaussian deviates mix float and double arithmetic; every float
rounding is reproduced with an explicit float32 conversion (for + - * / and sqrt, rounding the
exact float64 result of float32 operands to float32 equals the float32 operation).

State arrays (one implementation serves plain Python and numba):
  sd   int64[1]   the C seed variable `idum` (one per seed: noise, mosaic, misset)
  tab  int64[33]  [iy, iv[0..31]]: the C keeps these in statics shared by *all* seeds
  ps   float64[6] [sq, alxm, g, oldm, iset, gset]: statics of poidev/gaussdev
"""
import math
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_IA = 16807
_IM = 2147483647
_AM = 1.0 / _IM
_IQ = 127773
_IR = 2836
_NTAB = 32
_NDIV = 1 + (_IM - 1) // _NTAB
_RNMX = 1.0 - 1.2e-7
_RNMX_F = float(np.float32(_RNMX))
_F32 = np.float32
_F64 = np.float64  # explicit: numba types float() of a float32 as float32 (math.exp -> expf); the C uses double


def _load_powf():
    """glibc's powf (what the C calls); numpy's float32 power differs from it by an ulp at times."""
    try:
        import ctypes
        import ctypes.util

        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        fn = libm.powf
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float, ctypes.c_float]
        return lambda x, y: _F32(fn(float(x), float(y)))
    except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
        return lambda x, y: np.power(_F32(x), _F32(y))


_powf = _load_powf()


def _ran1(sd, tab):
    """One uniform deviate, as the C float value (held in a float64)."""
    idum = sd[0]
    if idum <= 0 or tab[0] == 0:
        # (Re)initialise; a non-negative seed (possible only with a fresh table) becomes 1.
        idum = 1 if -idum < 1 else -idum
        for j in range(_NTAB + 7, -1, -1):
            k = idum // _IQ
            idum = _IA * (idum - k * _IQ) - _IR * k
            if idum < 0:
                idum += _IM
            if j < _NTAB:
                tab[1 + j] = idum
        tab[0] = tab[1]
    if 0 < idum < _IM:  # Schrage's product without overflow equals the plain one in 64 bits (faster)
        idum = (_IA * idum) % _IM
    else:
        k = idum // _IQ
        idum = _IA * (idum - k * _IQ) - _IR * k
        if idum < 0:
            idum += _IM
    sd[0] = idum
    j = tab[0] // _NDIV
    tab[0] = tab[1 + j]
    tab[1 + j] = idum
    temp = float(_F32(_AM * tab[0]))
    if temp > _RNMX:
        return _RNMX_F
    return temp


def _gammln(xx):
    """ln Gamma of a float32 argument: double arithmetic, result rounded to float32."""
    x = float(xx)
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    ser += 76.18009172947146 / (x + 1.0)
    ser += -86.50532032941677 / (x + 2.0)
    ser += 24.01409824083091 / (x + 3.0)
    ser += -1.231739572450155 / (x + 4.0)
    ser += 0.1208650973866179e-2 / (x + 5.0)
    ser += -0.5395239384953e-5 / (x + 6.0)
    return float(_F32(-tmp + math.log(2.5066282746310005 * ser / x)))


def _gaussdev(sd, tab, ps):
    """Unit normal deviate (polar Box-Muller); the second deviate is kept for the next call."""
    if ps[4] == 0.0:
        while True:
            v1 = float(_F32(2.0 * _ran1(sd, tab) - 1.0))
            v2 = float(_F32(2.0 * _ran1(sd, tab) - 1.0))
            rsq = float(_F32(float(_F32(v1 * v1)) + float(_F32(v2 * v2))))
            if not (rsq >= 1.0 or rsq == 0.0):
                break
        fac = float(_F32(math.sqrt(-2.0 * math.log(_F64(rsq)) / rsq)))
        ps[5] = float(_F32(v1 * fac))
        ps[4] = 1.0
        return float(_F32(v2 * fac))
    ps[4] = 0.0
    return ps[5]


def _poisson_statics(xm):
    """poidev's statics for the mean xm (a float32 value): (sq, alxm, g); below 12 only g."""
    x = _F64(xm)
    if x < 12.0:
        return 0.0, 0.0, _F64(_F32(math.exp(-x)))
    alxm = _F64(_F32(math.log(x)))
    return _F64(_F32(math.sqrt(2.0 * x))), alxm, _F64(_F32(_F64(_F32(x * alxm)) - _gammln(_F32(x + 1.0))))


def _multiplied(g, sd, tab):
    """poidev's direct method (mean below 12): uniforms multiplied until at most g = exp(-mean)."""
    em = -1.0
    t = 1.0
    while True:
        em += 1.0
        t = _F64(_F32(t * _ran1(sd, tab)))
        if not (t > g):
            return em


_PIO2_HI, _PIO2_LO = 1.5707963267948966, 6.123233995736766e-17  # pi/2 = hi + lo (hi: the double)
_PI_HI, _PI_LO = 3.141592653589793, 1.2246467991473532e-16
_TAN_BAND = 1e-12  # relative: far above _tan_pi's error (~5e-16), far below a float32 ulp (6e-8)


def _tan_pi(u):
    """tan(pi u) for 0 < u < 1 to ~5e-16 relative: pi u reduced by a multiple of pi/2 (in two
    parts, so a result near the pole keeps its digits), then Lambert's continued fraction for
    tan to depth 8 as one ratio of integer-coefficient polynomials in r^2.  A third of glibc's
    latency, which sits on the sequential Poisson loop's critical path."""
    x = math.pi * u
    if x < 0.7853981633974483:
        r, cot = x, False
    elif x < 2.356194490192345:
        r, cot = (x - _PIO2_HI) - _PIO2_LO, True
    else:
        r, cot = (x - _PI_HI) - _PI_LO, False
    s = r * r
    p = (((s - 990.0) * s + 135135.0) * s - 4729725.0) * s + 34459425.0
    q = (((45.0 * s - 13860.0) * s + 945945.0) * s - 16216200.0) * s + 34459425.0
    return -q / (r * p) if cot else r * p / q


def _tan_pi_f32(u):
    """The C's float y = tan(M_PI * u): glibc's double tan rounded to float.  _tan_pi's value
    gives the same float whenever the band of its error rounds to one float (rounding is
    monotonic); otherwise (about 1 in 30,000) glibc's tan decides."""
    t = _tan_pi(u)
    lo = _F32(t - abs(t) * _TAN_BAND)
    if lo == _F32(t + abs(t) * _TAN_BAND):
        return lo
    return _F32(math.tan(math.pi * u))


def _settle(sd, tab, ps):
    """Give back the uniform _rejected drew ahead (ps[6] set; the seed variable and shuffle-table
    entries it changed are in ps[8], ps[9]), so that whatever draws next from the table gets it."""
    if ps[6] != 0.0:
        ps[6] = 0.0
        iy = np.int64(ps[9])
        j = iy // _NDIV
        tab[1 + j] = tab[0]
        tab[0] = iy
        sd[0] = np.int64(ps[8])


def _rejected(xm, sq, alxm, g, lgam, sd, tab, ps):
    """poidev's rejection method (mean 12 .. 1e6) from its statics; ln Gamma(em + 1) of the
    integer em is kept in lgam (NaN: not computed yet; deviates past its end compute it).
    The C's float arithmetic is done in float32 itself (one rounding, as the C's), not as
    double rounded back: conversions would sit on the loop's critical path.  The uniform after
    each acceptance test feeds a tan whatever the test says (another try, or the next deviate's
    first), so it is drawn before the test, overlapping its latency: on acceptance it is left
    pending in ps[6:10] for the next call; anything else drawing next must _settle first."""
    xm, sq, alxm, g = _F32(xm), _F32(sq), _F32(alxm), _F32(g)
    if ps[6] != 0.0:
        ps[6] = 0.0
        y = _F32(ps[7])
    else:
        y = _tan_pi_f32(_ran1(sd, tab))
    while True:
        em = sq * y + xm
        while em < 0.0:  # there are no negative deviates: draw again
            y = _tan_pi_f32(_ran1(sd, tab))
            em = sq * y + xm
        em = np.floor(em)
        if em < lgam.shape[0]:  # also false for NaN
            k = int(em)
            if math.isnan(lgam[k]):
                lgam[k] = _gammln(em + _F32(1.0))
            lg = _F32(lgam[k])
        else:
            lg = _F32(_gammln(em + _F32(1.0)))
        c = em * alxm - lg - g
        t = _F32(0.9 * (1.0 + _F64(y * y)) * math.exp(_F64(c)))
        u = _F32(_ran1(sd, tab))
        ps[8], ps[9] = sd[0], tab[0]
        y = _tan_pi_f32(_ran1(sd, tab))
        if not (u > t):
            ps[6], ps[7] = 1.0, y
            return _F64(em)


def _poidev(xm, sd, tab, ps, lgam):
    """Poisson deviate of the float32 mean xm (returned as the C float value); lgam as _rejected's.
    Leaves nothing pending."""
    _settle(sd, tab, ps)
    x = _F64(xm)
    if x > 1.0e6:
        return _F64(_F32(x + math.sqrt(x) * _gaussdev(sd, tab, ps)))
    if x != ps[3]:  # the C recomputes its statics only for a new mean
        ps[3] = x
        ps[0], ps[1], ps[2] = _poisson_statics(x)
    if x < 12.0:
        return _multiplied(ps[2], sd, tab)
    em = _rejected(x, ps[0], ps[1], ps[2], lgam, sd, tab, ps)
    _settle(sd, tab, ps)
    return em


def _poisson_setup(xm, setup):
    """poidev's statics of every mean (flat float32 xm) below 1e6: they depend on the mean only,
    so they are computed in parallel before the (sequential) draws."""
    for i in _prange(xm.shape[0]):
        if not xm[i] > 1.0e6:
            setup[i, 0], setup[i, 1], setup[i, 2] = _poisson_statics(xm[i])


def _scaled_mean(x, flicker, calibration, sd, csd, tab, ps):
    """noisify's mean after beam flicker (noise seed) and calibration error (calibration seed),
    both Gaussians from the shared table and spare, as a float32 value."""
    if flicker > 0.0:
        if ps[4] == 0.0:  # gaussdev will draw
            _settle(sd, tab, ps)
        x *= 1.0 + flicker * _gaussdev(sd, tab, ps)
    if calibration > 0.0:
        if ps[4] == 0.0:
            _settle(sd, tab, ps)
        x *= 1.0 + calibration * _gaussdev(csd, tab, ps)
    return _F64(_F32(x))


def _poisson_run(xm, starts, stops, sd, csd, tab, ps, setup, lgam, flicker, calibration, out, total):
    """Poisson deviates out[i] of the means xm[i] for i in each [starts[r], stops[r]), in that
    order, drawn as the C's loops draw them; returns `total` plus them, added one by one.  With
    flicker or calibration each mean is first scaled (_scaled_mean).  The statics come from
    _poisson_setup (setup rows per mean), or without those (and when scaled) are computed here
    (kept in locals, new means only, as poidev)."""
    scaled = flicker > 0.0 or calibration > 0.0
    inline = scaled or setup.shape[0] == 0
    last, sq, alxm, g = -1.0, 0.0, 0.0, 0.0
    for r in range(starts.shape[0]):
        for i in range(starts[r], stops[r]):
            x = _F64(xm[i])
            if scaled:
                x = _scaled_mean(x, flicker, calibration, sd, csd, tab, ps)
            if inline:
                if x != last and not x > 1.0e6:
                    last = x
                    sq, alxm, g = _poisson_statics(x)
            elif not x > 1.0e6:
                sq, alxm, g = setup[i, 0], setup[i, 1], setup[i, 2]
            if x > 1.0e6:
                em = _poidev(x, sd, tab, ps, lgam)
            elif x < 12.0:
                _settle(sd, tab, ps)
                em = _multiplied(g, sd, tab)
            else:  # NaN too, as in the C
                em = _rejected(x, sq, alxm, g, lgam, sd, tab, ps)
            out[i] = em
            total += em
    _settle(sd, tab, ps)
    return total


def _to_adc(counts, x0, x1, y0, y1, adc, out):
    """The C's noise image from Poisson counts: inside the ROI count + ADC offset, clipped at
    65535 and cast as the C casts (zero elsewhere).  Returns (the counts summed one by one in
    the C's order, overloads)."""
    total = 0.0
    overloads = 0
    for s in range(y0, y1 + 1):
        for f in range(x0, x1 + 1):
            total += counts[s, f]
            test = counts[s, f] + adc
            if test > 65535.0:
                test = 65535.0
                overloads += 1
            out[s, f] = int(test) & 0xFFFF if -2147483648.0 < test < 2147483648.0 else 0
    return total, overloads


def _gauss_stream(sd, tab, ps, out):
    """The next out.shape[0] unit Gaussian deviates of one seed (noisify's read-out noise)."""
    for i in range(out.shape[0]):
        out[i] = _gaussdev(sd, tab, ps)


_prange = range
_JITTED = ("_ran1", "_tan_pi", "_tan_pi_f32", "_gammln", "_gaussdev", "_poisson_statics", "_multiplied", "_settle",
           "_rejected", "_poidev", "_scaled_mean", "_poisson_run", "_to_adc", "_gauss_stream")
_PARALLEL = ("_poisson_setup",)
# a call passing arrays costs atomic reference counts (~10 ns a pixel): these are inlined
_INLINED = ("_ran1", "_tan_pi", "_tan_pi_f32", "_gaussdev", "_multiplied", "_settle", "_rejected", "_scaled_mean")


def _build_jit():
    """Compile the functions above with numba, each resolving its callees to compiled ones."""
    try:
        from numba import njit, prange
    except ImportError:  # pragma: no cover - numba is a dependency; plain Python still works
        return None
    scope = dict(globals(), _prange=prange)
    for name in _JITTED + _PARALLEL:
        fn = globals()[name]
        clone = types.FunctionType(fn.__code__, scope, fn.__name__)
        clone.__qualname__ = fn.__qualname__
        clone.__module__ = fn.__module__
        scope[fn.__name__] = njit(cache=True, nogil=True, parallel=name in _PARALLEL, _nrt=name in _PARALLEL,
                                  inline="always" if name in _INLINED else "never")(clone)
    return scope


def poisson_counts(means, starts, stops, sd, tab, ps, csd=None, flicker=0.0, calibration=0.0):
    """Poisson deviates (float64, zero elsewhere) of the flat float32 `means` at the indices of
    each [starts[r], stops[r]) in order, drawn from one C stream (seed variable sd, shuffle
    table tab, statics ps) exactly as the C's loops draw them (_poisson_run); and their sum."""
    return poisson_draws(means, starts, stops, sd, tab, ps, csd, flicker, calibration)()


def _lgamma_table(means):
    """An empty (NaN) table of ln Gamma of integer deviates, up to well past the largest mean below
    1e6 (rarer deviates are computed)."""
    finite = means[np.isfinite(means) & (means <= 1.0e6)]
    top = float(finite.max()) if finite.size else 0.0
    return np.full(int(min(1.25 * top + 10.0 * math.sqrt(2.0 * max(top, 0.0)) + 64.0, 1 << 21)), np.nan)


def prepare_draws(means, sd, tab, ps, csd=None, flicker=0.0, calibration=0.0, parallel=True):
    """(draw, out): poisson_counts' parallel preparation now (parallel=False: none, the draws
    compute each mean's statics, for a worker that has time to spare); then draw(starts, stops)
    draws the deviates of those index ranges into the flat float64 `out`, in order, and returns
    the running sum of every deviate drawn so far (calls continue one stream and one sum: call
    them in order, from any one thread at a time; they launch no parallel kernel and release
    the GIL)."""
    means = np.ascontiguousarray(means, dtype=np.float32).ravel()
    scaled = flicker > 0.0 or calibration > 0.0 or not parallel
    setup = np.zeros((0 if scaled else means.size, 3))
    if not scaled:
        _impl("_poisson_setup")(means, setup)
    lgam = _lgamma_table(means)
    out = np.zeros(means.size)
    run = _impl("_poisson_run")
    total = [0.0]

    def draw(starts, stops):
        total[0] = float(run(means, np.asarray(starts, np.int64), np.asarray(stops, np.int64), sd,
                             sd if csd is None else csd, tab, ps, setup, lgam, float(flicker), float(calibration),
                             out, total[0]))
        return total[0]

    return draw, out


def poisson_draws(means, starts, stops, sd, tab, ps, csd=None, flicker=0.0, calibration=0.0, parallel=True):
    """poisson_counts in two steps: the parallel preparation now, the sequential draws when the
    returned function is called (as prepare_draws' draw)."""
    draw, out = prepare_draws(means, sd, tab, ps, csd, flicker, calibration, parallel)
    return lambda: (out, draw(starts, stops))


_NOISE_JIT = [None, False]  # [compiled scope, built?]


def _impl(name):
    """The compiled version of loop `name` (built once, on first use), else the Python one."""
    if not _NOISE_JIT[1]:
        _NOISE_JIT[0] = _build_jit()
        _NOISE_JIT[1] = True
    return (_NOISE_JIT[0] or globals())[name]


def new_table():
    """A fresh shuffle table (iy == 0: first use initialises it whatever the seed)."""
    return np.zeros(1 + _NTAB, dtype=np.int64)


def new_statics():
    """poidev/gaussdev statics of a stream: [sq, alxm, g, oldm, iset, gset] as the C keeps them,
    then _rejected's uniform drawn ahead [pending, its tan, seed variable and iy before it]."""
    ps = np.zeros(10)
    ps[3] = -1.0
    return ps


class Ran1:
    """The C `ran1(&idum)`.  `seed` is the C seed variable (e.g. -atoi(arg)); a seed <= 0
    re-initialises the shuffle table, after which the seed variable is positive.  Pass the
    same `table` to several generators to reproduce the C's shared static table."""

    def __init__(self, seed, table=None):
        self.sd = np.array([int(seed)], dtype=np.int64)
        self.tab = new_table() if table is None else table
        self.ps = new_statics()  # poidev/gaussdev statics tied to this stream

    @property
    def idum(self):
        return int(self.sd[0])

    def next(self):
        return _ran1(self.sd, self.tab)

    __call__ = next

    def gaussdev(self):
        return _gaussdev(self.sd, self.tab, self.ps)

    def poidev(self, xm):
        return _poidev(float(_F32(xm)), self.sd, self.tab, self.ps, self.ps[:0])


def poidev(xm, rng):
    """C `poidev(xm, &seed)`: Poisson deviate of mean float(xm) drawn from Ran1 `rng`."""
    return rng.poidev(xm)


def gaussdev(rng):
    """C `gaussdev(&seed)`: unit normal deviate drawn from Ran1 `rng`."""
    return rng.gaussdev()


def noise_image(float_image, seed, adc_offset, roi, table=None):
    """Poisson noise image as the C writes it.  Returns (uint16 image, photon sum, overloads).

    `roi` = (xmin, xmax, ymin, ymax), inclusive, fast = x.  Pixels are visited slow-major and
    pixels outside the ROI draw nothing and stay 0."""
    img = np.ascontiguousarray(float_image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError("noise_image needs a 2-D (slow, fast) image")
    noise = RowNoise(img.shape, seed, adc_offset, roi, table)
    noise.add(noise.y0, img[noise.y0:noise.y1 + 1, noise.x0:noise.x1 + 1])
    return noise.result()


class RowNoise:
    """noise_image fed block by block of ROI rows, in order, as a renderer finishes them: each
    block's sequential draws run on a worker thread (one C stream, in order) while the caller
    renders the next; `result()` waits and gives noise_image's (image, photons, overloads)."""

    def __init__(self, shape, seed, adc_offset, roi, table=None):
        self.h, self.w = shape
        self.x0, self.x1 = max(int(roi[0]), 0), min(int(roi[1]), self.w - 1)
        self.y0, self.y1 = max(int(roi[2]), 0), min(int(roi[3]), self.h - 1)
        self.adc = float(adc_offset)
        self.sd, self.tab = np.array([int(seed)], dtype=np.int64), new_table() if table is None else table
        self.ps = new_statics()
        self.counts = np.zeros((self.h, self.w))
        self.pending = []
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="noise")

    def add(self, first_row, block):
        """The float32 values of ROI rows first_row.. (columns x0..x1 of the ROI, in order)."""
        block = np.ascontiguousarray(block, dtype=np.float32)
        n, m = block.shape if block.ndim == 2 and block.shape[1] == self.x1 - self.x0 + 1 else (0, 0)
        starts = np.arange(n) * m
        # the worker computes each mean's statics: it waits for the renderer's rows anyway
        draw = poisson_draws(block, starts, starts + m, self.sd, self.tab, self.ps, parallel=False)
        self.pending.append((first_row, n, m, self.pool.submit(draw)))

    def result(self):
        self.pool.shutdown(wait=True)
        for first_row, n, m, future in self.pending:
            self.counts[first_row:first_row + n, self.x0:self.x0 + m] = future.result()[0].reshape(n, m)
        out = np.zeros((self.h, self.w), dtype=np.uint16)
        total, overloads = _impl("_to_adc")(self.counts, self.x0, self.x1, self.y0, self.y1, self.adc, out)
        return out, float(total), int(overloads)


def mosaic_rotation_umat(mosaicity, rng):
    """Random rotation on a spherical cap of size `mosaicity` (a C float): (9,) row-major."""
    r1 = 2.0 * rng.next() - 1.0
    r2 = 2.0 * rng.next() - 1.0
    r3 = 2.0 * rng.next() - 1.0
    xyrad = math.sqrt(1.0 - r2 * r2)
    # C: float * powf(float, float), all single precision.
    rot = float(_F32(mosaicity) * _powf(_F32(1.0 - r3 * r3), _F32(1.0 / 3.0)))
    v1 = xyrad * math.sin(math.pi * r1)
    v2 = xyrad * math.cos(math.pi * r1)
    v3 = r2
    c = math.cos(rot)
    s = math.sin(rot)
    t2 = 1.0 - c
    t6 = t2 * v1
    t7 = t6 * v2
    t11 = t6 * v3
    t19 = t2 * v2 * v3
    return np.array([
        c + t2 * (v1 * v1), t7 - s * v3, t11 + s * v2,
        t7 + s * v3, c + t2 * (v2 * v2), t19 - s * v1,
        t11 - s * v2, t19 + s * v1, c + t2 * (v3 * v3),
    ], dtype=np.float64)


def _norm(r):
    return math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])


def _unit(r):
    m = _norm(r)
    return [r[0] / m, r[1] / m, r[2] / m] if m > 0 else list(r)


def _cross_unit(a, b):
    return _unit([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def umat2misset(umat):
    """Missetting angles (rotx, roty, rotz), radians, of a rotation matrix, as the C derives them."""
    u = [float(v) for v in np.asarray(umat, dtype=np.float64).ravel()]
    x, y, z = u[0:3], u[3:6], u[6:9]
    mx, my, mz = _norm(x), _norm(y), _norm(z)
    x, y, z = _unit(x), _unit(y), _unit(z)
    if mx >= 0 and my <= 0 and mz <= 0:
        y, z = [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    if mx <= 0 and my >= 0 and mz <= 0:
        x, z = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    if mx <= 0 and my <= 0 and mz >= 0:
        x, y = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    # Rebuild empty rows from the other two (the C does this pass twice).
    for _ in range(2):
        xcy, ycz, zcx = _cross_unit(x, y), _cross_unit(y, z), _cross_unit(z, x)
        if mx <= 0:
            x = ycz
        if my <= 0:
            y = zcx
        if mz <= 0:
            z = xcy
    x, y, z = _unit(x), _unit(y), _unit(z)
    if z[0] * z[0] < 1.0:
        return (math.atan2(z[1], z[2]), math.atan2(-z[0], math.sqrt(z[1] * z[1] + z[2] * z[2])),
                math.atan2(y[0], x[0]))
    return math.atan2(1, 1) * 4, math.atan2(1, 1) * 2, math.atan2(x[1], -y[1])


def mosaic_umats(mosaic_spread_rad, domains, seed, table=None):
    """(domains, 3, 3) domain rotations from the mosaic seed.  Domain 0 is forced to identity
    after its three draws are consumed, as in the C."""
    rng = Ran1(seed, table)
    out = np.empty((max(int(domains), 0), 3, 3), dtype=np.float64)
    for d in range(out.shape[0]):
        out[d] = mosaic_rotation_umat(mosaic_spread_rad, rng).reshape(3, 3)
    if len(out):
        out[0] = np.eye(3)
    return out


def random_misset(seed, table=None):
    """C's `-misset random`: a rotation drawn with cap size 90 from the misset seed.
    Returns (umat (3, 3), (rotx, roty, rotz) radians)."""
    umat = mosaic_rotation_umat(90.0, Ran1(seed, table))
    return umat.reshape(3, 3), umat2misset(umat)


class SharedStreams:
    """Two C seed variables (noise, calibration) over one shuffle table and one set of
    poidev/gaussdev statics, as noisify.c's static variables make them."""

    def __init__(self, seed, calib_seed):
        self.sd = np.array([int(seed)], dtype=np.int64)
        self.csd = np.array([int(calib_seed)], dtype=np.int64)
        self.tab = new_table()
        self.ps = new_statics()

    def photon_counts(self, photons, flicker, calibration):
        """Poisson counts (float64 array) of the float32 photon image, pixel order, after the
        flicker and calibration factors; and their sum."""
        draw, out = self.prepare(photons, flicker, calibration)
        total = draw([0], [out.size])
        return out.reshape(np.shape(photons)), total

    def prepare(self, photons, flicker, calibration):
        """prepare_draws for the photon image's pixels in order: (draw(starts, stops), flat out)."""
        flat = np.ascontiguousarray(photons, dtype=np.float32).ravel()
        return prepare_draws(flat, self.sd, self.tab, self.ps, self.csd, flicker, calibration)

    def gaussians(self, n):
        out = np.zeros(int(n), dtype=np.float64)
        _impl("_gauss_stream")(self.sd, self.tab, self.ps, out)
        return out
