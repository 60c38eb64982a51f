"""noisify: PSF kernels and convolution (analytic checks, gradients), C quirks, bad input."""
import math

import numpy as np
import pytest
import torch

from nanobrag_torch import detector_model as dm
from nanobrag_torch import noisify


@pytest.mark.parametrize("kind, fwhm, tol", [("gauss", 1.5, 1e-9), ("fiber", 0.8, 0.05)])
def test_kernel_is_normalized(kind, fwhm, tol):
    """Integrated over a large enough square the PSF holds all photons (the fiber's tail is slow:
    beyond radius r it loses g / sqrt(g^2 + r^2))."""
    k = dm.psf_kernel(kind, fwhm, 30)
    assert abs(float(k.sum()) - 1.0) < tol
    assert torch.allclose(k, k.flip(0), rtol=1e-12, atol=1e-16) and torch.allclose(k, k.T, rtol=1e-12, atol=1e-16)


def test_psf_conserves_photons_away_from_edges():
    """Photons beyond each pixel's radius are added back from the C's continuous-tail estimate,
    so a Gaussian PSF conserves the total to that estimate's accuracy; the fiber's long tail
    (auto radius clipped at the image size) runs off the edges."""
    img = torch.zeros(40, 50, dtype=torch.float64)
    img[20, 25], img[10, 12] = 1000.0, 30.0
    out = dm.apply_psf(img, "gauss", 1.2, radius=0)
    assert float(out.sum()) == pytest.approx(float(img.sum()), rel=1e-5)
    assert float(out[20, 25]) < 1000.0 and float(out[20, 26]) > 0
    fiber = dm.apply_psf(img, "fiber", 1.2, radius=0)
    assert 0.95 * float(img.sum()) < float(fiber.sum()) < float(img.sum())


def test_psf_spill_past_the_right_edge_wraps_to_the_next_row():
    """noisify.c lets x == width through its bounds test: that spill lands at the next row's start."""
    img = torch.zeros(5, 6, dtype=torch.float64)
    img[2, 5] = 100.0
    k = dm.psf_kernel("gauss", 1.0, 1)
    out = dm.apply_psf(img, "gauss", 1.0, radius=1)
    lost = 100.0 * math.exp(-math.log(16.0) * (1 / 1.0) ** 2) / 30  # the C's tail beyond radius 1
    assert float(out[3, 0]) == pytest.approx(100.0 * float(k[1, 2]) + lost, rel=1e-12)  # (y=2, x=6)
    assert float(out[2, 0]) == pytest.approx(100.0 * float(k[0, 2]) + lost, rel=1e-12)  # (y=1, x=6)


def test_psf_gradients():
    img = (torch.rand(7, 8, dtype=torch.float64) * 50).requires_grad_()
    fwhm = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    for kind in ("gauss", "fiber"):
        assert torch.autograd.gradcheck(lambda i, f, k=kind: dm.apply_psf(i, k, f, radius=2), (img, fwhm))


def test_noise_statistics():
    """Counts of a flat image have the Poisson mean and variance; the same seed gives the same counts."""
    flat = np.full((200, 200), 50.0)
    model = dm.DetectorModel(calibration=0.0)
    a = dm.detector_response(flat, model, seed=-7)
    b = dm.detector_response(flat, model, seed=-7)
    assert np.array_equal(a.noisy, b.noisy)
    counts = a.photons
    assert abs(counts.mean() - 50.0) < 0.2 and abs(counts.var() - 50.0) < 2.0
    assert np.array_equal(a.noisy, (counts + 40).astype(np.uint16))


def _args(tmp_path, *extra):
    return ["-floatfile", str(tmp_path / "in.bin"), "-intfile", str(tmp_path / "i.img"),
            "-noisefile", str(tmp_path / "n.img"), "-pgmfile", str(tmp_path / "p.pgm"), *extra]


@pytest.mark.parametrize("extra, code, word", [
    (["-detpixels", "9"], 1, "in.bin"), (["-bits", "8"], 2, "-bits"), (["-psf", "disk"], 2, "-psf"),
    (["-psf_radius", "-2"], 2, "psf_radius"), (["-gain", "x"], 2, "-gain")])
def test_bad_input_one_line_and_no_files(tmp_path, capsys, extra, code, word):
    np.ones(64, dtype="<f4").tofile(tmp_path / "in.bin")
    assert noisify.main(_args(tmp_path, "-seed", "1", *extra)) == code
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin"]


def test_guessed_size_and_32_bit_output(tmp_path):
    np.full(6 * 4, 10.0, dtype="<f4").tofile(tmp_path / "in.bin")
    assert noisify.main(_args(tmp_path, "-bits", "32", "-seed", "3", "-calibration", "0")) == 0
    data = (tmp_path / "n.img").read_bytes()
    assert b"SIZE1=4;\nSIZE2=6;" in data[:512] and b"TYPE=long_integer" in data[:512]
    assert len(data) == 512 + 4 * 24
    assert (tmp_path / "p.pgm").read_bytes() == b"P5\n4 6\n# pixels scaled by 1\n255\n" + bytes([50]) * 24


@pytest.mark.parametrize("kind, radius", [("gauss", 0), ("fiber", 3)])
def test_compiled_spread_equals_the_torch_path(kind, radius):
    """The compiled gather used without gradients and the differentiable tap sums agree."""
    gen = torch.Generator().manual_seed(3)
    img = torch.poisson(torch.rand(30, 41, dtype=torch.float64, generator=gen) * 40.0, generator=gen)
    img[5, 40], img[29, 3] = 5000.0, 700.0  # bright pixels (larger radii), one on the wrapping edge
    with torch.no_grad():
        fast = dm.apply_psf(img, kind, 1.7, radius)
    slow = dm.apply_psf(img.clone().requires_grad_(), kind, 1.7, radius)
    assert torch.allclose(fast, slow.detach(), rtol=1e-12, atol=1e-12)


def _c_order_psf(img, radii, kernel, lost):
    """noisify.c's spread loop written plainly: each source pixel in index order scatters into a
    float32 buffer (rounding at every add); x == W is allowed and lands on the next row."""
    h, w = img.shape
    big = kernel.shape[0] // 2
    out = np.zeros(h * w + 1, dtype=np.float32)
    for i in range(h * w):
        y0, x0 = divmod(i, w)
        if img[y0, x0] <= 0.0:
            continue
        for dx in range(-big, big + 1):
            for dy in range(-big, big + 1):
                k, x, y = kernel[dy + big, dx + big], x0 + dx, y0 + dy
                if k == 0.0 or dx * dx + dy * dy > radii[y0, x0] ** 2 or not (0 <= x <= w and 0 <= y <= h):
                    continue
                if y * w + x <= h * w:
                    out[y * w + x] = np.float32(float(out[y * w + x]) + float(img[y0, x0]) * k)
    return (out[:h * w].astype(np.float64) + lost / (h * w)).astype(np.float32).reshape(h, w)


@pytest.mark.parametrize("kind, radius", [("gauss", 0), ("fiber", 3)])
def test_c_rounding_psf_is_the_c_loop_bit_for_bit(kind, radius):
    """With the C's rounding (noisify, detector options) the spread adds in the C's source order
    into float32, row 0 taking no spill and the last spill dropped: the same float32 values."""
    gen = np.random.default_rng(4)
    img = gen.poisson(gen.uniform(0, 40, (23, 17))).astype(np.float64)
    img[5, 16], img[22, 16], img[0, 0], img[3, 3] = 5000.0, 900.0, 700.0, 0.0
    fwhm = 1.7
    _, radii = dm.psf_radii(kind, img, fwhm, radius, 23)
    kernel = dm.psf_kernel(kind, fwhm, int(radii.max())).numpy()
    lost = dm._lost_photons(kind, torch.from_numpy(img), torch.from_numpy(radii.astype(np.float64)), fwhm).numpy()
    lost = float(np.cumsum(np.where(img > 0, lost, 0.0))[-1])
    got = dm.apply_psf(torch.from_numpy(img), kind, fwhm, radius, c_rounding=True).to(torch.float32).numpy()
    assert np.array_equal(got, _c_order_psf(img, radii, kernel, lost))


@pytest.mark.parametrize("kind, radius", [("gauss", 0), ("gauss", 3), ("fiber", 2)])
def test_psf_spread_while_drawing_is_the_c_loop(kind, radius, monkeypatch):
    """noisify spreads each block of rows as soon as its counts (and the radius's rows below) are
    drawn, guessing the automatic radius from the brightest mean: the C's float32 image anyway."""
    from nanobrag_torch import rng

    monkeypatch.setattr(dm.NoiseDraws, "BLOCK_ROWS", 4)
    followed = []
    real = dm._following_psf
    monkeypatch.setattr(dm, "_following_psf", lambda *a: followed.append(real(*a)) or followed[-1])
    gen = np.random.default_rng(6)
    photons = gen.uniform(0, 60, (21, 13)).astype(np.float32).astype(np.float64)
    photons[3, 12], photons[9, 0], photons[14, 5], photons[20, 12] = 4000.0, 0.0, 900.0, 300.0
    model = dm.DetectorModel(psf=kind, psf_fwhm_px=1.3, psf_radius=radius, readout_noise=1.5, flicker=0.01)
    counts, noisy, overloads = dm.noisy_response(photons, model, -17, -5)
    assert followed and followed[0] is not None
    raw, _ = rng.SharedStreams(-17, -5).photon_counts(photons, 0.01, 0.03)
    size, radii = dm.psf_radii(kind, raw, 1.3, radius, 21)
    lost = dm._lost_photons(kind, torch.from_numpy(raw), torch.from_numpy(radii.astype(np.float64)), 1.3).numpy()
    lost = float(np.cumsum(np.where(raw > 0, lost, 0.0))[-1])
    assert np.array_equal(counts.astype(np.float32), _c_order_psf(raw, radii, dm.psf_kernel(kind, 1.3, size).numpy(),
                                                                   lost))
    assert noisy.dtype == np.uint16 and 0 <= overloads
    here = dm.noisy_response(photons, model, -17, -5, worker=False)  # drawn in the calling thread
    assert np.array_equal(here[0], counts) and np.array_equal(here[1], noisy) and here[2] == overloads
    wrong_guess = dm._following_psf(dm.NoiseDraws(photons, model, -17, -5), model, 1e-3)
    assert (wrong_guess is None) == (radius == 0)


@pytest.mark.parametrize("bits", [16, 32])
def test_compiled_integer_image_equals_the_numpy_casts(bits, monkeypatch):
    from nanobrag_torch import amorphous_kernel

    photons = np.array([0.0, 1.5, -3.2, 65500.0, 7e4, 3e9, -3e9, 1e20, -1e20, np.nan, np.inf, -np.inf, 2147483600.0])
    readout = np.linspace(-2.0, 2.0, photons.size)
    model = dm.DetectorModel(gain=1.5, adc_offset=40.0, readout_noise=3.0, bits=bits)
    fast = dm.to_pixels(photons, model, readout), dm.to_pixels(photons, model)
    monkeypatch.setattr(amorphous_kernel, "compiled_adc", lambda: None)
    slow = dm.to_pixels(photons, model, readout), dm.to_pixels(photons, model)
    for (a, n), (b, m) in zip(fast, slow):
        assert a.dtype == b.dtype and np.array_equal(a, b) and n == m
