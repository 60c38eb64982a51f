"""Physics kernels: lattice transforms, polarization, structure-factor interpolation.

Every function is written so that forward values follow nanoBragg.c and gradients stay
finite at the removable singularities (sincg at integer h, sinc3 at 0, 2theta = 0).
"""
import math

import torch

_SINC3_EPS = 1e-3
# volume ratio correction between a cube and a sphere used by nanoBragg's ROUND shape
ROUND_SCALE = 0.723601254558268
GAUSS_WIDTH = 0.63
TOPHAT_RADIUS_SQR = 0.3969


def sincg(x, n):
    """Fourier transform of a 1-D grating of n slits: sin(n x) / sin(x); n at x = 0.

    Same evaluation as sincg_pi: the Chebyshev form for integer n (exact values and slopes at
    the zeros of sin(x)), reduced arguments otherwise."""
    return sincg_pi(x / math.pi, n)


# integer cell counts up to this may use the Chebyshev form (for differentiable h)
CHEBYSHEV_MAX_N = 24


def _integer_count(n):
    """The cell count as a Python int when it is a fixed integer, else None."""
    if isinstance(n, torch.Tensor):
        if n.requires_grad or n.numel() != 1:
            return None
        n = n.item()
    n = float(n)
    return int(n) if n == int(n) and n >= 1 else None


def sincg_pi(h, n, integer=None, polynomial=False):
    """sincg(pi h, n) = sin(n pi h) / sin(pi h).

    integer: n is a whole number (None: decided from its value). For an integer n this is a ratio
    of two sine polynomials of reduced arguments (n may then be a tensor: a compiled kernel takes
    the count as an input); while h is differentiated, U_{n-1}(cos pi h), the Chebyshev polynomial
    of the second kind, whose slopes stay exact right next to integer h.
    polynomial: the sines as polynomials (a compiled loop: no library call that spills registers)
    instead of the library's sine (eager: one pass over memory instead of a dozen)."""
    count = _integer_count(n) if integer is None else (n if integer else None)
    if count is None:
        return _sincg_pi_reduced(h, n)
    if isinstance(count, int) and count <= CHEBYSHEV_MAX_N and h.requires_grad and torch.is_grad_enabled():
        return _chebyshev(h, count)
    return _sincg_pi_integer(h, count, sin_pi if polynomial else _library_sin_pi)


def _chebyshev(h, count):
    c = cos_pi(h)
    if count == 1:
        return torch.ones_like(c)
    two_c = 2.0 * c
    prev, cur = torch.ones_like(c), two_c
    for _ in range(count - 2):
        prev, cur = cur, two_c * cur - prev
    return cur


def _library_sin_pi(r):
    return torch.sin(math.pi * r)


def _sincg_pi_integer(h, n, sine=None):
    """sin(n pi h) / sin(pi h) for a whole number n >= 1 (a number or a 0-d tensor).

    With h = m + r (m = round(h)) and n r = j + s (j = round(n r)), the ratio is
    (-1)^((n - 1) m + j) sin(pi s) / sin(pi r): both sines of arguments within pi/2, as
    polynomials (no library call in a compiled loop), exact n (-1)^((n - 1) m) at integer h."""
    m = torch.round(h.detach())
    r = h - m
    nr = n * r
    j = torch.round(nr.detach())
    s = nr - j
    at_peak = r == 0
    sine = sine or sin_pi
    den = torch.where(at_peak, torch.ones_like(r), sine(r))
    ratio = sine(s) / den
    parity = (n - 1) * m + j
    sign = 1.0 - 2.0 * (parity - 2.0 * torch.floor(0.5 * parity))  # (-1)^parity
    return sign * torch.where(at_peak, torch.zeros_like(r) + n, ratio)


# Taylor coefficients of sin(x) / x in powers of x^2, highest first; with |x| <= pi/2 the first
# omitted term is below 1e-18 (float64: 11 terms) or 3e-9 (float32: 7 terms)
_SIN_TAYLOR = [(-1) ** k / math.factorial(2 * k + 1) for k in range(10, -1, -1)]


def sin_pi(r):
    """sin(pi r) for |r| <= 1/2 as pi r times a polynomial in r^2 (relative accuracy at tiny r)."""
    x = math.pi * r
    x2 = x * x
    coefficients = _SIN_TAYLOR if r.dtype == torch.float64 else _SIN_TAYLOR[-7:]
    poly = torch.full_like(x2, coefficients[0])
    for coefficient in coefficients[1:]:
        poly = poly * x2 + coefficient
    return x * poly


# Taylor coefficients of cos(x) in powers of x^2, highest first; with |x| <= pi/2 the first
# omitted term is below 2e-17 (float64: 11 terms) or 7e-9 (float32: 7 terms)
_COS_TAYLOR = [(-1) ** k / math.factorial(2 * k) for k in range(10, -1, -1)]


def cos_pi(h):
    """cos(pi h) as (-1)^m cos(pi r) with m = round(h), |r| <= 1/2, the cosine a polynomial in r^2.

    Exact (+1 or -1) at integer h. Plain multiply-adds instead of a library call: a compiled loop
    keeps everything in registers (a vector cos call spills them all)."""
    m = torch.round(h.detach())
    r = h - m
    x2 = (math.pi * math.pi) * (r * r)
    coefficients = _COS_TAYLOR if h.dtype == torch.float64 else _COS_TAYLOR[-7:]
    poly = torch.full_like(x2, coefficients[0])
    for coefficient in coefficients[1:]:
        poly = poly * x2 + coefficient
    sign = 1.0 - 2.0 * (m - 2.0 * torch.floor(0.5 * m))  # (-1)^m
    return sign * poly


# |h - round(h)| below this takes the limit formula; the reduced ratio is accurate right down to it
_REDUCED_EPS = 1e-10


def _sincg_pi_reduced(h, n):
    """sin(n pi h) / sin(pi h) for a real-valued or differentiable n.

    Both sines are taken of reduced arguments (h = k + d, n k = j + f with k, j integers), so the
    ratio keeps full precision next to integer h instead of cancelling digits of sin(pi h); at
    integer h the L'Hopital limit n cos(n pi h) / cos(pi h) is used (exact n at h = 0)."""
    k = torch.round(h.detach())
    d = h - k
    nk = n * k
    j = torch.round(nk.detach())
    f = nk - j
    sign = 1.0 - 2.0 * torch.remainder(j - k, 2.0)
    arg = math.pi * (f + n * d)
    small = d.abs() < _REDUCED_EPS
    den = torch.sin(math.pi * torch.where(small, torch.ones_like(d) * 0.5, d))
    ratio = torch.sin(arg) / den
    limit = n * torch.cos(arg) / torch.cos(math.pi * torch.where(small, d, torch.zeros_like(d)))
    return sign * torch.where(small, limit, ratio)


def sinc3_sq(u):
    """Fourier transform of a sphere, 3 (sin x / x - cos x) / x^2, as a function of u = x^2."""
    small = u < _SINC3_EPS ** 2
    safe_u = torch.where(small, torch.ones_like(u), u)
    x = torch.sqrt(safe_u)
    full = 3.0 * (torch.sin(x) / x - torch.cos(x)) / safe_u
    series = 1.0 - u / 10.0 + u * u / 280.0
    return torch.where(small, series, full)


def lattice_factor(shape, h, k, l, na, nb, nc, fudge, dstar_sqr=None, runtime_counts=None):
    """F_latt for one shape: 'square' uses fractional hkl; the others the nearest-relp distance.

    `dstar_sqr` is |delta h a* + delta k b* + delta l c*|^2 (nanoBragg's rad_star_sqr without N^6).
    runtime_counts: the counts are 0-d tensors whose values are not looked at (a compiled kernel's
    inputs): "integer" (whole numbers, already raised to at least 1) or "real"; None: plain values.
    """
    if shape == "square":
        f = torch.ones_like(h)
        # nanoBragg skips axes with N <= 1 (sincg would be exactly 1 there anyway for N = 1)
        for idx, n in zip((h, k, l), (na, nb, nc)):
            if runtime_counts is not None:
                f = f * sincg_pi(idx, n, integer=runtime_counts == "integer", polynomial=True)
            elif _gt_one(n):
                f = f * sincg_pi(idx, n)
        return f
    volume = na * nb * nc
    if shape == "round":
        h0, k0, l0 = _nearest(h), _nearest(k), _nearest(l)
        hrad = (h - h0) ** 2 * na * na + (k - k0) ** 2 * nb * nb + (l - l0) ** 2 * nc * nc
        return volume * ROUND_SCALE * sinc3_sq(math.pi ** 2 * hrad * fudge)
    rad = dstar_sqr * (na * na * nb * nb * nc * nc)
    if shape == "gauss":
        return volume * torch.exp(-(rad / GAUSS_WIDTH * fudge))
    if shape == "tophat":
        return volume * (rad * fudge < TOPHAT_RADIUS_SQR).to(h.dtype)
    raise ValueError(f"unknown crystal shape {shape!r}")


def _gt_one(n):
    if isinstance(n, torch.Tensor):
        # a differentiable N keeps its factor even at exactly 1 (value identical there)
        return n.requires_grad or bool((n > 1).all())
    return n > 1


def _nearest(x):
    """nanoBragg's nearest integer: ceil(x - 0.5) (no gradient)."""
    return torch.ceil(x.detach() - 0.5)


def polarization_factor(kahn, incident, diffracted, axis):
    """Kahn polarization factor for unit incident/diffracted vectors and E-vector `axis`.

    cos(2 psi) is formed from the projections directly, so 2theta = 0 has a finite gradient.
    """
    from .geometry.vectors import cross, dot, unitize

    cos2t = dot(incident, diffracted)
    cos2t_sqr = cos2t * cos2t
    sin2t_sqr = 1 - cos2t_sqr
    if isinstance(kahn, (int, float)) and kahn == 0.0:
        return 0.5 * (1.0 + cos2t_sqr)  # unpolarized: the E-vector angle drops out
    b_in, _ = unitize(cross(axis.expand_as(incident), incident))
    e_in, _ = unitize(cross(incident, b_in))
    e_out = dot(diffracted, e_in)
    b_out = dot(diffracted, b_in)
    r2 = e_out * e_out + b_out * b_out
    tiny = r2 <= 0
    safe_r2 = torch.where(tiny, torch.ones_like(r2), r2)
    cos2psi = torch.where(tiny, torch.ones_like(r2), (e_out * e_out - b_out * b_out) / safe_r2)
    return 0.5 * (1.0 + cos2t_sqr - kahn * cos2psi * sin2t_sqr)


def lagrange_weights(x, base):
    """Cubic Lagrange weights on the integer nodes base-1 .. base+2 for position x (..., 4)."""
    nodes = [base - 1, base, base + 1, base + 2]
    ws = []
    for i in range(4):
        w = torch.ones_like(x)
        for j in range(4):
            if j != i:
                w = w * (x - nodes[j]) / float(i - j)
        ws.append(w)
    return torch.stack(ws, -1)


def tricubic(grid, h, k, l, h_min, k_min, l_min):
    """Tricubic Lagrange interpolation of grid at fractional (h, k, l); indices must be in range."""
    hf, kf, lf = torch.floor(h.detach()), torch.floor(k.detach()), torch.floor(l.detach())
    wh, wk, wl = lagrange_weights(h, hf), lagrange_weights(k, kf), lagrange_weights(l, lf)
    off = torch.arange(-1, 3, device=h.device)
    ih = (hf.long() - h_min).unsqueeze(-1) + off
    ik = (kf.long() - k_min).unsqueeze(-1) + off
    il = (lf.long() - l_min).unsqueeze(-1) + off
    nk, nl = grid.shape[1], grid.shape[2]
    flat = grid.reshape(-1)
    idx = (ih[..., :, None, None] * nk + ik[..., None, :, None]) * nl + il[..., None, None, :]
    vals = flat[idx.clamp(0, flat.numel() - 1)]
    return torch.einsum("...ijk,...i,...j,...k->...", vals, wh, wk, wl)
