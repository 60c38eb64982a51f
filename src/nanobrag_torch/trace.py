"""Pixel diagnostics: nanoBragg's -printout block and a full-precision per-term trace (-trace_pixel).

Both re-render the pixels they report on their own (the image itself is never touched), with the
run-order state (interpolation switch-off, the phi = 0 reuse quirk) that the pixel saw in the run.
"""
import math

import numpy as np
import torch

from .engine import R_E_SQR
from .errors import UsageError
from .physics import polarization_factor, sincg


def run_order(sim):
    """(slow, fast) of every rendered pixel in the order Simulation.run renders them."""
    rows, cols = sim.rendered_ranges()
    slow, fast = rows.repeat_interleave(cols.numel()), cols.repeat(rows.numel())
    if sim.mask is not None:
        keep = sim.mask[slow, fast]
        slow, fast = slow[keep], fast[keep]
    return slow, fast


def _state_before(sim, slow, fast, index, inputs):
    """Engine state as the run had it just before rendering pixel number `index` of the run order."""
    state = sim.new_state(inputs)
    if index <= 0:
        return state
    stats = sim.stats
    interp_known = not state.enabled or ("interpolation_warning" in stats and stats["interpolation_warning"] is None)
    if interp_known and (not state.phi_first_pending or float(sim.flags.dmin) <= 0):
        # without dmin every term renders, so the phi quirk's first term is the run's first pixel
        state.phi_first_pending = False
        return state
    # order-dependent (interpolation switch-off, dmin skips): replay what came before
    with torch.no_grad():
        sim.render_pixels(slow[:index], fast[:index], state, inputs)
    return state


def _render(sim, slow, fast, state, inputs):
    """Values and the (single-chunk) diagnostics for a few pixels, without gradients."""
    with torch.no_grad():
        values, diags = sim.render_pixels(slow, fast, state, inputs, diagnostics=True)
        pos = sim.detector.positions(inputs.geo, slow, fast)
    if len(diags) != 1:
        raise RuntimeError("trace: expected a single render chunk")
    return values, diags[0], pos


def _np(x):
    return x.detach().to("cpu", torch.float64).numpy()


def _last_true(mask):
    """Index of the last True per row of (n, K) and whether there is one."""
    flipped = torch.flip(mask, [-1]).to(torch.int8)
    return mask.shape[-1] - 1 - torch.argmax(flipped, -1), mask.any(-1)


def _src_ok(sim, stol):
    dmin = float(sim.flags.dmin)
    if dmin <= 0:
        return torch.ones_like(stol, dtype=torch.bool)
    return ~((stol > 0) & (dmin > 0.5 / torch.where(stol > 0, stol, torch.ones_like(stol))))


def _last_cell(sim, rot):
    """Real vectors (rows a, b, c) of the last phi step and mosaic domain, as nanoBragg holds them."""
    cr = sim.crystal
    if float(cr.phi0) + float(cr.phistep) * (cr.phisteps - 1) != 0.0:
        return rot[-1, -1]
    # nanoBragg skips the rotation at phi = 0, so its zeros keep their signs (printed as -0)
    real = cr.real.to(rot)
    if cr.mosaic_umats is not None and rot.shape[1] == cr.mosaic_umats.shape[0] and float(cr.mosaic_spread) > 0:
        real = torch.einsum("ij,vj->vi", cr.mosaic_umats[-1].to(rot), real)
    return real


def _carry(values, has, carried):
    """nanoBragg's variables keep their last value: a pixel that computed none prints the previous
    pixel's (in run order). values/has: (n,); carried: the value before this chunk."""
    pos = np.where(has, np.arange(has.size), -1)
    last = np.maximum.accumulate(pos) if has.size else pos
    return np.where(last >= 0, values[np.maximum(last, 0)], carried)


def _terms(sim, dg, wf):
    """(skip, term) per term: skip marks terms nanoBragg never finishes (source cut by dmin, or
    F_latt = 0 without water); term is F_cell^2 F_latt^2 times the source weight, 0 when skipped."""
    skip = ~_src_ok(sim, dg["stol"])[..., None, None].expand_as(dg["h"])
    if float(sim.flags.water_background) == 0.0:
        skip = skip | (dg["f_latt"] == 0)
    term = dg["f_cell"] * dg["f_cell"] * dg["f_latt"] * dg["f_latt"]
    if wf is not None:
        term = term * wf[:, None, None]
    return skip, torch.where(skip, torch.zeros_like(term), term)


def _printout_values(sim, dg, inputs, carried):
    """Per-pixel values nanoBragg prints: each variable holds the last value it was given."""
    n = dg["intensity"].shape[0]
    flat = lambda x: x.reshape(n, -1)
    pick = lambda x, i: _np(flat(x).gather(1, i[:, None])[:, 0])
    stol, fl = dg["stol"], sim.flags
    ok = _src_ok(sim, stol)
    src_ok = flat(ok)
    # hkl and F_latt: last term past the dmin cut; F_cell: last term not skipped
    li, has_latt = _last_true(flat(ok[..., None, None].expand_as(dg["h"])))
    ci, has_cell = _last_true(flat(~_terms(sim, dg, inputs.weight_factor)[0]))
    out = {}
    for key, i, has in (("h", li, has_latt), ("k", li, has_latt), ("l", li, has_latt),
                        ("f_latt", li, has_latt), ("f_cell", ci, has_cell)):
        out[key] = _carry(pick(dg[key], i), has.cpu().numpy(), carried[key])
        if n:
            carried[key] = out[key][-1]
    if fl.nopolar:
        polar = np.ones(n)
    elif fl.oversample_polar:  # recomputed for every source past the cut: the last one stays
        kahn = torch.as_tensor(fl.kahn, dtype=stol.dtype, device=stol.device)
        polar = pick(polarization_factor(kahn, *_per_source_vectors(dg, inputs)), _last_true(src_ok)[0])
    else:
        polar = _np(dg["polar"])
    if not fl.nopolar:
        polar = np.where(src_ok.any(-1).cpu().numpy(), polar, 0.0)  # reset per pixel, never computed
    out.update(
        polar=polar, stol=_np(flat(stol)[:, -1]), intensity=_np(dg["intensity"]),
        omega=_np(dg["omega"][:, -1, -1] if fl.oversample_omega else dg["omega"][:, 0, 0]),
        capture=_np(dg["capture"][:, -1, -1] if fl.oversample_thick else dg["capture"][:, -1, 0]))
    return out


def _printout_lines(sim, v, image32, slow, fast, state, inputs, carried):
    _, dg, pos = _render(sim, slow, fast, state, inputs)
    val = _printout_values(sim, dg, inputs, carried)
    h, k, l = val["h"], val["k"], val["l"]
    p = _np(pos[:, -1, -1])  # last sub-pixel of the last layer
    twotheta = np.arctan2(np.sqrt(p[:, 1] ** 2 + p[:, 2] ** 2), p[:, 0])
    test = np.sin(twotheta / 2.0) / (v.lambda0 * 1e10)
    cell = _np(_last_cell(sim, inputs.rot)) * 1e10
    tail = ["real-space cell vectors (Angstrom):", "     %-10s  %-10s  %-10s" % ("a", "b", "c")]
    tail += ["%s: %11.8f %11.8f %11.8f" % (axis, cell[0, j], cell[1, j], cell[2, j]) for j, axis in enumerate("XYZ")]
    s_np, f_np = slow.cpu().numpy(), fast.cpu().numpy()
    steps = sim.flags.steps
    lines = []
    for i in range(s_np.size):
        hkl0 = [int(math.ceil(x - 0.5)) if math.isfinite(x) else 0 for x in (h[i], k[i], l[i])]
        lines += ["%4d %4d : stol = %g or %g" % (f_np[i], s_np[i], val["stol"][i], test[i]),
                  "at %g %g %g" % tuple(p[i]),
                  "hkl= %f %f %f  hkl0= %d %d %d" % (h[i], k[i], l[i], *hkl0),
                  " F_cell=%g  F_latt=%g   I = %g" % (val["f_cell"][i], val["f_latt"][i], val["intensity"][i]),
                  "I/steps %15.10g" % (val["intensity"][i] / steps),
                  "polar   %15.10g" % val["polar"][i],
                  "omega   %15.10g" % val["omega"][i],
                  "capfrac %15.10g" % val["capture"][i],
                  "pixel   %15.10g" % float(image32[s_np[i], f_np[i]])] + tail
    return lines


def _per_source_vectors(dg, inputs):
    """(incident, diffracted, polar axis) broadcast to every (pixel, layer, sub-pixel, source)."""
    incident = inputs.incident
    d = dg["diffracted"].unsqueeze(-2)
    shape = torch.broadcast_shapes(d.shape, incident.shape)
    return incident.expand(shape), d.expand(shape), inputs.geo["polar_axis"]


def printout(sim, v, image32, say):
    """nanoBragg's -printout block for the chosen pixel, or for every rendered pixel when
    printout_fpixel < 0 (as nanoBragg does)."""
    slow, fast = run_order(sim)
    inputs = sim.inputs()
    carried = dict(h=0.0, k=0.0, l=0.0, f_latt=0.0, f_cell=0.0)  # never set yet: C prints garbage
    if v.printout_fpixel >= 0:
        hit = torch.nonzero((fast == v.printout_fpixel) & (slow == v.printout_spixel))
        if hit.numel() == 0:
            return  # nanoBragg only prints pixels it renders
        i = int(hit[0])
        state = _state_before(sim, slow, fast, i, inputs)
        say("\n".join(_printout_lines(sim, v, image32, slow[i:i + 1], fast[i:i + 1], state, inputs, carried)))
        return
    state = sim.new_state(inputs)
    step = sim.chunk_size()
    for start in range(0, slow.numel(), step):
        s, f = slow[start:start + step], fast[start:start + step]
        say("\n".join(_printout_lines(sim, v, image32, s, f, state, inputs, carried)))


def _fmt(x):
    return "%.17g" % x


class _Lines(list):
    def __init__(self, prefix):
        super().__init__()
        self.prefix = prefix

    def put(self, name, *vals):
        self.append(f"{self.prefix}: {name} " + " ".join(_fmt(float(x)) for x in vals))


def trace_lines(sim, slow, fast, prefix="TRACE_PY"):
    """Full-precision trace of pixel (slow, fast), as a list of 'PREFIX: name v1 v2 ...' lines.

    Names are stable so that nb-trace-diff can align them with another program's trace; per-source
    names carry a 'subpixel[layer,subS,subF].' qualifier when the pixel has more than one sub-pixel."""
    d = sim.detector
    if not (0 <= slow < d.spixels and 0 <= fast < d.fpixels):
        raise UsageError(f"-trace_pixel {slow} {fast}: outside the {d.fpixels}x{d.spixels} detector")
    out = _Lines(prefix)
    inputs = sim.inputs()
    order_s, order_f = run_order(sim)
    hit = torch.nonzero((order_s == slow) & (order_f == fast))
    if hit.numel() == 0:
        out.append(f"{prefix}_NOTE pixel is outside the ROI/mask: the image keeps 0 there")
    state = _state_before(sim, order_s, order_f, int(hit[0]) if hit.numel() else 0, inputs)
    value, dg, pos = _render(sim, torch.tensor([slow], device=d.device), torch.tensor([fast], device=d.device),
                             state, inputs)
    _trace_setup(out, inputs, slow, fast)
    _trace_terms(out, sim, inputs, dg, pos)
    fl = sim.flags
    omega, capture = _np(dg["omega"][0]), _np(dg["capture"][0])
    out.put("I_before_scaling", _np(dg["intensity"])[0])
    out.put("steps", fl.steps)
    out.put("r_e_sqr", R_E_SQR)
    out.put("fluence", fl.fluence.detach() if torch.is_tensor(fl.fluence) else fl.fluence)
    # the factors applied after the loops (1 where the -oversample_* rule applied them per term)
    out.put("omega_applied", 1.0 if fl.oversample_omega else omega[0, 0])
    out.put("polar_applied", 1.0 if fl.oversample_polar else _np(dg["polar"])[0])
    out.put("capture_fraction_applied", 1.0 if fl.oversample_thick else capture[-1, 0])
    out.put("pixel_value", _np(value)[0])
    return list(out)


def _trace_setup(out, inputs, slow, fast):
    geo, rot = inputs.geo, inputs.rot
    for key in ("fdet", "sdet", "odet", "beam", "pix0"):
        out.put(key, *_np(geo[key]))
    for key in ("distance", "close_distance", "Fbeam", "Sbeam", "Fclose", "Sclose"):
        out.put(key, _np(geo[key]))
    out.put("pixel", slow, fast)
    # real vectors (m) each phi step / domain uses (step 0 at phi = 0 reuses the last step's, as in
    # nanoBragg, except for the run's very first term)
    real = _np(rot)
    for p in range(real.shape[0]):
        for m in range(real.shape[1]):
            for j, axis in enumerate("abc"):
                out.put(f"phi[{p}].mosaic[{m}].{axis}", *real[p, m, j])


def _trace_terms(out, sim, inputs, dg, pos):
    """Per sub-pixel, source, phi step and mosaic domain, in nanoBragg's loop order."""
    geo, incident, wl, wf = inputs.geo, inputs.incident, inputs.wavelengths, inputs.weight_factor
    fl, cr, o = sim.flags, sim.crystal, sim.detector.oversample
    diffracted = dg["diffracted"].unsqueeze(-2)
    q = (diffracted - incident) / wl.unsqueeze(-1)  # (1, T, S, N, 3), as the engine forms it
    kahn = torch.as_tensor(fl.kahn, dtype=q.dtype, device=q.device)
    pol = _np(polarization_factor(kahn, incident.expand_as(q), diffracted.expand_as(q), geo["polar_axis"])[0])
    lattice = [_np(sincg(math.pi * x[0], n)) if float(n) > 1 else np.ones(tuple(x[0].shape))
               for x, n in ((dg["h"], cr.Na), (dg["k"], cr.Nb), (dg["l"], cr.Nc))]
    pos_, dif, air = _np(pos[0]), _np(dg["diffracted"][0]), _np(dg["airpath"][0])
    omega, capture = _np(dg["omega"][0]), _np(dg["capture"][0])
    q_, stol = _np(q[0]), _np(dg["stol"][0])
    h, k, l = (_np(dg[key][0]) for key in ("h", "k", "l"))
    f_cell, f_latt, term = _np(dg["f_cell"][0]), _np(dg["f_latt"][0]), _np(_terms(sim, dg, wf)[1][0])
    inc, lam = _np(incident), _np(wl)
    weights = np.ones(lam.shape) if wf is None else _np(wf)
    T, S, N, P, M = h.shape
    for t in range(T):
        for s in range(S):
            sp = f"subpixel[{t},{s // o},{s % o}]"
            out.put(sp + ".position", *pos_[t, s])
            out.put(sp + ".diffracted", *dif[t, s])
            out.put(sp + ".airpath", air[t, s])
            out.put(sp + ".omega", omega[t, s])
            out.put(sp + ".capture_fraction", capture[t, s])
            for n in range(N):
                src = f"source[{n}]" if T * S == 1 else f"{sp}.source[{n}]"
                out.append(f"{out.prefix}_SOURCE {n}:")
                out.put(src + ".direction", *inc[n])  # incident beam (propagation) direction
                out.put(src + ".lambda", lam[n])
                out.put(src + ".weight", weights[n])  # relative weight applied to its terms
                out.put(src + ".scattering", *q_[t, s, n])
                out.put(src + ".stol", stol[t, s, n])
                out.put(src + ".polar", 1.0 if fl.nopolar else pol[t, s, n])
                for p in range(P):
                    for m in range(M):
                        i = (t, s, n, p, m)
                        name = f"{src}.phi[{p}].mosaic[{m}]"
                        out.put(name + ".hkl", h[i], k[i], l[i])
                        out.put(name + ".hkl0", *(_nearest_index(x) for x in (h[i], k[i], l[i])))
                        out.put(name + ".F_cell", f_cell[i])
                        if cr.shape == "square":
                            for axis, fa in zip("abc", lattice):
                                out.put(f"{name}.F_latt_{axis}", fa[i])
                        out.put(name + ".F_latt", f_latt[i])
                        out.put(name + ".I_term", term[i])  # F_cell^2 F_latt^2 weight, 0 if skipped


def _nearest_index(x):
    """ceil(x - 0.5) as nanoBragg's int holds it (x86 turns NaN and infinities into INT_MIN)."""
    return math.ceil(x - 0.5) if math.isfinite(x) else -2**31


def trace_pixel(sim, v, slow, fast, say):
    """Print the -trace_pixel S F trace (TRACE_PY lines) for pixel (slow, fast)."""
    say("\n".join(trace_lines(sim, slow, fast)))
