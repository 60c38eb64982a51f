"""Gradients of the rendered image with respect to every differentiable parameter family,
checked against finite differences (torch.autograd.gradcheck, float64).

Each check renders two tiny pixel sets: the 3x3 pixels around the direct beam (h = k = l = 0
exactly at the centre pixel, 2theta = 0) and the 3x3 pixels around a Bragg peak whose centre
pixel has integer h, k, l (the detector is aimed at the reflection), so the removable
singularities of the lattice transform and polarization factor are exercised.
"""
import math

import pytest
import torch

import nanobrag_torch as nb
from nanobrag_torch.differentiable import SPECS

PIXEL_MM = 0.1
DISTANCE_MM = 50.0
CENTRE = (4, 4)  # (slow, fast) of the pixel that sits on the beam or the reflection
AROUND = [(CENTRE[0] + ds, CENTRE[1] + df) for ds in (-1, 0, 1) for df in (-1, 0, 1)]


def crystal(**kw):
    base = dict(N=5, default_F=100.0, misset=(7.0, -12.0, 21.0))
    base.update(kw)
    cell = base.pop("cell", (60.0, 70.0, 80.0, 80.0, 95.0, 100.0))
    return nb.Crystal.from_cell(*cell, **base)


def aim(xtal, hkl, beam_dirs=None):
    """(wavelength in Angstrom, beam_mm) that put reflection `hkl` exactly on the CENTRE pixel."""
    real = xtal.rotated_vectors()[0, 0] * 1e10  # Angstrom, first phi step, first mosaic domain
    g = torch.tensor(hkl, dtype=torch.float64) @ torch.linalg.inv(real).T
    beam = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    lam = float(-2.0 * (g @ beam) / (g @ g))  # on the Ewald sphere: |beam / lam + g| = 1 / lam
    d = beam + lam * g
    # MOSFLM: fast = +z, slow = -y; beam_mm = (Xbeam, Ybeam) = (Sbeam, Fbeam) - half a pixel
    fbeam = (CENTRE[1] + 0.5) * PIXEL_MM - DISTANCE_MM * float(d[2] / d[0])
    sbeam = (CENTRE[0] + 0.5) * PIXEL_MM + DISTANCE_MM * float(d[1] / d[0])
    return lam, (sbeam - 0.5 * PIXEL_MM, fbeam - 0.5 * PIXEL_MM)


def pick_reflection(xtal):
    """A low-order reflection reachable with a wavelength between 0.5 and 3 Angstrom."""
    for hkl in [(h, k, l) for h in range(-2, 3) for k in range(-2, 3) for l in range(-2, 3)]:
        if sum(abs(i) for i in hkl) >= 2 and 0.5 < aim(xtal, hkl)[0] < 3.0:
            return hkl
    raise AssertionError("no reachable reflection")


def pair(xtal_kw=None, det_kw=None, beam_kw=None, sim_edit=None):
    """(direct-beam simulation, Bragg-peak simulation, hkl of the peak)."""
    sims = []
    xtal = crystal(**(xtal_kw or {}))
    hkl = pick_reflection(xtal)
    lam, beam_mm = aim(xtal, hkl)
    for centre in ((CENTRE[0] * PIXEL_MM, CENTRE[1] * PIXEL_MM), beam_mm):
        # one sub-pixel unless asked: the centre pixel's only sample sits on the singular point
        det = nb.Detector.mosflm(distance_mm=DISTANCE_MM, pixel_mm=PIXEL_MM, fpixels=9, beam_mm=centre,
                                 **{"oversample": 1, **(det_kw or {})})
        beam = nb.Beam.monochromatic(wavelength_A=lam, **(beam_kw or {}))
        sim = nb.Simulation(det, crystal(**(xtal_kw or {})), beam)
        if sim_edit:
            sim_edit(sim)
        sims.append(sim)
    return sims[0], sims[1], hkl


def pixels(sim):
    slow = torch.tensor([p[0] for p in AROUND])
    fast = torch.tensor([p[1] for p in AROUND])
    return sim.render_pixels(slow, fast)


def check(name, sims, scale=1.0, fast_mode=False, atol=1e-5, rtol=1e-3):
    """gradcheck of the rendered pixels of all `sims` with respect to parameter `name`."""
    params = [nb.parameters(sim, name) for sim in sims]
    inputs = tuple((p[name].detach() / scale).clone().requires_grad_(True) for p in params)

    def render(*xs):
        for p, x in zip(params, xs):
            p[name] = x * scale
        return torch.cat([pixels(sim) for sim in sims])

    values = render(*inputs)
    assert torch.isfinite(values).all() and values.abs().max() > 0
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=atol, rtol=rtol, fast_mode=fast_mode)
    # the gradient is not trivially zero
    grads = torch.autograd.grad(render(*inputs).sum(), inputs)
    assert any(g.abs().max() > 0 for g in grads)


def test_pixels_sit_on_the_singular_points():
    direct, peak, hkl = pair()
    for sim, want in ((direct, (0, 0, 0)), (peak, hkl)):
        slow, fast = torch.tensor([CENTRE[0]]), torch.tensor([CENTRE[1]])
        _, diags = sim.render_pixels(slow, fast, diagnostics=True)
        got = [float(diags[0][k].reshape(-1)[0]) for k in "hkl"]
        assert max(abs(g - w) for g, w in zip(got, want)) < 1e-9, got
        # well inside the range where sincg uses its limit formula
        assert all(abs(math.sin(math.pi * g)) < 1e-8 for g in got)


# family -> (simulation settings, parameter names, scale of the checked variable)
FAMILIES = {
    "cell": (dict(), ["cell"], 1.0),
    "misset": (dict(), ["misset"], 1.0),
    "mat": (dict(), ["mat"], 1e-2),
    "phi": (dict(xtal_kw=dict(phi_deg=0.4, osc_deg=0.6, phisteps=3)), ["phi0", "phistep", "spindle"], 1.0),
    "mosaic": (dict(xtal_kw=dict(mosaic_deg=0.8, mosaic_domains=4)), ["mosaic_spread"], 1.0),
    "N": (dict(), ["Na", "Nb", "Nc"], 1.0),
    "N_round": (dict(xtal_kw=dict(shape="round", fudge=1.3)), ["Na", "Nb", "Nc", "fudge"], 1.0),
    "gauss": (dict(xtal_kw=dict(shape="gauss", fudge=0.7)), ["fudge", "cell"], 1.0),
    "distance": (dict(), ["distance", "Fbeam", "Sbeam", "pixel_size"], 1.0),
    "close_distance": (dict(det_kw=dict(rotations_deg=(2.0, -3.0, 4.0), twotheta_deg=5.0)),
                       ["close_distance", "rotx", "roty", "rotz", "twotheta"], 1.0),
    "oversample": (dict(det_kw=dict(oversample=2)), ["pixel_size", "distance"], 1.0),
    "sensor": (dict(det_kw=dict(thickness_um=150.0, thicksteps=3, attenuation_um=200.0)),
               ["thickness", "attenuation_depth", "distance"], 1.0),
    "wavelength": (dict(beam_kw=dict(dispersion_pct=1.0, dispsteps=3)), ["wavelength", "dispersion"], 1.0),
    "polarization": (dict(beam_kw=dict(kahn=0.6)), ["kahn"], 1.0),
    "fluence": (dict(), ["fluence"], 1e29),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gradcheck(family):
    kw, names, scale = FAMILIES[family]
    for name in names:
        direct, peak, _ = pair(**kw)
        check(name, (direct, peak), scale=scale if name in ("fluence", "mat") else 1.0)


def test_gradcheck_sample_pivot():
    def to_sample_pivot(sim):
        geo = sim.detector.geometry()
        sim.detector.pivot = "sample"
        sim.detector.Fclose, sim.detector.Sclose = float(geo["Fclose"]), float(geo["Sclose"])
        sim.detector.close_distance = float(geo["close_distance"])
        sim.detector.rotx, sim.detector.twotheta = 0.03, 0.05
    for name in ("Fclose", "Sclose", "close_distance"):
        direct, peak, _ = pair(sim_edit=to_sample_pivot)
        check(name, (direct, peak))


def test_gradcheck_geometry_through_sincg_limit():
    # differentiable cell counts use sin(N pi h) / sin(pi h) with its limit formula at integer h
    def real_valued_n(sim):
        nb.parameters(sim, "Na", "Nb", "Nc")
    for name in ("misset", "distance", "wavelength"):
        direct, peak, _ = pair(sim_edit=real_valued_n)
        check(name, (direct, peak))


def test_gradcheck_sources():
    def three_sources(sim):
        tilt = torch.tensor([[-1.0, 0.0, 0.0], [-1.0, 0.002, 0.0], [-1.0, 0.0, -0.003]], dtype=torch.float64)
        sim.beam.source_dirs = tilt / tilt.norm(dim=1, keepdim=True)
        sim.beam.wavelengths = sim.beam.wavelengths.expand(3).clone()
        sim.beam.weights = torch.tensor([1.0, 0.7, 0.4], dtype=torch.float64)
        sim.flags.steps = 3
    for name in ("source_directions", "source_weights"):
        direct, peak, _ = pair(sim_edit=three_sources)
        check(name, (direct, peak))


def test_gradcheck_water():
    def water(sim):
        sim.flags.fluence = sim.beam.fluence = 1e24
    for name in ("water_size", "fluence"):
        direct, peak, _ = pair(sim_edit=water)
        nb.parameters(direct, "water_size")  # fluence also moves the water background
        nb.parameters(peak, "water_size")
        direct.parametrization["water_size"] = torch.tensor(50.0, dtype=torch.float64)
        peak.parametrization["water_size"] = torch.tensor(50.0, dtype=torch.float64)
        check(name, (direct, peak), scale=1e24 if name == "fluence" else 1.0)


def _hkl(span):
    idx = [(h, k, l) for h in range(-span, span + 1) for k in range(-span, span + 1) for l in range(-span, span + 1)]
    gen = torch.Generator().manual_seed(5)
    return idx, (50.0 + 100.0 * torch.rand(len(idx), generator=gen)).tolist()


@pytest.mark.parametrize("interpolate", [False, True])
def test_gradcheck_structure_factors(interpolate):
    # tricubic interpolation needs two reflections of margin around every rendered index
    kw = dict(xtal_kw=dict(hkl=_hkl(5 if interpolate else 3), interpolate=interpolate, N=2 if interpolate else 5))
    direct, peak, _ = pair(**kw)
    for sim in (direct, peak):
        assert sim.crystal.interpolate == interpolate
    check("Fhkl", (direct, peak), fast_mode=True)
    check("default_F", pair(xtal_kw=dict(hkl=({(0, 0, 0): 10.0, (1, 1, 1): 20.0}), default_F=30.0))[:2])


def test_gradcheck_atomic_model():
    from nanobrag_torch.structure import AtomicModel, attach_model

    def with_model(sim):
        cell = (60.0, 70.0, 80.0, 80.0, 95.0, 100.0)
        model = AtomicModel.from_atoms(["C", "O", "S"], [[3.0, 4.0, 5.0], [10.0, 2.0, 7.5], [6.0, 8.0, 1.0]],
                                       [12.0, 20.0, 15.0], [1.0, 0.7, 0.9], cell)
        attach_model(sim.crystal, model, dmin_A=15.0)  # the peak's reflection is of low order
    for name in ("atom_xyz", "atom_B", "atom_occ"):
        check(name, pair(sim_edit=with_model)[:2], fast_mode=name == "atom_xyz")


def test_every_parameter_is_checked():
    covered = {n for kw, names, _ in FAMILIES.values() for n in names}
    covered |= {"Fclose", "Sclose", "close_distance", "source_directions", "source_weights", "water_size", "Fhkl",
                "default_F", "atom_xyz", "atom_B", "atom_occ"}
    covered |= {"panel_shifts", "panel_rotations"}  # gradcheck through the API in tests/test_panels.py
    assert covered == set(SPECS)


@pytest.mark.parametrize("n", [5.0, 7.3])
def test_real_valued_cell_count_keeps_precision_near_integer_h(n):
    """A differentiable (or non-integer) N takes sin(N pi h) / sin(pi h) with reduced arguments."""
    import mpmath  # installed with torch (through sympy): a high-precision reference

    from nanobrag_torch.physics import sincg_pi
    mpmath.mp.dps = 40
    hs = [1 + 1e-7, 3 - 2e-6, 2 + 3e-9, 0.37, -4 + 1e-5, 2.5]
    got = sincg_pi(torch.tensor(hs, dtype=torch.float64), torch.tensor(n, dtype=torch.float64, requires_grad=True))
    for h, g in zip(hs, got.tolist()):
        exact = mpmath.sin(mpmath.mpf(n) * mpmath.pi * mpmath.mpf(h)) / mpmath.sin(mpmath.pi * mpmath.mpf(h))
        assert abs(g / float(exact) - 1) < 1e-11, (h, g, exact)
    # integer h: the finite L'Hopital limit (n at h = 0) with finite gradients
    h = torch.tensor([0.0, 2.0, -3.0], dtype=torch.float64, requires_grad=True)
    nt = torch.tensor(n, dtype=torch.float64, requires_grad=True)
    value = sincg_pi(h, nt)
    assert float(value[0].detach()) == n
    gh, gn = torch.autograd.grad(value.sum(), (h, nt))
    assert torch.isfinite(gh).all() and torch.isfinite(gn).all()
