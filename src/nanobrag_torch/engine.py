"""The vectorized diffraction kernel: pixels in, photons per pixel out.

One call renders a chunk of pixels over every detector layer, sub-pixel, source, phi step and
mosaic domain at once, reproducing nanoBragg.c's accumulation rules:
- omega, polarization and capture fraction are applied once per pixel from the value nanoBragg
  would hold at the end of its loops (first sub-pixel; last layer for the capture fraction),
  unless the matching -oversample_* flag asks for the per-term running-product rule;
- tricubic interpolation is switched off for the rest of the run at the first term (in C loop
  order) whose 4x4x4 neighbourhood leaves the HKL grid; that term uses default_F.
"""
from dataclasses import dataclass

import torch

from .geometry.vectors import dot, norm, unitize
from .physics import lattice_factor, polarization_factor, tricubic

R_E_SQR = 7.94079248018965e-30  # Thomson cross section (m^2)


@dataclass
class Flags:
    """The per-run switches and scale of the engine: -oversample_thick/polar/omega, polarization
    (nopolar, Kahn factor), dmin (m), water background I_bg (photons before the final scale),
    fluence (photons/m^2) and `steps`, the count nanoBragg divides by (sources x mosaic domains x
    phi steps x oversample^2)."""

    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    nopolar: bool = False
    kahn: object = 0.0
    dmin: float = 0.0
    water_background: object = 0.0  # I_bg, photons before the final scale
    fluence: object = 1.0
    steps: int = 1


class InterpolationState:
    """Run-long state carried across pixel chunks in C loop order.

    enabled: nanoBragg's 'interpolate' switch (it can only turn off);
    phi_first_pending: the first rendered term still sees the true phi = 0 orientation."""

    def __init__(self, enabled, phi_first_rot=None, c_rules=True):
        """c_rules: nanoBragg.c's rules below (False under -compat fixed)."""
        self.enabled = bool(enabled)
        # nanoBragg.c's switch-off lasts for the rest of the run; -compat fixed: per term only
        self.sticky = c_rules
        # nanoBragg.c's -oversample_* rule multiplies the running sum; -compat fixed: each term
        self.running_product = c_rules
        self.warning = None  # (h, k, l, h0, k0, l0) of the first out-of-range term
        self.phi_first_rot = phi_first_rot  # true phi = 0 vectors (domains, 3, 3) while pending
        self.phi_first_pending = phi_first_rot is not None


def _miller(q, vectors):
    """h, k, l = q . a, q . b, q . c for every lattice orientation: vectors (K, 3, 3) -> (..., K)."""
    qx, qy, qz = q[..., 0:1], q[..., 1:2], q[..., 2:3]
    return tuple(qx * vectors[:, v, 0] + qy * vectors[:, v, 1] + qz * vectors[:, v, 2] for v in range(3))


def _first_term_true_phi(hkl, q, src_ok, state):
    """Give the first rendered (pixel, layer, sub-pixel, source) its true phi = 0 orientation.

    hkl: (h, k, l), each (..., P*M) with phi-major order, so phi = 0 is the first M entries."""
    ok = src_ok.reshape(-1)
    hits = torch.nonzero(ok)
    if hits.numel() == 0:
        return hkl
    pick = torch.zeros(ok.numel(), dtype=torch.bool, device=ok.device)
    pick[int(hits[0])] = True
    pick = pick.reshape(src_ok.shape)[..., None]
    domains = state.phi_first_rot.shape[0]
    exact = _miller(q, state.phi_first_rot)
    state.phi_first_pending = False
    return tuple(torch.cat((torch.where(pick, e, x[..., :domains]), x[..., domains:]), -1)
                 for e, x in zip(exact, hkl))


def structure_factors(crystal, h, k, l, skip, state):
    """F_cell for every term, following the nearest / interpolated / fallback rules."""
    dflt = torch.as_tensor(crystal.default_F, dtype=h.dtype, device=h.device)
    if crystal.Fhkl is None or crystal.hkl_count == 0:
        return dflt  # no reflections read: every term takes default_F (broadcasts)
    h0, k0, l0 = (torch.ceil(x.detach() - 0.5) for x in (h, k, l))
    nearest = _nearest_F(crystal, h0, k0, l0, dflt)
    if not state.enabled:
        return nearest
    grid = crystal.Fhkl
    hmin, kmin, lmin = crystal.hkl_min
    hr, kr, lr = grid.shape
    hd, kd, ld = h.detach(), k.detach(), l.detach()
    oor = ((hd - hmin + 3) > hr) | (hd - 2 < hmin) | ((kd - kmin + 3) > kr) | (kd - 2 < kmin) \
        | ((ld - lmin + 3) > lr) | (ld - 2 < lmin)
    if not state.sticky:
        return torch.where(oor, nearest, _tricubic_inside(crystal, h, k, l, oor))
    trigger = (oor & ~skip).reshape(-1)
    hits = torch.nonzero(trigger)
    interp = _tricubic_inside(crystal, h, k, l, oor)
    if hits.numel() == 0:
        return interp
    first = int(hits[0])
    state.enabled = False
    flat = lambda x: x.reshape(-1)[first].item()
    state.warning = (flat(hd), flat(kd), flat(ld), int(flat(h0)), int(flat(k0)), int(flat(l0)))
    order = torch.arange(trigger.numel(), device=h.device).reshape(h.shape)
    out = torch.where(order < first, interp, nearest)
    return torch.where(order == first, dflt.expand_as(out), out)


def _own_factors(bg, term, mult, skip):
    """-compat fixed's -oversample_* rule: each term times its own factors, the background times
    their mean over the pixel's rendered terms (nanoBragg.c multiplies the running sum instead)."""
    rendered = (~skip).sum(-1)
    mean = torch.where(skip, torch.zeros_like(mult), mult).sum(-1) / rendered.clamp(min=1)
    return bg * torch.where(rendered > 0, mean, torch.ones_like(mean)) + (term * mult).sum(-1)


def _tricubic_inside(crystal, h, k, l, outside):
    """Tricubic values where the 4x4x4 neighbourhood is inside the grid (a safe index elsewhere)."""
    hmin, kmin, lmin = crystal.hkl_min
    safe = ~outside
    return tricubic(crystal.Fhkl, torch.where(safe, h, h.new_zeros(()) + hmin + 1),
                    torch.where(safe, k, k.new_zeros(()) + kmin + 1),
                    torch.where(safe, l, l.new_zeros(()) + lmin + 1), hmin, kmin, lmin)


def _value(x):
    """Plain number for control flow (never part of the graph)."""
    return float(x.detach()) if torch.is_tensor(x) else float(x)


def _nearest_F(crystal, h0, k0, l0, dflt):
    grid = crystal.Fhkl
    if grid is None or crystal.hkl_count == 0:
        return dflt.expand_as(h0)
    hmin, kmin, lmin = crystal.hkl_min
    hr, kr, lr = grid.shape
    if crystal.hkl_bordered:
        ih, ik, il = ((x - x_min).clamp(0, size - 1).to(torch.int32)
                      for x, x_min, size in ((h0, hmin, hr), (k0, kmin, kr), (l0, lmin, lr)))
        return grid.reshape(-1)[(ih * kr + ik) * lr + il]
    # 32-bit index arithmetic: half the vector work of 64-bit in a compiled loop (a grid of
    # 2^31 structure factors would not fit in memory anyway); clamped first so that no index
    # overflows, keeping out-of-range ones out of range
    ih, ik, il = ((x - x_min).clamp(-1, size).to(torch.int32)
                  for x, x_min, size in ((h0, hmin, hr), (k0, kmin, kr), (l0, lmin, lr)))
    inside = (ih >= 0) & (ih < hr) & (ik >= 0) & (ik < kr) & (il >= 0) & (il < lr)
    idx = (ih.clamp(0, hr - 1) * kr + ik.clamp(0, kr - 1)) * lr + il.clamp(0, lr - 1)
    vals = grid.reshape(-1)[idx]
    return torch.where(inside, vals, dflt.expand_as(vals))


def _omega_per_pixel(omega, flags):
    """Each pixel's share of nanoBragg's solid-angle sum (its value is held for every sub-pixel)."""
    if flags.oversample_omega:
        return omega.sum((1, 2))
    return omega[:, 0, 0] * (omega.shape[1] * omega.shape[2])


def render_pixels(slow, fast, geo, detector, incident, wavelengths, weight_factor, rot, crystal, flags, state,
                  table=None):
    """render() for pixel indices (positions built here), without diagnostics."""
    pos = detector.positions(geo, slow, fast)
    if hasattr(detector, "chunk_geometry"):  # several panels: each pixel takes its own panel's values
        geo = detector.chunk_geometry(geo, slow)
    return render(pos, geo, detector, incident, wavelengths, weight_factor, rot, crystal, flags, state,
                  diagnostics=False, table=table)


def plain_pixels(slow, fast, geo, detector, incident, wavelengths, weight_factor, rot, crystal, flags, table=None):
    """(values, small per-pixel quantities) on the plain path: no per-term state, no diagnostics.

    A pure function from pixel indices to photons, so the simulator may hand a compiled copy of
    this very function the whole per-pixel reduction."""
    return render_pixels(slow, fast, geo, detector, incident, wavelengths, weight_factor, rot, crystal, flags,
                         _NO_INTERPOLATION, table)


def _lattice(crystal, h, k, l):
    """F_latt for every term (square: sincg products; other shapes: distance to the nearest relp)."""
    # the compiled kernel's crystal holds its counts as input tensors (see fused.PixelKernel)
    runtime = getattr(crystal, "runtime_counts", None)
    if crystal.shape == "square":
        return lattice_factor("square", h, k, l, crystal.Na, crystal.Nb, crystal.Nc, crystal.fudge,
                              runtime_counts=runtime)
    dh, dk, dl = (x - torch.ceil(x.detach() - 0.5) for x in (h, k, l))
    rs = crystal.recip
    dx = dh * rs[0, 0] + dk * rs[1, 0] + dl * rs[2, 0]
    dy = dh * rs[0, 1] + dk * rs[1, 1] + dl * rs[2, 1]
    dz = dh * rs[0, 2] + dk * rs[1, 2] + dl * rs[2, 2]
    return lattice_factor(crystal.shape, h, k, l, crystal.Na, crystal.Nb, crystal.Nc, crystal.fudge,
                          dstar_sqr=dx * dx + dy * dy + dz * dz)


_NO_INTERPOLATION = InterpolationState(False)


def scattering_vectors(diffracted, incident, wavelengths):
    """q = (d - i) / lambda for every (pixel, layer, sub-pixel) x source: (..., N, 3) in 1/m."""
    return (diffracted.unsqueeze(-2) - incident) / wavelengths.unsqueeze(-1)


def lattice_sum(diffracted, incident, wavelengths, vectors, crystal, weights=None):
    """Per source: sum of F_cell^2 F_latt^2 over lattice orientations, times the source's weight.

    diffracted: (..., 3) unit vectors; returns (..., N). weights: (N,) or None."""
    q = scattering_vectors(diffracted, incident, wavelengths)
    h, k, l = _miller(q, vectors)
    f_latt = _lattice(crystal, h, k, l)
    f_cell = structure_factors(crystal, h, k, l, None, _NO_INTERPOLATION)
    by_source = (f_cell * f_cell * f_latt * f_latt).sum(-1)  # (..., N)
    return by_source if weights is None else by_source * weights


TABLE_ROWS = 13
# pixel x term evaluations per block of the eager lattice sum (its temporaries stay in cache)
EAGER_BLOCK = 1 << 16


def term_table(incident, wavelengths, vectors, weights=None):
    """What each (source, orientation) term j (source-major) needs, one row per quantity: (13, N*K).

    Rows 0-8: a/lambda, b/lambda, c/lambda (x, y, z each); rows 9-11: (i.a, i.b, i.c)/lambda; row 12:
    the source's weight. Then h = d.a/lambda - i.a/lambda = q.a for a unit diffracted vector d, so
    the sum over sources and orientations is one contiguous axis (a compiler's vector loop)."""
    scaled = vectors[None] / wavelengths[:, None, None, None]  # (N, K, 3 vectors, 3 coordinates)
    offsets = (incident[:, None, None, 0] * scaled[..., 0] + incident[:, None, None, 1] * scaled[..., 1]
               + incident[:, None, None, 2] * scaled[..., 2])  # (N, K, 3)
    n, k = scaled.shape[:2]
    w = torch.ones_like(wavelengths) if weights is None else weights
    rows = [scaled[..., v, c] for v in range(3) for c in range(3)] + [offsets[..., v] for v in range(3)]
    rows.append(w[:, None].expand(n, k))
    return torch.stack([r.reshape(n * k) for r in rows])


def table_lattice_sum(diffracted, table, crystal):
    """Sum of weight x F_cell^2 F_latt^2 over every (source, orientation) term of `table` (see
    term_table): (..., 3) unit diffracted vectors -> (...). The hot loop of the simulator.

    Terms run along the first axis and sub-pixels along the last, so that a compiled loop is
    vectorized over sub-pixels and sums each term into its own lanes: a few terms per pixel (a
    mosaic still) then fill every lane, where a vector over the terms would be mostly empty."""
    flat = diffracted.reshape(-1, 3)
    dx, dy, dz = flat[:, 0], flat[:, 1], flat[:, 2]

    def terms(rows):
        h, k, l = (rows[3 * v] * dx + rows[3 * v + 1] * dy + rows[3 * v + 2] * dz - rows[9 + v] for v in range(3))
        f_latt = _lattice(crystal, h, k, l)
        f_cell = structure_factors(crystal, h, k, l, None, _NO_INTERPOLATION)
        return f_cell * f_cell * f_latt * f_latt * rows[12]

    rows = table[:, :, None]
    # sizes are looked at only when not traced: a test on a symbolic size would fix its value
    step = None if _traced(flat) else max(1, EAGER_BLOCK // max(1, flat.shape[0]))
    if step is None or step >= table.shape[1]:
        values = terms(rows)
    else:
        # a few terms at a time, so that the dozens of elementwise passes over them stay in the
        # core's cache (2x quicker than passes over a whole chunk); the one sum over the terms
        # below is the same call on the same values, hence the same bits
        values = torch.cat([terms(rows[:, j:j + step]) for j in range(0, table.shape[1], step)])
    return values.sum(0).reshape(diffracted.shape[:-1])


def _traced(x):
    """Whether this code is being compiled or exported (one loop nest: no blocks there)."""
    return torch.compiler.is_compiling() or not isinstance(x.shape[0], int)


def _table_intensity(diffracted, table, crystal, bg):
    """bg + the lattice sum over the term table and the pixel's layers and sub-pixels: (n,)."""
    summed = table_lattice_sum(diffracted, table, crystal)  # (n, T, S)
    return bg + summed.reshape(summed.shape[0], -1).sum(-1)


def plain_factors(pos, geo, detector, incident, flags):
    """What the plain path (no dmin cut) needs of each pixel besides the term table: unit diffracted
    vectors (n, T, S, 3), solid angle, capture fraction and polarization in the (n, T, S) shapes
    that _pixel_scale reads, and omega_pixel. They depend on the detector, the first source's
    direction and the polarization settings only, so a series whose frames change only the
    crystal's orientations (its term table) computes them once (see factor_cache)."""
    diffracted, _, omega, capture = _pixel_factors(pos, geo, detector)
    shape = diffracted.shape[:-1] + incident.shape[:1]
    _, polar_first = _polarization(flags, incident, diffracted, shape, geo["polar_axis"], False)
    return dict(diffracted=diffracted, omega=omega[:, :1, :1], capture=capture[:, -1:, :1], polar=polar_first,
                omega_pixel=_omega_per_pixel(omega, flags))


def factor_pixels(factors, table, crystal, flags):
    """The plain path's photons (n,) from plain_factors: the lattice sum and the final scale, with
    the same operations in the same order as render(), hence the same numbers."""
    diffracted = factors["diffracted"]
    bg = torch.as_tensor(flags.water_background, dtype=diffracted.dtype, device=diffracted.device)
    value = R_E_SQR * flags.fluence * _table_intensity(diffracted, table, crystal, bg) / flags.steps
    return _pixel_scale(value, factors["capture"], None, factors["polar"], None, factors["omega"], flags)[0]


def render(pos, geo, detector, incident, wavelengths, weight_factor, rot, crystal, flags, state,
           diagnostics=True, table=None):
    """Photons for each pixel of a chunk.

    pos: (n, T, S, 3) sub-pixel positions; incident: (N, 3) unit vectors; wavelengths: (N,) m;
    weight_factor: (N,) or None; rot: (phisteps, domains, 3, 3) real vectors in metres;
    table: their term_table (made here when needed and not given).
    Returns (image values (n,), diagnostics dict)."""
    diffracted, airpath, omega, capture = _pixel_factors(pos, geo, detector)
    shape = diffracted.shape[:-1] + incident.shape[:1]  # (n, T, S, N)
    running = flags.oversample_thick or flags.oversample_polar or flags.oversample_omega
    plain = not (running or state.enabled or state.phi_first_pending or diagnostics)
    # the plain path forms q inside the fused lattice sum, so it never sits in memory
    q = None if plain and flags.dmin <= 0 else scattering_vectors(diffracted, incident, wavelengths)
    stol = 0.5 * norm(q) if flags.dmin > 0 or diagnostics else None
    if flags.dmin > 0:
        src_ok = ~((stol > 0) & (flags.dmin > 0.5 / torch.where(stol > 0, stol, torch.ones_like(stol))))
    else:
        src_ok = torch.ones(shape, dtype=torch.bool, device=pos.device)
    polar, polar_first = _polarization(flags, incident, diffracted, shape, geo["polar_axis"], diagnostics)

    # Miller indices with (phi, domain) flattened last: a long contiguous inner axis that the
    # compiler vectorizes; each index is summed in nanoBragg's x, y, z order
    P, M = rot.shape[0], rot.shape[1]
    vectors = rot.reshape(P * M, 3, 3)
    bg = torch.as_tensor(flags.water_background, dtype=pos.dtype, device=pos.device)
    if plain and flags.dmin <= 0:
        # the plain path without a dmin cut sums sources inside the lattice sum, with their weights
        table = term_table(incident, wavelengths, vectors, weight_factor) if table is None else table
        intensity = _table_intensity(diffracted, table, crystal, bg)
    elif plain:
        per_source = lattice_sum(diffracted, incident, wavelengths, vectors, crystal)
        intensity = _sum_sources(per_source, weight_factor, src_ok, flags, bg)
    else:
        h, k, l, f_cell, f_latt, skip = _terms(q, vectors, crystal, flags, state, src_ok, running)
        term = f_cell * f_cell * f_latt * f_latt
        if running:
            mult = _running_factors(shape, capture, polar, omega, flags, pos)
            intensity = _running_sum(term, skip, mult, weight_factor, bg, state)
        else:
            intensity = _sum_sources(term.sum(-1), weight_factor, src_ok, flags, bg)  # sources (n, T, S, N)

    value = R_E_SQR * flags.fluence * intensity / flags.steps
    value, polar_final = _pixel_scale(value, capture, polar, polar_first, src_ok, omega, flags)
    if not diagnostics:
        return value, dict(omega=omega, omega_pixel=_omega_per_pixel(omega, flags), diffracted=diffracted)
    split = lambda x: x.expand_as(h).reshape(*h.shape[:-1], P, M)  # back to (..., phi, domain)
    diag = dict(omega=omega, capture=capture, polar=polar_final, stol=stol, h=split(h), k=split(k), l=split(l),
                f_cell=split(f_cell), f_latt=split(f_latt), intensity=intensity, airpath=airpath,
                diffracted=diffracted)
    return value, diag


def _pixel_factors(pos, geo, detector):
    """Unit diffracted vectors, air paths, solid angles and per-layer capture fractions (several
    panels bring their own pixel size, thickness and attenuation in `geo`)."""
    diffracted, airpath = unitize(pos)
    ps = geo["pixel_size"] if "pixel_size" in geo else detector.t(detector.pixel_size)
    if detector.point_pixel:
        omega = 1.0 / (airpath * airpath)
    else:
        omega = ps * ps / airpath / airpath * geo["close_distance"] / airpath
    T = pos.shape[1]
    thick = geo["thick"] if "thick" in geo else detector.thicksteps and _value(detector.thickness) != 0.0
    if thick:
        parallax = dot(diffracted, geo["odet"])
        step_mu = geo["step_mu"] if "step_mu" in geo else detector.t(detector.thickstep) * detector.t(detector.mu)
        layer = torch.arange(T, dtype=pos.dtype, device=pos.device)[None, :, None]
        capture = torch.exp(-layer * step_mu / parallax) - torch.exp(-(layer + 1) * step_mu / parallax)
    else:
        capture = torch.ones_like(airpath[:, :1, :1]).expand_as(airpath)
    return diffracted, airpath, omega, capture


def _polarization(flags, incident, diffracted, shape, axis, diagnostics):
    """(per-term polarization or None, first-source polarization per pixel or None).

    nanoBragg computes polarization once per pixel (first rendered source) unless -oversample_polar."""
    polar = polar_first = None
    if flags.oversample_polar or (not flags.nopolar and (flags.dmin > 0 or diagnostics)):
        d = diffracted.unsqueeze(-2)
        polar = polarization_factor(flags.kahn, incident.expand(*shape, 3), d.expand(*shape, 3), axis)
    elif not flags.nopolar:
        first_in = incident[0].expand_as(diffracted[:, 0, 0])
        polar_first = polarization_factor(flags.kahn, first_in, diffracted[:, 0, 0], axis)
    return polar, polar_first


def _terms(q, vectors, crystal, flags, state, src_ok, running):
    """h, k, l, F_cell, F_latt for every term and the terms nanoBragg never reaches (or None)."""
    h, k, l = _miller(q, vectors)  # each (n, T, S, N, P*M)
    if state.phi_first_pending:
        h, k, l = _first_term_true_phi((h, k, l), q, src_ok, state)
    f_latt = _lattice(crystal, h, k, l)
    skip = None
    if running or state.enabled:
        # terms nanoBragg never reaches: source cut by dmin, or F_latt = 0 without water
        skip = ~src_ok[..., None].expand_as(h)
        if _value(flags.water_background) == 0.0:
            skip = skip | (f_latt.detach() == 0)
    f_cell = structure_factors(crystal, h, k, l, skip, state)
    return h, k, l, f_cell, f_latt, skip


def _sum_sources(per_source, weight_factor, src_ok, flags, bg):
    """bg + the weighted sum over layers, sub-pixels and the sources that pass the dmin cut."""
    if weight_factor is not None:
        per_source = per_source * weight_factor
    if flags.dmin > 0:
        per_source = torch.where(src_ok, per_source, torch.zeros_like(per_source))
    return bg + per_source.reshape(per_source.shape[0], -1).sum(-1)


def _running_factors(shape, capture, polar, omega, flags, pos):
    """The per-term factors that the -oversample_* rules multiply in: (n, T, S, N)."""
    mult = torch.ones(shape, dtype=pos.dtype, device=pos.device)
    if flags.oversample_thick:
        mult = mult * capture.unsqueeze(-1)
    if flags.oversample_polar:
        mult = mult * polar
    if flags.oversample_omega:
        mult = mult * omega.unsqueeze(-1)
    return mult


def _running_sum(term, skip, mult, weight_factor, bg, state):
    """The -oversample_* sum over the C loop order: nanoBragg.c's I <- (I + t_j) m_j, i.e.
    I = bg prod(m) + sum_j t_j prod_{k>=j} m_k (or, -compat fixed, each term with its own factors)."""
    n = term.shape[0]
    if weight_factor is not None:
        term = term * weight_factor[:, None]
    term = torch.where(skip, torch.zeros_like(term), term)
    mult = torch.where(skip, torch.ones_like(term), mult[..., None].expand_as(term)).reshape(n, -1)
    if not state.running_product:
        return _own_factors(bg, term.reshape(n, -1), mult, skip.reshape(n, -1))
    suffix = torch.flip(torch.cumprod(torch.flip(mult, [-1]), -1), [-1])
    return bg * suffix[:, 0] + (term.reshape(n, -1) * suffix).sum(-1)


def _pixel_scale(value, capture, polar, polar_first, src_ok, omega, flags):
    """Capture fraction, polarization and solid angle applied once per pixel (unless -oversample_*)."""
    n = value.shape[0]
    if not flags.oversample_thick:
        value = value * capture[:, -1, 0]
    if not flags.oversample_polar:
        if flags.nopolar:
            polar_final = torch.ones_like(value)
        elif polar_first is not None:
            polar_final = polar_first
        else:
            ok = src_ok.reshape(n, -1)
            first = torch.argmax(ok.to(torch.int8), dim=-1)
            picked = polar.reshape(n, -1).gather(1, first[:, None])[:, 0]
            polar_final = torch.where(ok.any(-1), picked, torch.zeros_like(picked))
        value = value * polar_final
    else:
        polar_final = polar.reshape(n, -1)[:, -1]
    if not flags.oversample_omega:
        value = value * omega[:, 0, 0]
    return value, polar_final
