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
        fac = float(_F32(math.sqrt(-2.0 * math.log(rsq) / rsq)))
        ps[5] = float(_F32(v1 * fac))
        ps[4] = 1.0
        return float(_F32(v2 * fac))
    ps[4] = 0.0
    return ps[5]


def _poidev(xm, sd, tab, ps):
    """Poisson deviate of the float32 mean xm (returned as the C float value)."""
    if xm > 1.0e6:
        return float(_F32(xm + math.sqrt(xm) * _gaussdev(sd, tab, ps)))
    if xm < 12.0:
        if xm != ps[3]:
            ps[3] = xm
            ps[2] = float(_F32(math.exp(-xm)))
        em = -1.0
        t = 1.0
        while True:
            em += 1.0
            t = float(_F32(t * _ran1(sd, tab)))
            if not (t > ps[2]):
                return em
    if xm != ps[3]:
        ps[3] = xm
        ps[0] = float(_F32(math.sqrt(2.0 * xm)))
        ps[1] = float(_F32(math.log(xm)))
        ps[2] = float(_F32(float(_F32(xm * ps[1])) - _gammln(_F32(xm + 1.0))))
    while True:
        while True:
            y = float(_F32(math.tan(math.pi * _ran1(sd, tab))))
            em = float(_F32(float(_F32(ps[0] * y)) + xm))
            if not (em < 0.0):
                break
        em = float(np.floor(em))  # floor of a float32 value is float32-exact
        a = float(_F32(em * ps[1]))
        b = float(_F32(a - _gammln(_F32(em + 1.0))))
        c = float(_F32(b - ps[2]))
        t = float(_F32(0.9 * (1.0 + float(_F32(y * y))) * math.exp(c)))
        if not (_ran1(sd, tab) > t):
            return em


def _c_u16(x):
    """C `(unsigned short)` of a double as gcc on x86-64 does it (via int32, low 16 bits)."""
    if not (-2147483648.0 < x < 2147483648.0):
        return 0
    return int(x) & 0xFFFF


def _noise_loop(img, sd, tab, adc, x0, x1, y0, y1, out):
    ps = np.zeros(6)
    ps[3] = -1.0
    total = 0.0
    overloads = 0
    for s in range(img.shape[0]):
        for f in range(img.shape[1]):
            if f < x0 or f > x1 or s < y0 or s > y1:
                continue  # outside the ROI: no draws, pixel stays 0
            test = _poidev(float(img[s, f]), sd, tab, ps)
            total += test
            test += adc
            if test > 65535.0:
                test = 65535.0
                overloads += 1
            out[s, f] = _c_u16(test)
    return total, overloads


def _detector_noise_loop(photons, sd, csd, tab, ps, flicker, calibration, out):
    """noisify's photon loop: optional flicker (noise seed) and calibration (calibration seed)
    factors, then a Poisson count, pixel by pixel; both seeds share the table and Gaussian spare."""
    total = 0.0
    for i in range(photons.shape[0]):
        photons0 = float(photons[i])
        if flicker > 0.0:
            photons0 *= 1.0 + flicker * _gaussdev(sd, tab, ps)
        if calibration > 0.0:
            photons0 *= 1.0 + calibration * _gaussdev(csd, tab, ps)
        out[i] = _poidev(float(_F32(photons0)), sd, tab, ps)
        total += out[i]
    return total


def _gauss_stream(sd, tab, ps, out):
    """The next out.shape[0] unit Gaussian deviates of one seed (noisify's read-out noise)."""
    for i in range(out.shape[0]):
        out[i] = _gaussdev(sd, tab, ps)


_JITTED = ("_ran1", "_gammln", "_gaussdev", "_poidev", "_c_u16", "_noise_loop", "_detector_noise_loop",
           "_gauss_stream")


def _build_jit():
    """Compile the functions above with numba, each resolving its callees to compiled ones."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - numba is a dependency; plain Python still works
        return None
    scope = dict(globals())
    for name in _JITTED:
        fn = globals()[name]
        clone = types.FunctionType(fn.__code__, scope, fn.__name__)
        clone.__qualname__ = fn.__qualname__
        clone.__module__ = fn.__module__
        scope[fn.__name__] = njit(cache=True)(clone)
    return scope


_NOISE_JIT = [None, False]  # [compiled scope, built?]


def _impl(name):
    """The compiled version of loop `name` (built once, on first use), else the Python one."""
    if not _NOISE_JIT[1]:
        _NOISE_JIT[0] = _build_jit()
        _NOISE_JIT[1] = True
    return (_NOISE_JIT[0] or globals())[name]


def _noise_impl():
    return _impl("_noise_loop")


def new_table():
    """A fresh shuffle table (iy == 0: first use initialises it whatever the seed)."""
    return np.zeros(1 + _NTAB, dtype=np.int64)


class Ran1:
    """The C `ran1(&idum)`.  `seed` is the C seed variable (e.g. -atoi(arg)); a seed <= 0
    re-initialises the shuffle table, after which the seed variable is positive.  Pass the
    same `table` to several generators to reproduce the C's shared static table."""

    def __init__(self, seed, table=None):
        self.sd = np.array([int(seed)], dtype=np.int64)
        self.tab = new_table() if table is None else table
        self.ps = np.zeros(6)  # poidev/gaussdev statics tied to this stream
        self.ps[3] = -1.0

    @property
    def idum(self):
        return int(self.sd[0])

    def next(self):
        return _ran1(self.sd, self.tab)

    __call__ = next

    def gaussdev(self):
        return _gaussdev(self.sd, self.tab, self.ps)

    def poidev(self, xm):
        return _poidev(float(_F32(xm)), self.sd, self.tab, self.ps)


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
    out = np.zeros(img.shape, dtype=np.uint16)
    sd = np.array([int(seed)], dtype=np.int64)
    tab = new_table() if table is None else table
    x0, x1, y0, y1 = (int(v) for v in roi)
    total, overloads = _noise_impl()(img, sd, tab, float(adc_offset), x0, x1, y0, y1, out)
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
        self.ps = np.zeros(6)
        self.ps[3] = -1.0

    def photon_counts(self, photons, flicker, calibration):
        """Poisson counts (float64 array) of the float32 photon image, pixel order, after the
        flicker and calibration factors; and their sum."""
        flat = np.ascontiguousarray(photons, dtype=np.float32).ravel()
        out = np.zeros(flat.size, dtype=np.float64)
        total = _impl("_detector_noise_loop")(flat, self.sd, self.csd, self.tab, self.ps, float(flicker),
                                              float(calibration), out)
        return out.reshape(np.shape(photons)), float(total)

    def gaussians(self, n):
        out = np.zeros(int(n), dtype=np.float64)
        _impl("_gauss_stream")(self.sd, self.tab, self.ps, out)
        return out
