"""nanoBragg's -background and detector-model options equal the nanoBragg + nonBragg -> noisify pipeline."""
import numpy as np
import pytest

from nanobrag_torch import cli, noisify, nonbragg, rng

GEOMETRY = ["-lambda", "1", "-distance", "100", "-detpixels", "48", "-pixel", "0.1", "-oversample", "1",
            "-fluence", "1e22", "-noprogress", "-nopgm"]
# nanoBragg's MOSFLM beam centre (Xbeam, Ybeam) = nonBragg's (Fbeam, Sbeam) less half a pixel
BRAGG = ["-cell", "50", "50", "50", "90", "90", "90", "-default_F", "100", "-N", "3", "-Xbeam", "2.4",
         "-Ybeam", "2.7", "-seed", "7"]
DETECTOR = ["-psf", "gauss", "-psf_fwhm", "150", "-readout_noise", "2", "-flicker", "0.02", "-calib_seed", "5",
            "-gain", "1.5"]


def _pixels(path):
    return path.read_bytes()[512:]


@pytest.mark.parametrize("detector", [DETECTOR, []], ids=["detector-model", "plain-noise"])
def test_one_run_equals_the_three_programs(tmp_path, detector):
    x = np.linspace(0.0, 0.6, 61)
    np.savetxt(tmp_path / "t.stol", np.stack([x, 2.5 + np.cos(9 * x)], 1))
    def t(name):
        return str(tmp_path / name)

    assert cli.main(BRAGG + GEOMETRY + ["-floatfile", t("bragg.bin"), "-intfile", t("b.img"), "-nonoise"]) == 0
    assert nonbragg.main(["-stol", t("t.stol"), "-thick", "0.02", "-Xbeam", "2.75", "-Ybeam", "2.45"] + GEOMETRY
                         + ["-floatfile", t("bg.bin"), "-intfile", t("g.img"), "-nonoise"]) == 0
    total = np.fromfile(t("bragg.bin"), "<f4") + np.fromfile(t("bg.bin"), "<f4")
    total.astype("<f4").tofile(t("sum.bin"))
    assert cli.main(BRAGG + GEOMETRY + ["-background", t("t.stol"), "-background_thick", "0.02"] + detector
                    + ["-floatfile", t("one.bin"), "-intfile", t("one.img"), "-noisefile", t("one_noise.img")]) == 0
    one = np.fromfile(t("one.bin"), "<f4")
    assert np.abs(one - total).max() <= 1e-6 * np.abs(total).max()
    bg = np.fromfile(t("bg.bin"), "<f4")
    assert bg.min() > 0 and bg.sum() > 0.1 * total.sum()  # the background is really there
    if detector:
        assert noisify.main(["-floatfile", t("sum.bin"), "-detpixels", "48", "-pixel", "0.1", "-seed", "7"]
                            + detector + ["-intfile", t("nz.img"), "-noisefile", t("nz_noise.img"), "-nopgm"]) == 0
        assert _pixels(tmp_path / "one_noise.img") == _pixels(tmp_path / "nz_noise.img")
    else:  # nanoBragg's own Poisson noise, of the summed image
        noisy, _, _ = rng.noise_image(total.reshape(48, 48), -7, 40.0, (0, 47, 0, 47))
        assert _pixels(tmp_path / "one_noise.img") == noisy.astype("<u2").tobytes()


@pytest.mark.parametrize("extra, word", [(["-background_thick", "0.1"], "-background"),
                                         (["-psf", "disk"], "-psf"), (["-readout_noise", "-1"], "readout_noise"),
                                         (["-background", "missing.stol"], "missing.stol")])
def test_bad_options(tmp_path, capsys, extra, word):
    out = str(tmp_path / "f.bin")
    code = cli.main(BRAGG + GEOMETRY + extra + ["-floatfile", out, "-intfile", str(tmp_path / "i.img"),
                                                "-noisefile", str(tmp_path / "n.img")])
    err = capsys.readouterr().err.strip()
    assert code in (1, 2) and word in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())
