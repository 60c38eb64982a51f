"""C-compatible random numbers.

Literal expectations were produced by a throwaway harness (outside the repository) that
compiled the C program's own ran1/poidev/gaussdev/gammln/mosaic_rotation_umat/umat2misset with
`gcc -O3 ... -lm` and printed values with %.9g (floats) or %.17g (doubles).
"""
import gzip
import math
import os
import re
import time

import numpy as np
import pytest

from nanobrag_torch import rng

from conftest import GOLDEN


def _draws(seed, n, table=None):
    r = rng.Ran1(seed, table)
    return [r.next() for _ in range(n)], r


@pytest.mark.parametrize("seed, expected, idum_after", [
    (-1, [0.415999353, 0.091964893, 0.75641048, 0.52970022, 0.930436492], None),
    (-12345678, [0.765989304, 0.023453664, 0.589726627, 0.535101593, 0.982231438], 1148745444),
    (-1234, [0.661984384, 0.134913027, 0.0410350449, 0.94013375, 0.411033601], 2091479949),
])
def test_ran1_first_values(seed, expected, idum_after):
    got, r = _draws(seed, len(expected))
    assert np.array_equal(np.float32(got), np.float32(expected))
    if idum_after is not None:
        assert r.idum == idum_after


def test_ran1_nonnegative_seed_on_fresh_table_is_seed_one():
    # C: seed 0 or any positive seed on a never-initialised table behaves as seed -1.
    ref, _ = _draws(-1, 3)
    for seed in (0, 7):
        got, r = _draws(seed, 3)
        assert got == ref
        assert r.idum == 1551901393


def test_ran1_shared_table_like_c_statics():
    # C: seed -5 draws 3, then a *positive* seed 9 continues with the same shuffle table.
    table = rng.new_table()
    a, ra = _draws(-5, 3, table)
    b, rb = _draws(9, 4, table)
    assert np.array_equal(np.float32(a), np.float32([0.172860548, 0.680409431, 0.917078257]))
    assert np.array_equal(np.float32(b), np.float32([0.91751039, 7.04373233e-05, 0.826693356, 0.23519443]))
    assert (ra.idum, rb.idum) == (1317056024, 274558334)


def test_ran1_range():
    got, _ = _draws(-42, 20000)
    got = np.array(got)
    assert got.min() > 0.0 and got.max() <= np.float32(1 - 1.2e-7)
    assert abs(got.mean() - 0.5) < 0.01


@pytest.mark.parametrize("mean, expected", [
    (3.5, [6, 5, 2, 3, 4, 3, 4, 1, 2, 1]),
    (50, [43, 48, 50, 52, 38, 61, 44, 50, 57, 36]),
    (2e6, [1999429.88, 2001628.25, 2001720, 2003212.38, 2001594.62, 1999800.38, 2000710.38,
           2000157.5, 1999868, 1998886.38]),
])
def test_poidev_matches_c_sequence(mean, expected):
    r = rng.Ran1(-4321)
    got = [rng.poidev(mean, r) for _ in expected]
    assert np.array_equal(np.float32(got), np.float32(expected))


@pytest.mark.parametrize("mean, n", [(3.0, 20000), (50.0, 20000), (2e6, 4000)])
def test_poisson_statistics(mean, n):
    r = rng.Ran1(-987)
    x = np.array([r.poidev(mean) for _ in range(n)])
    # mean within 5 standard errors; variance within 10 %
    assert abs(x.mean() - mean) < 5 * np.sqrt(mean / n)
    assert abs(x.var() / mean - 1) < 0.1
    if mean < 1e6:
        assert np.all(x == np.floor(x)) and x.min() >= 0


def test_gaussdev_statistics():
    r = rng.Ran1(-5)
    x = np.array([rng.gaussdev(r) for _ in range(20000)])
    assert abs(x.mean()) < 0.05 and abs(x.std() - 1) < 0.03


def test_mosaic_umats_match_c_and_are_rotations():
    u = rng.mosaic_umats(0.0087266462599716477, 3, -12345678)
    assert np.array_equal(u[0], np.eye(3))  # domain 0 forced to identity, draws still consumed
    expected1 = [0.99996592089784464, -0.0079751680914580177, 0.0021339486494309119,
                 0.0079761872189555976, 0.99996807949662869, -0.0004694946988297568,
                 -0.0021301362335746331, 0.00048649947281547405, 0.99999761291609557]
    assert np.array_equal(u[1].ravel(), expected1)
    many = rng.mosaic_umats(0.5, 200, -99)
    for m in many:
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-12)
        assert abs(np.linalg.det(m) - 1) < 1e-12


def test_random_misset_matches_c():
    umat, angles = rng.random_misset(-777)
    expected = [0.9956688563559184, -0.086577382905046074, 0.033880455312916745,
                0.088165957443236576, 0.99491952635346759, -0.048599383007493044,
                -0.029500719160978222, 0.051375994879949954, 0.99824356482728227]
    assert np.array_equal(umat.ravel(), expected)
    assert angles == (0.051421023130003796, 0.029504999879754152, 0.088319121605049608)


def test_umat2misset_roundtrip_of_rotation():
    # For an XYZ rotation R = Rz Ry Rx the angles come back.
    ax, ay, az = 0.3, -0.2, 1.1
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    assert np.allclose(rng.umat2misset(rz @ ry @ rx), (ax, ay, az))


def golden_dir():
    return str(GOLDEN)


def test_noise_image_identical_to_golden():
    case = os.path.join(golden_dir(), "noise_seed")
    if not os.path.isdir(case):
        pytest.skip(f"golden suite not found at {golden_dir()} (set NB_GOLDEN_DIR)")
    img = np.frombuffer(gzip.open(os.path.join(case, "float.bin.gz")).read(), "<f4").reshape(256, 256)
    ref = gzip.open(os.path.join(case, "noise.img.gz")).read()
    out, photons, overloads = rng.noise_image(img, -1234, 40.0, (0, 255, 0, 255))
    assert out.tobytes() == ref[512:]
    with open(os.path.join(case, "stdout.txt")) as handle:
        line = re.search(r"^.* photons on noise image \(\d+ overloads\)$", handle.read(), re.M).group(0)
    assert "%.0f photons on noise image (%d overloads)" % (photons, overloads) == line


def test_noise_image_roi_and_overloads():
    img = np.full((6, 7), 5.0, dtype=np.float32)
    img[2, 3] = 1e7
    out, photons, overloads = rng.noise_image(img, -3, 40.0, (1, 4, 2, 3))
    assert out[:2].sum() == 0 and out[4:].sum() == 0 and out[:, 0].sum() == 0 and out[:, 5:].sum() == 0
    assert out[2, 3] == 65535 and overloads == 1
    assert photons > 9e6
    # Pixels outside the ROI draw nothing: the ROI result equals the cropped image's.
    crop, p2, o2 = rng.noise_image(img[2:4, 1:5], -3, 40.0, (0, 3, 0, 1))
    assert np.array_equal(crop, out[2:4, 1:5]) and (p2, o2) == (photons, overloads)


def test_noise_image_speed():
    img = np.random.default_rng(0).uniform(0, 100, (1024, 1024)).astype(np.float32)
    start = time.perf_counter()
    rng.noise_image(img, -1, 40.0, (0, 1023, 0, 1023))
    assert time.perf_counter() - start < 5.0


def _reference_noise(img, seed, adc, roi):
    """The C's noise loop pixel by pixel through the plain transcription of poidev."""
    x0, x1, y0, y1 = roi
    r, out, total, over = rng.Ran1(seed), np.zeros(img.shape, np.uint16), 0.0, 0
    r.spare = [0, 0.0]
    for s in range(img.shape[0]):
        for f in range(img.shape[1]):
            if x0 <= f <= x1 and y0 <= s <= y1:
                value = _c_poidev(img[s, f], r)
                total += value
                value += adc
                if value > 65535.0:
                    value, over = 65535.0, over + 1
                out[s, f] = int(value) & 0xFFFF if -2.0**31 < value < 2.0**31 else 0
    return out, total, over


@pytest.mark.parametrize("roi", [(0, 8, 0, 79), (2, 5, 10, 60), (5, 3, 0, 10)])
def test_noise_image_matches_per_pixel_poidev(roi):
    # The image loop prepares each mean's statics in parallel and tabulates ln Gamma: the same
    # deviates as one poidev call per pixel, on both sides of the 12 and 1e6 thresholds.
    g = np.random.default_rng(3)
    img = np.concatenate([g.uniform(0, 30, 300), g.uniform(11.5, 12.5, 100), g.uniform(12, 3e4, 250),
                          g.uniform(9e5, 1.1e6, 61), [12.0, 1e6, 0.0, -1.0, 11.99, 5e5, 3.0, 2e6, 1e6]])
    img = g.permutation(img).astype(np.float32).reshape(80, 9)
    fast, p1, o1 = rng.noise_image(img, -11, 40.0, roi)
    slow, p2, o2 = _reference_noise(img, -11, 40.0, roi)
    assert np.array_equal(fast, slow) and (p1, o1) == (p2, o2)


def test_row_noise_fed_in_blocks_equals_noise_image():
    # nonBragg feeds the noise worker block by block as rows render: one stream, the same image.
    img = np.random.default_rng(8).uniform(0, 3e3, (40, 23)).astype(np.float32)
    img[7, 5] = 5.0
    roi = (3, 19, 2, 35)
    noise = rng.RowNoise(img.shape, -9, 40.0, roi)
    for first in range(2, 36, 5):
        noise.add(first, img[first:min(first + 5, 36), 3:20])
    assert all(np.array_equal(a, b) for a, b in zip(noise.result(), rng.noise_image(img, -9, 40.0, roi)))


def test_fast_tan_gives_glibc_tan_rounded_to_float():
    # _rejected's tan(pi u) is a polynomial ratio checked against a band around float32 rounding;
    # the float must be the C's (glibc's double tan rounded), near the poles and zeros too.
    g = np.random.default_rng(5)
    near = [np.float32(c).view(np.int32) + np.arange(-3000, 3000, dtype=np.int32) for c in (0.25, 0.5, 0.75, 1.0)]
    u = np.concatenate([g.random(100_000).astype(np.float32), *(n.view(np.float32) for n in near),
                        np.float32([1e-9, 2.0**-30, 1 - 2.0**-24])])
    u = u[(u > 0) & (u < 1)].astype(np.float64)
    tan = rng._impl("_tan_pi_f32")
    got = np.array([tan(v) for v in u], dtype=np.float32)
    want = np.array([math.tan(math.pi * v) for v in u]).astype(np.float32)
    assert np.array_equal(got, want)


def _c_gaussdev(r, spare):
    """The C's gaussdev transcribed plainly (float rounding by np.float32); spare: [iset, gset]."""
    f32 = np.float32
    if spare[0]:
        spare[0] = 0
        return spare[1]
    while True:
        v1, v2 = f32(2.0 * rng._ran1(r.sd, r.tab) - 1.0), f32(2.0 * rng._ran1(r.sd, r.tab) - 1.0)
        rsq = f32(v1 * v1 + v2 * v2)
        if not (rsq >= 1.0 or rsq == 0.0):
            break
    fac = f32(math.sqrt(-2.0 * math.log(float(rsq)) / float(rsq)))
    spare[:] = [1, float(f32(v1 * fac))]
    return float(f32(v2 * fac))


def _c_poidev(xm, r):
    """The C's poidev transcribed plainly: no tabulated ln Gamma, glibc's tan, no draw ahead."""
    f32, x = np.float32, float(np.float32(xm))
    if x > 1e6:
        return float(f32(x + math.sqrt(x) * _c_gaussdev(r, r.spare)))
    if x < 12.0:
        g, em, t = float(f32(math.exp(-x))), -1.0, 1.0
        while True:
            em, t = em + 1.0, float(f32(t * rng._ran1(r.sd, r.tab)))
            if not t > g:
                return em
    sq, alxm = f32(math.sqrt(2.0 * x)), f32(math.log(x))
    g = f32(f32(x) * alxm) - f32(rng._gammln(f32(x + 1.0)))
    while True:
        while True:
            y = f32(math.tan(math.pi * rng._ran1(r.sd, r.tab)))
            em = f32(sq * y) + f32(x)
            if not em < 0.0:
                break
        em = f32(math.floor(em)) if math.isfinite(em) else em
        t = f32(0.9 * (1.0 + float(y * y)) * math.exp(float(em * alxm - f32(rng._gammln(f32(em + 1.0))) - g)))
        if not rng._ran1(r.sd, r.tab) > t:
            return float(em)


def _c_stream(seed, calib_seed):
    """Two seed variables over one table and one Gaussian spare, as noisify.c's statics."""
    noise, calib = rng.Ran1(seed), rng.Ran1(calib_seed)
    calib.tab = noise.tab
    noise.spare = calib.spare = [0, 0.0]
    return noise, calib


@pytest.mark.parametrize("flicker, calibration", [(0.0, 0.0), (0.0, 0.03), (0.05, 0.03), (0.05, 0.0)])
def test_photon_counts_equal_the_plain_c_loop(flicker, calibration):
    # The compiled loop draws the next tan's uniform before each acceptance test and gives it back
    # when something else (a Gaussian, the direct method, the >1e6 branch, the end) draws next.
    g = np.random.default_rng(4)
    means = g.permutation(np.concatenate([g.uniform(0, 30, 150), g.uniform(12, 3e4, 300), g.uniform(9e5, 1.1e6, 30),
                                          [12.0, 0.0, 11.99, 2e6, 1e6, 5e3, 5e3]])).astype(np.float32)
    streams = rng.SharedStreams(-21, -77)
    counts, total = streams.photon_counts(means, flicker, calibration)
    after = streams.gaussians(5)
    noise, calib = _c_stream(-21, -77)
    want = []
    for x in means:
        x = float(x)
        if flicker > 0:
            x *= 1.0 + flicker * _c_gaussdev(noise, noise.spare)
        if calibration > 0:
            x *= 1.0 + calibration * _c_gaussdev(calib, calib.spare)
        want.append(_c_poidev(x, noise))
    assert np.array_equal(counts, np.array(want)) and total == float(np.cumsum(want)[-1])
    assert np.array_equal(after, [_c_gaussdev(noise, noise.spare) for _ in range(5)])
