"""Physics and geometry against analytic expectations derived by hand (float64 throughout)."""
import math

import numpy as np
import pytest
import torch

from nanobrag_torch import cli, setup
from nanobrag_torch.geometry.vectors import unitize
from nanobrag_torch.lattice import lattice_vectors
from nanobrag_torch.physics import polarization_factor, sinc3_sq, sincg

F64 = torch.float64
MOSFLM_F, MOSFLM_S, MOSFLM_O = np.array([0, 0, 1.0]), np.array([0, -1.0, 0]), np.array([1.0, 0, 0])
CUBIC = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "1", "-lambda", "1"]


@pytest.fixture(autouse=True)
def clean_folder(tmp_path, monkeypatch):
    # an Fdump.bin left in the working folder would silently replace -default_F
    monkeypatch.chdir(tmp_path)


def quiet(_):
    pass


def build(args):
    """Simulation for a CLI argument list, without rendering anything."""
    v = cli.load_settings(list(args), quiet)
    return setup.build(v), v


def geometry(args):
    sim, _ = build(args)
    return {k: x.detach().numpy() for k, x in sim.detector.geometry().items()}


def grad(fn, x):
    x = torch.tensor(x, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x), x)
    return float(g)


# ---------------------------------------------------------------- detector origin (pix0)

def test_mosflm_pix0_default_beam_centre():
    # MOSFLM: default beam centre X = Y = (detsize + pixel) / 2, and the convention adds half a
    # pixel: Fbeam = Ybeam + pixel/2, Sbeam = Xbeam + pixel/2. Beam pivot:
    # pix0 = -Fbeam fdet - Sbeam sdet + distance beam, with fdet = z, sdet = -y, beam = x.
    px, n, dist = 1e-4, 1024, 0.1
    xbeam = ybeam = (n * px + px) / 2
    fbeam, sbeam = ybeam + px / 2, xbeam + px / 2
    expected = -fbeam * MOSFLM_F - sbeam * MOSFLM_S + dist * MOSFLM_O
    np.testing.assert_allclose(expected, [0.1, 0.0513, -0.0513], atol=1e-15)
    g = geometry(CUBIC + ["-distance", "100", "-pixel", "0.1", "-detpixels", "1024"])
    np.testing.assert_allclose(g["pix0"], expected, atol=1e-15)
    np.testing.assert_allclose(g["fdet"], MOSFLM_F, atol=0)
    np.testing.assert_allclose(g["sdet"], MOSFLM_S, atol=0)
    np.testing.assert_allclose(g["odet"], MOSFLM_O, atol=0)
    assert g["Fbeam"] == pytest.approx(fbeam, abs=1e-15) and g["Sbeam"] == pytest.approx(sbeam, abs=1e-15)


def test_mosflm_pix0_explicit_beam_centre():
    # -Xbeam 20 -Ybeam 30 (mm): Fbeam = 30.05 mm, Sbeam = 20.05 mm (the golden beam_offset case
    # reports the same, and dials origin = 1000 (pix0_z, pix0_y, -pix0_x) = -30.05 20.05 -100)
    g = geometry(CUBIC + ["-distance", "100", "-pixel", "0.1", "-detpixels", "256", "-Xbeam", "20", "-Ybeam", "30"])
    np.testing.assert_allclose(g["pix0"], [0.1, 0.02005, -0.03005], atol=1e-15)


def test_mosflm_pixel_centres_step_from_pix0():
    sim, _ = build(CUBIC + ["-distance", "100", "-pixel", "0.1", "-detpixels", "64"])
    geo = sim.detector.geometry()
    slow, fast = torch.tensor([0, 0, 5, 63]), torch.tensor([0, 7, 0, 63])
    pos = sim.detector.positions(geo, slow, fast)[:, 0, 0].numpy()
    pix0 = geo["pix0"].numpy()
    for (s, f), p in zip(zip(slow.tolist(), fast.tolist()), pos):
        np.testing.assert_allclose(p, pix0 + (f + 0.5) * 1e-4 * MOSFLM_F + (s + 0.5) * 1e-4 * MOSFLM_S, atol=1e-16)


def test_xds_orgx_orgy_sample_pivot():
    # XDS: fdet = x, sdet = y, odet = beam = z, sample pivot; ORGX/ORGY are 1-based pixel
    # coordinates of the detector point nearest the sample: Fclose = (ORGX - 0.5) pixel.
    px, orgx, orgy, dist = 1e-4, 100.5, 140.25, 0.1
    fclose, sclose = (orgx - 0.5) * px, (orgy - 0.5) * px
    g = geometry(CUBIC + ["-distance", "100", "-pixel", "0.1", "-detpixels", "256", "-xds",
                          "-ORGX", str(orgx), "-ORGY", str(orgy)])
    np.testing.assert_allclose(g["pix0"], [-fclose, -sclose, dist], atol=1e-15)
    # golden xds_orgx: dials origin = 100 -13.975 10
    np.testing.assert_allclose(1000 * np.array([g["pix0"][2], g["pix0"][1], -g["pix0"][0]]), [100, -13.975, 10],
                               atol=1e-12)
    # the foot of the perpendicular from the sample lands on pixel coordinate (ORGX, ORGY)
    foot_f, foot_s = -g["pix0"] @ g["fdet"], -g["pix0"] @ g["sdet"]
    assert foot_f / px + 0.5 == pytest.approx(orgx, abs=1e-9)
    assert foot_s / px + 0.5 == pytest.approx(orgy, abs=1e-9)


def test_xds_twotheta_rotates_about_sample():
    # sample pivot, twotheta 15 deg about +x: pix0 = R_x(15) (-Fclose, -Sclose, distance),
    # the perpendicular distance and the near point (Fclose, Sclose) are unchanged.
    t = math.radians(15)
    rx = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    g = geometry(CUBIC + ["-distance", "100", "-pixel", "0.1", "-detpixels", "256", "-xds", "-twotheta", "15"])
    np.testing.assert_allclose(g["pix0"], rx @ [-0.0128, -0.0128, 0.1], atol=1e-15)
    np.testing.assert_allclose(g["odet"], [0, -math.sin(t), math.cos(t)], atol=1e-15)
    assert g["pix0"] @ g["odet"] == pytest.approx(0.1, abs=1e-15)
    assert -g["pix0"] @ g["fdet"] == pytest.approx(0.0128, abs=1e-15)
    assert -g["pix0"] @ g["sdet"] == pytest.approx(0.0128, abs=1e-15)


# ---------------------------------------------------------------- Bragg's law

def pixel_position(s, f, pix0, px):
    return pix0 + (f + 0.5) * px * MOSFLM_F + (s + 0.5) * px * MOSFLM_S


def pixel_two_theta(s, f, pix0, px):
    p = pixel_position(s, f, pix0, px)
    return math.acos(p @ MOSFLM_O / np.linalg.norm(p))


@pytest.mark.parametrize("wavelength", [1.0, 1.5])
def test_reflection_lands_at_bragg_angle(wavelength):
    # Cubic cell d = 20 A, MOSFLM (beam +x). With misset rz = theta (Bragg angle) the reflection
    # (0,1,0) has b* = (-sin t, cos t, 0)/d, exactly on the Ewald sphere: it diffracts along
    # (cos 2t, sin 2t, 0), i.e. y = distance tan 2t on the detector, z = 0, with
    # 2 d sin t = lambda. (0,0,1) is not in diffracting position, so this is the brightest spot.
    px, n, dist, cell = 1e-4, 192, 0.1, 20.0
    theta = math.asin(wavelength / (2 * cell))
    sim, _ = build(["-cell", "20", "20", "20", "90", "90", "90", "-misset", "0", "0", repr(math.degrees(theta)),
                    "-default_F", "1", "-lambda", str(wavelength), "-N", "10", "-distance", "100", "-pixel", "0.1",
                    "-detpixels", str(n), "-nopolar", "-oversample", "1"])
    with torch.no_grad():
        img = sim.run().numpy()
    fbeam = sbeam = (n * px + px) / 2 + px / 2  # MOSFLM default beam centre, derived above
    pix0 = dist * MOSFLM_O - fbeam * MOSFLM_F - sbeam * MOSFLM_S
    # pixel (s, f) whose centre would sit exactly on the predicted spot
    f_pred = fbeam / px - 0.5
    s_pred = (sbeam - dist * math.tan(2 * theta)) / px - 0.5
    # leave out the forward-scattering (0,0,0) peak around the direct beam
    ss, ff = np.mgrid[0:n, 0:n]
    near_beam = np.hypot(ss - (sbeam / px - 0.5), ff - (fbeam / px - 0.5)) < 20
    s, f = np.unravel_index(np.where(near_beam, 0, img).argmax(), img.shape)
    assert abs(s - s_pred) <= 1 and abs(f - f_pred) <= 1
    one_pixel = px / dist  # angular size of a pixel near the beam (radians)
    assert abs(pixel_two_theta(s, f, pix0, px) - 2 * theta) < one_pixel
    # the intensity-weighted centre of the spot pins it to a fraction of a pixel
    w = 8
    win = img[s - w:s + w + 1, f - w:f + w + 1]
    ss, ff = np.mgrid[s - w:s + w + 1, f - w:f + w + 1]
    cs, cf = (win * ss).sum() / win.sum(), (win * ff).sum() / win.sum()
    assert abs(cs - s_pred) < 0.25 and abs(cf - f_pred) < 0.25
    assert abs(pixel_two_theta(cs, cf, pix0, px) - 2 * theta) < 0.25 * one_pixel


# ---------------------------------------------------------------- sincg

@pytest.mark.parametrize("n", [1, 2, 4, 5, 10])
def test_sincg_at_zero_is_n(n):
    assert float(sincg(torch.tensor(0.0, dtype=F64), n)) == n
    assert float(sincg(torch.tensor(1e-9, dtype=F64), n)) == pytest.approx(n, rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 10])
@pytest.mark.parametrize("m", [1, 2, 3, -1])
def test_sincg_at_integer_h_has_signed_limit(n, m):
    # sin(N x)/sin(x) near x = m pi: (-1)^(N m) sin(N e) / ((-1)^m sin e) -> N (-1)^(m (N - 1))
    expected = n * (-1) ** (m * (n - 1))
    assert float(sincg(torch.tensor(m * math.pi, dtype=F64), n)) == pytest.approx(expected, rel=1e-12)


def test_sincg_matches_ratio_away_from_zeros():
    x = np.linspace(-7.0, 7.0, 2001)
    x = x[np.abs(np.sin(x)) > 1e-3]
    for n in (2, 5, 17):
        ref = np.sin(n * x) / np.sin(x)
        np.testing.assert_allclose(sincg(torch.tensor(x, dtype=F64), n).numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("h", [0, 1, 2])
def test_sincg_gradient_is_zero_at_the_peak(n, h):
    g = grad(lambda x: sincg(math.pi * x, n), float(h))
    assert math.isfinite(g) and abs(g) < 1e-9


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("x", [0.3, 1.0, math.pi + 1e-3, 2 * math.pi - 0.2, 2.5])
def test_sincg_gradient_matches_analytic_derivative(n, x):
    analytic = (n * math.cos(n * x) * math.sin(x) - math.sin(n * x) * math.cos(x)) / math.sin(x) ** 2
    assert grad(lambda t: sincg(t, n), x) == pytest.approx(analytic, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("e", [1e-7, 3e-7])
def test_sincg_gradient_right_next_to_the_peak(e):
    # sin(5x)/sin(x) = 5 (1 - 4 e^2 + ...) around x = pi + e, so the slope is -40 e
    n = 5
    assert grad(lambda t: sincg(t, n), math.pi + e) == pytest.approx(-n * (n * n - 1) * e / 3, rel=1e-3)


# ---------------------------------------------------------------- sinc3 (sphere transform)

def sphere(x):
    """3 (sin x - x cos x) / x^3, by its Taylor series where the closed form cancels badly."""
    if x < 0.05:
        u = x * x
        return 1 - u / 10 + u * u / 280 - u ** 3 / 15120 + u ** 4 / 1330560
    return 3 * (math.sin(x) - x * math.cos(x)) / x ** 3


def test_sinc3_is_one_at_zero():
    assert float(sinc3_sq(torch.tensor(0.0, dtype=F64))) == 1.0


def test_sinc3_series_and_formula_join_continuously():
    # both sides of the switch-over (u = x^2 around 1e-6) agree with the exact function
    for u in (1e-12, 1e-8, 0.99e-6, 1.01e-6, 1e-4, 1e-2):
        assert float(sinc3_sq(torch.tensor(u, dtype=F64))) == pytest.approx(sphere(math.sqrt(u)), rel=1e-9, abs=0)
    below = float(sinc3_sq(torch.tensor(1e-6 * (1 - 1e-9), dtype=F64)))
    above = float(sinc3_sq(torch.tensor(1e-6 * (1 + 1e-9), dtype=F64)))
    # the closed form itself cancels there: relative rounding ~ 3 eps / u ~ 7e-10
    assert abs(above - below) < 1e-9


def test_sinc3_values_far_from_zero():
    for x in (0.5, 2.0, 4.4934094579, 10.0):  # 4.4934...: first zero (tan x = x)
        assert float(sinc3_sq(torch.tensor(x * x, dtype=F64))) == pytest.approx(sphere(x), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("u", [0.0, 1e-9, 0.5, 4.0, 30.0])
def test_sinc3_gradient_finite_and_analytic(u):
    # d/du at 0 is -1/10 (series 1 - u/10 + u^2/280); elsewhere (df/dx) / (2x)
    if u < 1e-6:
        analytic = -0.1 + u / 140
    else:
        x = math.sqrt(u)
        analytic = 3 * (x * x * math.sin(x) - 3 * (math.sin(x) - x * math.cos(x))) / x ** 4 / (2 * x)
    g = grad(sinc3_sq, u)
    assert math.isfinite(g) and g == pytest.approx(analytic, rel=1e-6, abs=1e-12)


# ---------------------------------------------------------------- polarization

INCIDENT = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
E_VECTOR = torch.tensor([0.0, 0.0, 1.0], dtype=F64)  # MOSFLM polarization axis


def diffracted_in_plane(two_theta, plane):
    """Unit vector at two_theta from +x, in the x-y plane ('xy') or the x-z plane ('xz')."""
    c, s = math.cos(two_theta), math.sin(two_theta)
    return torch.tensor([c, s, 0.0] if plane == "xy" else [c, 0.0, s], dtype=F64)


@pytest.mark.parametrize("two_theta", [0.1, 0.7, 1.3, 2.5])
def test_polarization_unpolarized_kahn_zero(two_theta):
    for plane in ("xy", "xz"):
        p = polarization_factor(0.0, INCIDENT, diffracted_in_plane(two_theta, plane), E_VECTOR)
        assert float(p) == pytest.approx(0.5 * (1 + math.cos(two_theta) ** 2), rel=1e-14)


@pytest.mark.parametrize("two_theta", [0.1, 0.7, 1.3, 2.5])
def test_polarization_fully_polarized(two_theta):
    # E along z: scattering in the x-y plane (perpendicular to E) keeps everything;
    # scattering in the x-z plane (E in the plane) gives cos^2(2 theta)
    perp = polarization_factor(1.0, INCIDENT, diffracted_in_plane(two_theta, "xy"), E_VECTOR)
    inplane = polarization_factor(1.0, INCIDENT, diffracted_in_plane(two_theta, "xz"), E_VECTOR)
    assert float(perp) == pytest.approx(1.0, rel=1e-14)
    assert float(inplane) == pytest.approx(math.cos(two_theta) ** 2, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kahn", [0.0, 0.5, 1.0])
def test_polarization_gradient_finite_at_zero_angle(kahn):
    # along the beam the factor is 1 and stationary in any direction
    def factor(t):
        d, _ = unitize(INCIDENT + t * torch.tensor([0.0, 0.6, 0.8], dtype=F64))
        return polarization_factor(kahn, INCIDENT, d, E_VECTOR)

    assert float(factor(torch.tensor(0.0, dtype=F64))) == 1.0
    g = grad(factor, 0.0)
    assert math.isfinite(g) and abs(g) < 1e-12


def test_polarization_gradient_matches_analytic():
    # Kahn = 1, in-plane: P = cos^2(2 theta) => dP/d(2 theta) = -sin(4 theta)
    for tt in (0.3, 1.0, 2.0):
        g = grad(lambda t: polarization_factor(1.0, INCIDENT, torch.stack(
            (torch.cos(t), torch.zeros_like(t), torch.sin(t))), E_VECTOR), tt)
        assert g == pytest.approx(-math.sin(2 * tt), rel=1e-9)


# ---------------------------------------------------------------- solid angle

def render_diagnostics(args, slow, fast):
    sim, _ = build(args)
    geo = sim.detector.geometry()
    with torch.no_grad():
        _, diags = sim.render_pixels(torch.tensor(slow), torch.tensor(fast), diagnostics=True)
    omega = torch.cat([d["omega"][:, 0, 0] for d in diags]).numpy()
    pos = sim.detector.positions(geo, torch.tensor(slow), torch.tensor(fast))[:, 0, 0].numpy()
    return omega, pos, {k: x.numpy() for k, x in geo.items()}


SMALL = CUBIC + ["-N", "1", "-distance", "100", "-pixel", "0.1", "-detpixels", "64", "-oversample", "1"]
PIXELS = ([0, 10, 32, 63, 63], [0, 50, 32, 0, 63])


@pytest.mark.parametrize("extra", [[], ["-detector_rotx", "10", "-detector_roty", "-20", "-twotheta", "5"]])
def test_pixel_solid_angle(extra):
    # omega = pixel^2 / R^2 * cos(obliquity), cos(obliquity) = (perpendicular distance) / R
    omega, pos, geo = render_diagnostics(SMALL + extra, *PIXELS)
    r = np.linalg.norm(pos, axis=1)
    perpendicular = pos @ geo["odet"]
    np.testing.assert_allclose(perpendicular, geo["close_distance"], rtol=1e-12)  # a flat detector
    np.testing.assert_allclose(omega, 1e-8 / r ** 2 * perpendicular / r, rtol=1e-12)


def test_point_pixel_solid_angle():
    omega, pos, _ = render_diagnostics(SMALL + ["-point_pixel"], *PIXELS)
    np.testing.assert_allclose(omega, 1 / np.linalg.norm(pos, axis=1) ** 2, rtol=1e-12)


@pytest.mark.parametrize("distance_mm", [100, 20])
def test_detector_solid_angle_sums_to_rectangle(distance_mm):
    # a 2a x 2b rectangle centred on the beam at distance d subtends
    # 4 asin(a b / sqrt((a^2 + d^2)(b^2 + d^2))); the per-pixel sum converges as (pixel/d)^2
    n, px = 512, 1e-4
    a = b = n * px / 2
    d = distance_mm / 1000
    exact = 4 * math.asin(a * b / math.sqrt((a * a + d * d) * (b * b + d * d)))
    # XDS convention puts the beam at the near point; ORGX = n/2 + 0.5 is the detector centre
    sim, _ = build(["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "1", "-lambda", "1", "-N", "1",
                    "-distance", str(distance_mm), "-pixel", "0.1", "-detpixels", str(n), "-xds",
                    "-ORGX", str(n / 2 + 0.5), "-ORGY", str(n / 2 + 0.5), "-oversample", "1"])
    with torch.no_grad():
        sim.run()
    assert sim.stats["omega_sum"] == pytest.approx(exact, rel=(px / d) ** 2)


# ---------------------------------------------------------------- lattice vectors

def cell_tensors(a, b, c, al, be, ga):
    return [torch.tensor(x, dtype=F64) for x in (a, b, c, *map(math.radians, (al, be, ga)))]


def rot_xyz(rx, ry, rz):
    """Rotation about x, then y, then z (right-handed), as a matrix acting on column vectors."""
    cx, sx, cy, sy, cz, sz = math.cos(rx), math.sin(rx), math.cos(ry), math.sin(ry), math.cos(rz), math.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


# cells whose reciprocal construction in nanoBragg is exact (alpha = beta = 90 or two right angles)
EXACT_CELLS = [(100, 100, 100, 90, 90, 90), (50, 60, 70, 90, 90, 90), (60, 70, 80, 90, 105, 90),
               (80, 80, 120, 90, 90, 120)]
CELLS = EXACT_CELLS + [(70, 80, 90, 75, 85, 95), (40, 55, 61, 101, 92.5, 118)]


def analytic_volume(a, b, c, al, be, ga):
    ca, cb, cg = (math.cos(math.radians(x)) for x in (al, be, ga))
    return a * b * c * math.sqrt(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg)


@pytest.mark.parametrize("cell", EXACT_CELLS)
def test_reciprocal_duality_and_volume(cell):
    real, recip, volume = lattice_vectors(cell=cell_tensors(*cell))
    real, recip, volume = real.numpy(), recip.numpy(), float(volume)
    np.testing.assert_allclose(real @ recip.T, np.eye(3), atol=1e-14)  # a.a* = 1, a.b* = 0, ...
    analytic = analytic_volume(*cell)
    assert volume == pytest.approx(analytic, rel=1e-12)
    assert np.linalg.det(real) == pytest.approx(analytic, rel=1e-12)
    a, b, c = cell[:3]
    np.testing.assert_allclose(np.linalg.norm(real, axis=1), [a, b, c], rtol=1e-13)
    cosines = [real[1] @ real[2] / (b * c), real[0] @ real[2] / (a * c), real[0] @ real[1] / (a * b)]
    np.testing.assert_allclose(cosines, [math.cos(math.radians(x)) for x in cell[3:]], atol=1e-13)
    # nanoBragg's default orientation: a* along x, b* in the x-y plane
    assert abs(recip[0, 1]) < 1e-15 and abs(recip[0, 2]) < 1e-15 and abs(recip[1, 2]) < 1e-15


def test_triclinic_cell_follows_the_reference():
    # nanoBragg sets c*_z = c* V / (a b c sin gamma*), exact only when sin gamma* = sin gamma, so a
    # general triclinic cell comes out with slightly different angles. The reference reports
    # (golden triclinic_misset): "Unit Cell: 70 80 90 75.0391 85.0136 95.0081", "volume = 481811".
    # The lengths and the volume used for the reciprocal vectors are the user's.
    cell = (70, 80, 90, 75, 85, 95)
    real, recip, volume = (x.numpy() for x in lattice_vectors(cell=cell_tensors(*cell)))
    np.testing.assert_allclose(np.linalg.norm(real, axis=1), cell[:3], rtol=1e-13)
    assert float(volume) == pytest.approx(analytic_volume(*cell), rel=1e-12)
    assert round(float(volume)) == 481811
    lens = np.linalg.norm(real, axis=1)
    angles = [math.degrees(math.acos(real[i] @ real[j] / lens[i] / lens[j])) for i, j in ((1, 2), (0, 2), (0, 1))]
    np.testing.assert_allclose(angles, [75.0391, 85.0136, 95.0081], atol=5e-5)
    # reciprocal vectors are (b x c) / V etc.: orthogonal to the other two real vectors exactly
    dual = real @ recip.T
    np.testing.assert_allclose(dual - np.diag(np.diag(dual)), 0, atol=1e-15)
    np.testing.assert_allclose(np.diag(dual), np.linalg.det(real) / float(volume), rtol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_misset_is_a_rigid_rotation(cell):
    angles = (10.0, 20.0, 30.0)
    real0, recip0, vol0 = (x.numpy() if torch.is_tensor(x) else x for x in lattice_vectors(cell=cell_tensors(*cell)))
    misset = [torch.tensor(math.radians(x), dtype=F64) for x in angles]
    real, recip, vol = lattice_vectors(cell=cell_tensors(*cell), misset=misset)
    real, recip = real.numpy(), recip.numpy()
    r = rot_xyz(*map(math.radians, angles))
    np.testing.assert_allclose(recip, recip0 @ r.T, atol=1e-14)
    np.testing.assert_allclose(real, real0 @ r.T, atol=1e-11)
    np.testing.assert_allclose(np.linalg.norm(real, axis=1), cell[:3], rtol=1e-13)
    np.testing.assert_allclose(real @ real.T, real0 @ real0.T, rtol=1e-12, atol=1e-10)
    assert float(vol) == pytest.approx(float(vol0), rel=1e-13)
