"""`noisify`: noisify.c's command line (detector noise and PSF on a float image of photons/pixel)."""
import math
import os
import time
from dataclasses import dataclass, replace

import numpy as np

from . import detector_model
from .cnum import atof, atoi
from .companion import Rules, check_output_names, console_entry, has, line_writer, run_main, validate
from .errors import InputFileError, UsageError
from .io.atomic import atomic_open
from .io.floatimage import read_float_image
from .io.smv import c_g, keyed_header, read_smv, write_raw_smv
from .options import F, I, S
from .settings import freeze, scratch

USAGE = """usage: noisify -floatfile floatimage.bin [options]
Options follow noisify.c (see README): -scale -gain -adc -readout_noise -flicker -calibration
-calib_seed -seed -psf gauss|fiber -psf_fwhm -psf_radius -distance -detpixels -detsize -pixel
-lambda -Xbeam -Ybeam -header -bits -intfile -noisefile -pgmfile -nonoise -nopgm  --debug"""

_FLOATS = ("lambda Xbeam Ybeam distance detsize detsize_x detsize_y pixel psf_radius psf_rad psf_fwhm "
           "psf_width psf_sigma fluence readout_noise readout readnoise flicker calibration scale adc gain "
           "phi osc")
_INTS = "detpixels detpixels_x detpixels_y bits seed calib_seed badpix_seed hotpix_seed"
_FILES = "floatfile floatimage bin header pgmfile pgmimage intfile intimage noisefile noiseimage"
VOCABULARY = {**{k: (F,) for k in _FLOATS.split()}, **{k: (I,) for k in _INTS.split()},
              **{k: (S,) for k in _FILES.split()}, "nonoise": (), "nopgm": (), "psf": (("gauss", "fiber"),)}


@dataclass(frozen=True)
class NoisifySettings:
    """noisify.c's settings (SI lengths; lambda_ in A, phi0/osc in degrees, as noisify keeps
    them). Made once by `parse`; `with_dimensions` settles the image size as a new object."""

    distance: float = 100.0e-3
    detsize_x: float = 102.4e-3
    detsize_y: float = 102.4e-3
    pixel: float = 0.1e-3
    Xbeam: float = -1e99  # -1e99: not given
    Ybeam: float = -1e99
    xpixels: int = 0
    ypixels: int = 0
    lambda_: float = 1.0
    psf: str | None = None
    psf_fwhm: float = 46e-6
    psf_radius: int = 0
    fluence: float = 125932015286227086360700780544.0
    floatfile: str | None = None
    headerfile: str | None = None
    header: tuple | None = None  # (raw header bytes, parsed SMV) of -header
    pgmfile: str = "image.pgm"
    intfile: str = "intimage.img"
    noisefile: str = "noiseimage.img"
    bits: int = 16
    calculate_noise: bool = True
    write_pgm: bool = True
    readout: float = 0.0
    flicker: float = 0.0
    calibration: float = 0.03
    scale: float = 1.0
    seed: int = 0
    calib_seed: int = 123456789
    adc: float = 40.0
    gain: float = 1.0
    phi0: float = 0.0
    osc: float = 1.0


def _set(name, scale=1.0, conv=atof):
    return lambda v, a: setattr(v, name, conv(a[0]) * scale if conv is atof else conv(a[0]))


def _rules():
    r = Rules()
    r.add(has("-lambda"), 1, _set("lambda_"))
    r.add(has("-Xbeam"), 1, _set("Xbeam", 1e-3))
    r.add(has("-Ybeam"), 1, _set("Ybeam", 1e-3))
    r.add(has("-distance"), 1, _set("distance", 1e-3))
    r.add(has("-detsize", length=8), 1, lambda v, a: (setattr(v, "detsize_x", atof(a[0]) / 1000.0),
                                                      setattr(v, "detsize_y", atof(a[0]) / 1000.0)))
    r.add(has("-detsize_x"), 1, _set("detsize_x", 1e-3))
    r.add(has("-detsize_y"), 1, _set("detsize_y", 1e-3))
    r.add(has("-detpixels", length=10), 1, lambda v, a: (setattr(v, "xpixels", atoi(a[0])),
                                                         setattr(v, "ypixels", atoi(a[0]))))
    r.add(has("-detpixels_x"), 1, _set("xpixels", conv=atoi))
    r.add(has("-detpixels_y"), 1, _set("ypixels", conv=atoi))
    r.add(has("-pixel"), 1, _set("pixel", 1e-3))
    r.add(has("-psf", length=4), 1, lambda v, a: setattr(v, "psf", "gauss" if "gauss" in a[0] else
                                                         "fiber" if "fiber" in a[0] else None))
    r.add(has("-psf_rad"), 1, lambda v, a: setattr(v, "psf_radius", int(atof(a[0]))))
    r.add(has("-psf_si", "-psf_fw", "-psf_wi"), 1, _set("psf_fwhm", 1e-6))
    r.add(has("-fluence"), 1, _set("fluence"))
    r.add(has("-floatfile", "-floatimage", "-bin"), 1, _set("floatfile", conv=str))
    r.add(has("-header"), 1, _set("headerfile", conv=str))
    r.add(has("-pgmfile", "-pgmimage"), 1, _set("pgmfile", conv=str))
    r.add(has("-intfile", "-intimage"), 1, _set("intfile", conv=str))
    r.add(has("-bits"), 1, _set("bits", conv=atoi))
    r.add(has("-noisefile", "-noiseimage"), 1, _set("noisefile", conv=str))
    r.add(has("-nonoise"), 0, lambda v, a: setattr(v, "calculate_noise", False))
    r.add(has("-nopgm"), 0, lambda v, a: setattr(v, "write_pgm", False))
    r.add(has("-readout", "-readnoi"), 1, _set("readout"))
    r.add(has("-flicker"), 1, _set("flicker"))
    r.add(has("-calibration"), 1, _set("calibration"))
    r.add(has("-scale"), 1, _set("scale"))
    r.add(has("-seed"), 1, lambda v, a: setattr(v, "seed", -atoi(a[0])))
    r.add(has("-calib_seed"), 1, lambda v, a: setattr(v, "calib_seed", -atoi(a[0])))
    r.add(has("-adc"), 1, _set("adc"))
    r.add(has("-gain"), 1, _set("gain"))
    r.add(has("-phi"), 1, _set("phi0"))
    r.add(has("-osc"), 1, _set("osc"))
    return r


RULES = _rules()


def parse(argv: list[str]) -> NoisifySettings:
    def positional(tok):
        return "floatimage.bin" in tok  # the C takes such a bare argument as the input image

    validate(argv, VOCABULARY, positional)
    v = scratch(NoisifySettings(seed=-int(time.time())))  # the parser's working copy
    for tok in argv:
        if positional(tok) and not tok.startswith("-"):
            v.floatfile = tok
    RULES.apply(v, argv)
    if v.floatfile is None:
        raise UsageError("no input image given (-floatfile FILE)")
    if v.bits not in (16, 32):
        raise UsageError(f"option -bits: 16 or 32, got {v.bits}")
    if v.psf_radius < 0:
        raise UsageError(f"option -psf_radius: must not be negative, got {v.psf_radius}")
    if not v.pixel > 0:
        raise UsageError(f"option -pixel: must be positive, got {v.pixel:g}")
    if v.calculate_noise is False:
        v.calibration = v.readout = v.flicker = 0.0
    return freeze(NoisifySettings, v)


def _read_header(path):
    """(raw header bytes, parsed SMV) of the -header image."""
    smv = read_smv(path)
    with open(path, "rb") as handle:
        return handle.read(smv.header_bytes), smv


def with_dimensions(settings: NoisifySettings, file_pixels: int, say) -> NoisifySettings:
    """The settings with the detector size as noisify.c settles it: -header, -detpixels, else
    guessed from the file (a new object)."""
    v = scratch(settings)
    pixels = file_pixels
    if v.header is not None:
        smv = v.header[1]
        v.xpixels, v.ypixels = smv.width, smv.height
        pixels = v.xpixels * v.ypixels
        for key, name, convert in (("PIXEL_SIZE", "pixel", 1e-3), ("DISTANCE", "distance", 1e-3),
                                   ("WAVELENGTH", "lambda_", 1e-10), ("BEAM_CENTER_X", "Xbeam", 1e-3)):
            value = smv.value(key)
            if value is not None:
                setattr(v, name, value * convert)
        v.detsize_x, v.detsize_y = v.pixel * v.xpixels, v.pixel * v.ypixels
        value = smv.value("BEAM_CENTER_Y")
        if value is not None:
            v.Ybeam = v.detsize_y - value / 1000.0
    if not v.xpixels and not v.ypixels:
        say("WARNING: guessing xy pixel dimensions.")
        v.xpixels = int(math.sqrt(pixels))
        v.ypixels = pixels // v.xpixels if v.xpixels else 0
        while pixels != v.xpixels * v.ypixels and v.xpixels > 0:
            v.xpixels -= 1
            v.ypixels = pixels // v.xpixels if v.xpixels else 0
        if pixels != v.xpixels * v.ypixels:
            v.xpixels, v.ypixels = pixels, 1
    if v.xpixels and not v.ypixels:
        v.ypixels = pixels // v.xpixels
    if not v.xpixels and v.ypixels:
        v.xpixels = pixels // v.ypixels
    if v.xpixels:
        v.detsize_x = v.pixel * v.xpixels
    if v.ypixels:
        v.detsize_y = v.pixel * v.ypixels
    if v.xpixels <= 0 or v.ypixels <= 0:
        raise InputFileError(f"{v.floatfile}: cannot tell the image size ({file_pixels} floats)")
    v.Xbeam = v.detsize_x / 2.0 if v.Xbeam <= -1e99 else v.Xbeam
    v.Ybeam = v.detsize_y / 2.0 if v.Ybeam <= -1e99 else v.Ybeam
    return freeze(NoisifySettings, v)


def _report(v, say):
    say("  distance=%g detsize=%gx%g  pixel=%g meters (%dx%d pixels)"
        % (v.distance, v.detsize_x, v.detsize_y, v.pixel, v.xpixels, v.ypixels))
    say("  Xbeam=%g Ybeam=%g" % (v.Xbeam, v.Ybeam))
    if v.psf is not None:
        kind = "Gaussian" if v.psf == "gauss" else "fiber"
        auto = "  with automatic rendering radius\n" if v.psf_radius == 0 else ""
        say("  %s PSF fwhm = %g um %s  with rendering radius: %d" % (kind, v.psf_fwhm * 1e6, auto, v.psf_radius))
    say("  seed: %d\n  calibration noise seed: %d" % (v.seed, v.calib_seed))
    say("  calibration_noise = %g %%\n  input file scale = %g" % (v.calibration * 100, v.scale))
    say("  readout_noise = %g ADU\n  flicker_noise = %g %%" % (v.readout, v.flicker * 100))
    say("  quantum_gain = %g ADU/photon\n  adc_offset = %g ADU\n" % (v.gain, v.adc))


def _smv_header(v):
    if v.header is not None:
        return v.header[0]
    return keyed_header([
        ("SIZE1", "%d" % v.xpixels), ("SIZE2", "%d" % v.ypixels), ("PIXEL_SIZE", c_g(v.pixel * 1000.0)),
        ("DISTANCE", c_g(v.distance * 1000.0)), ("WAVELENGTH", c_g(v.lambda_)),
        ("BEAM_CENTER_X", c_g(v.Xbeam * 1000.0)), ("BEAM_CENTER_Y", c_g((v.detsize_y - v.Ybeam) * 1000)),
        ("PHI", c_g(v.phi0)), ("OSC_START", c_g(v.phi0)), ("OSC_RANGE", c_g(v.osc))],
        "unsigned_short" if v.bits == 16 else "long_integer")


def _pgm(pixels, width, height):
    """8-bit preview: the integer image clipped at 255."""
    body = np.minimum(pixels.astype(np.float64), 255.0).astype(np.uint8).tobytes()
    return b"P5\n%d %d\n# pixels scaled by 1\n255\n" % (width, height) + body


def model_of(v):
    return detector_model.DetectorModel(
        gain=v.gain, adc_offset=v.adc, readout_noise=v.readout, flicker=v.flicker, calibration=v.calibration,
        psf=v.psf if v.psf_fwhm > 0.0 else None, psf_fwhm_px=detector_model.fwhm_pixels(v.psf_fwhm, v.pixel),
        psf_radius=int(v.psf_radius),
        bits=v.bits)


def run(argv, out=None):
    say = line_writer(out)
    v = parse(argv)
    say("noisify - add noise to pixels - James Holton 3-19-16")
    if v.headerfile is not None:
        say("taking header from %s" % v.headerfile)
        v = replace(v, header=_read_header(v.headerfile))
    try:
        size = os.path.getsize(v.floatfile)
    except OSError as exc:
        raise InputFileError(f"{v.floatfile}: cannot read ({exc.strerror or exc})") from None
    v = with_dimensions(v, size // 4, say)
    check_output_names([("-intfile", v.intfile)] + ([("-pgmfile", v.pgmfile)] if v.write_pgm else [])
                       + ([("-noisefile", v.noisefile)] if v.calculate_noise else []))
    image = read_float_image(v.floatfile, v.xpixels, v.ypixels)
    say("importing %d pixel intensites: %s" % (image.size, v.floatfile))
    _report(v, say)
    scale = detector_model.photon_scale(v.fluence, v.scale)
    if np.any(image < 0):
        say("WARNING: negative intensity in %s: %g" % (v.floatfile, float(image[image < 0][-1])))
    max_i = max(float(image.max()), 0.0)
    say("maximum value in input file: %g ( %g on photon scale)" % (max_i, max_i * scale))
    model = model_of(v)
    draws = None  # the sequential noise draws run on a worker while the noiseless images are written
    if v.calculate_noise:
        draws = detector_model.NoiseDraws(detector_model.photon_values(image, scale).numpy(), model, v.seed,
                                          v.calib_seed)
    photons, noiseless = detector_model.noiseless_response(image, model, scale, v.calculate_noise, say)
    header = _smv_header(v)
    say("writing %s as %d %d-byte integers" % (v.intfile, image.size, v.bits // 8))
    write_raw_smv(v.intfile, header, noiseless)
    if v.write_pgm:
        ints16 = noiseless if v.bits == 16 else detector_model.c_unsigned(noiseless.astype(np.float64), 16)
        say("writing %s as 1-byte integers" % v.pgmfile)
        with atomic_open(v.pgmfile, "wb") as handle:
            handle.write(_pgm(ints16, v.xpixels, v.ypixels))
    if v.calculate_noise:
        counts, noisy, overloads = detector_model.noisy_response(photons, model, v.seed, v.calib_seed, say,
                                                                 "%g um" % (v.psf_fwhm * 1e6), draws)
        say("%.0f photons on noise image (%d overloads)" % (float(counts.sum()), overloads))
        say("writing %s as %d-byte integers" % (v.noisefile, v.bits // 8))
        write_raw_smv(v.noisefile, header, noisy)
    return 0


def main(argv=None):
    return run_main("noisify", run, argv, USAGE)


def entry():
    console_entry(main)
