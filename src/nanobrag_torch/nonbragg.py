"""`nonBragg`: nonBragg.c's command line (amorphous background images) on the shared engine."""
import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import amorphous, resolve, rng
from .cnum import atof, atoi
from .companion import V3, Rules, console_entry, has, line_writer, run_main, validate
from .errors import InputFileError, UsageError
from .io.smv import c_g, keyed_header
from .io.sources import read_sources_with_defaults
from .io.stol import read_stol
from .models import Detector
from .options import F, I, S
from .outputs import statistics, write_all
from .settings import RTD, SharedSettings, Vec3, freeze, roi_ranges, scratch

USAGE = """usage: nonBragg -stol water.stol [options]
Options follow nonBragg.c (see README): -thick -samplesize -density -MW -molecules -distance
-detpixels -pixel -lambda -fluence -flux -exposure -beamsize -dispersion -hdivrange -oversample
-roi -point_pixel -nopolar -floatfile -intfile -noisefile -pgmfile -seed ... plus
-dtype float32|float64  -device cpu|cuda  --debug"""

_FLOATS = ("samplesize sample_size sample_thick sample_x thick thickness sample_width sample_y width "
           "sample_height sample_z height density sample_density molecules sample_molecules MW "
           "molecular_weight Xbeam Ybeam Xclose Yclose ORGX ORGY distance close_distance source_distance "
           "twotheta detector_rotx detector_roty detector_rotz detsize detsize_x detsize_y pixel polar "
           "lambda wave wavelength energy fluence flux exposure beamsize dispersion divergence hdivrange "
           "vdivrange hdivstep vdivstep adc gain phi osc phistep scale pgmscale")
_INTS = ("detpixels detpixels_f detpixels_s detpixels_x detpixels_y oversample dispsteps hdivsteps "
         "vdivsteps divsteps phisteps seed")
_FILES = "stol 4stol Q sourcefile floatfile floatimage intfile intimage pgmfile pgmimage noisefile noiseimage"
_FLAGS = ("point_pixel nopolar round_div square_div nonoise nopgm noreject coherent printout noprogress "
          "progress curved_det curved_detector")
VOCABULARY = {
    **{k: (F,) for k in _FLOATS.split()}, **{k: (I,) for k in _INTS.split()},
    **{k: (S,) for k in _FILES.split()}, **{k: () for k in _FLAGS.split()},
    **{k: V3 for k in ["fdet_vector", "sdet_vector", "odet_vector", "beam_vector", "polar_vector",
                       "spindle_axis", "twotheta_axis", "pix0_vector"]},
    "roi": (I, I, I, I), "printout_pixel": (I, I), "pivot": (("sample", "beam"),),
    "dtype": (("float32", "float64"),), "device": (("cpu", "cuda", "auto"),),
}
NAN = float("nan")


@dataclass(frozen=True)
class NonBraggSettings(SharedSettings):
    """nonBragg.c's settings (SI units), made once by `parse` (options then nonBragg's set-up);
    `simulate` returns the placed detector's values as a new object."""

    sample_x: float = 0.0001
    sample_y: float = 0.0001
    sample_z: float = 0.0001
    molecules: float = 0.0
    detsize_x: float = 0.1024
    detsize_y: float = 0.1024
    twotheta_axis: Vec3 = (0.0, 1.0, 0.0)
    gain: float = 1.0
    stol_mult: float = 10000000000.0  # the -stol/-4stol/-Q table's scale to 1/m
    # set by `parse` (nonBragg.c's set-up)
    vert: Vec3 = (0.0, 0.0, 0.0)
    detector_mu: float = 0.0
    mosaic_domains: int = 0
    mosaic_spread: float = 0.0
    warnings: tuple[str, ...] = ()  # printed after the banner
    divsteps: int = 0  # set by `simulate` with the sources


def _set(name, scale=1.0, pivot=None, conv=atof):
    def action(v, args):
        setattr(v, name, conv(args[0]) * scale if conv is atof else conv(args[0]))
        if pivot:
            v.pivot = pivot
    return action


def _vector(name):
    return lambda v, a: setattr(v, name, [atof(x) for x in a])


def _both(n1, n2, scale):
    return lambda v, a: (setattr(v, n1, atof(a[0]) * scale), setattr(v, n2, atof(a[0]) * scale))


def _flag(name, value):
    return lambda v, a: setattr(v, name, value)


def _geometry_rules(r):
    r.add(has("-samplesize", "-sample_size"), 1, lambda v, a: [setattr(v, k, atof(a[0]) / 1000)
                                                              for k in ("sample_x", "sample_y", "sample_z")])
    r.add(has("-sample_thick", "-sample_x", "-thick"), 1, _set("sample_x", 1e-3))
    r.add(has("-sample_width", "-sample_y", "-width"), 1, _set("sample_y", 1e-3))
    r.add(has("-sample_heigh", "-sample_z", "-heigh"), 1, _set("sample_z", 1e-3))
    r.add(has("-density", "-sample_den"), 1, _set("density", 1e6))
    r.add(has("-molecules", "-sample_molecules"), 1, _set("molecules"))
    r.add(lambda t: t == "-MW" or "-molecular" in t, 1, _set("molecular_weight"))
    for name, pivot in (("Xbeam", "beam"), ("Ybeam", "beam"), ("Xclose", "sample"), ("Yclose", "sample")):
        r.add(has("-" + name), 1, _set(name, 1e-3, pivot))
    r.add(has("-ORGX"), 1, _set("ORGX", 1.0, "sample"))
    r.add(has("-ORGY"), 1, _set("ORGY", 1.0, "sample"))
    r.add(has("-pivot"), 1, lambda v, a: setattr(v, "pivot", "sample" if "sample" in a[0] else
                                                 "beam" if "beam" in a[0] else v.pivot))
    for opt, name in (("fdet_vector", "fdet"), ("sdet_vector", "sdet"), ("odet_vector", "odet"),
                      ("beam_vector", "beam"), ("polar_vector", "polar_vector"), ("spindle_axis", "spindle"),
                      ("twotheta_axis", "twotheta_axis")):
        r.add(has("-" + opt), 3, _vector(name))
    r.add(has("-distance"), 1, _set("distance", 1e-3, "beam"))
    r.add(has("-close_distance"), 1, _set("close_distance", 1e-3, "sample"))
    r.add(has("-source_distance"), 1, _set("source_distance", 1e-3))
    r.add(has("-twotheta"), 1, _set("twotheta", 1 / RTD, "sample"))
    for axis in "xyz":
        r.add(has("-detector_rot" + axis), 1, _set("rot" + axis, 1 / RTD))
    r.add(has("-detsize", length=8), 1, _both("detsize_x", "detsize_y", 1e-3))
    r.add(has("-detsize_x"), 1, _set("detsize_x", 1e-3))
    r.add(has("-detsize_y"), 1, _set("detsize_y", 1e-3))
    r.add(has("-detpixels", length=10), 1, lambda v, a: (setattr(v, "fpixels", atoi(a[0])),
                                                         setattr(v, "spixels", atoi(a[0]))))
    r.add(has("-detpixels_f", "-detpixels_x"), 1, _set("fpixels", conv=atoi))
    r.add(has("-detpixels_s", "-detpixels_y"), 1, _set("spixels", conv=atoi))
    r.add(has("-curved_det"), 1, _flag("curved", True))
    r.add(has("-pixel"), 1, _set("pixel_size", 1e-3))
    r.add(has("-point_pixel"), 0, _flag("point_pixel", True))
    r.add(has("-polar", length=6), 1, lambda v, a: (setattr(v, "polarization", atof(a[0])),
                                                    setattr(v, "nopolar", False)))
    r.add(has("-nopolar"), 0, _flag("nopolar", True))
    r.add(has("-oversample"), 1, _set("oversample", conv=atoi))
    r.add(has("-roi"), 4, lambda v, a: setattr(v, "roi", [atoi(x) for x in a]))


def _beam_rules(r):
    r.add(has("-lambda", "-wave"), 1, _set("lambda0", 1e-10))
    r.add(has("-energy"), 1, lambda v, a: setattr(v, "lambda0", 12398.42 / atof(a[0]) / 1.0e10))
    r.add(has("-fluence"), 1, _set("fluence"))
    r.add(has("-flux"), 1, _set("flux"))
    r.add(has("-exposure"), 1, _set("exposure"))
    r.add(has("-beamsize"), 1, _set("beamsize", 1e-3))
    r.add(has("-dispersion"), 1, _set("dispersion", 1e-2))
    r.add(has("-dispsteps"), 1, _set("dispsteps", conv=atoi))
    r.add(has("-divergence"), 1, _both("hdivrange", "vdivrange", 1e-3))
    r.add(has("-hdivrange"), 1, _set("hdivrange", 1e-3))
    r.add(has("-vdivrange"), 1, _set("vdivrange", 1e-3))
    r.add(has("-hdivstep", length=9), 1, _set("hdivstep", 1e-3))
    r.add(has("-hdivsteps"), 1, _set("hdivsteps", conv=atoi))
    r.add(has("-vdivstep", length=9), 1, _set("vdivstep", 1e-3))
    r.add(has("-vdivsteps"), 1, _set("vdivsteps", conv=atoi))
    r.add(has("-divsteps"), 1, lambda v, a: (setattr(v, "hdivsteps", atoi(a[0])), setattr(v, "vdivsteps", atoi(a[0]))))
    r.add(has("-round_div"), 0, _flag("round_div", True))
    r.add(has("-square_div"), 0, _flag("round_div", False))
    r.add(has("-adc"), 1, _set("adc_offset"))
    r.add(has("-gain"), 1, _set("gain"))
    r.add(has("-phi", length=4), 1, _set("phi0", 1 / RTD))
    r.add(has("-osc"), 1, _set("osc", 1 / RTD))
    r.add(has("-phistep", length=8), 1, _set("phistep", 1 / RTD))
    r.add(has("-phisteps"), 1, _set("phisteps", conv=atoi))


def _file_rules(r):
    r.add(has("-stol", length=5), 1, lambda v, a: (setattr(v, "stolfile", a[0]), setattr(v, "stol_mult", 1e10)))
    r.add(has("-4stol", length=6), 1, lambda v, a: (setattr(v, "stolfile", a[0]), setattr(v, "stol_mult", 1e10 / 4)))
    r.add(has("-Q", length=2), 1, lambda v, a: (setattr(v, "stolfile", a[0]),
                                                setattr(v, "stol_mult", 1e10 / math.pi / 4)))
    r.add(has("-sourcefile"), 1, _set("sourcefile", conv=str))
    r.add(has("-floatfile", "-floatimage"), 1, _set("floatfile", conv=str))
    r.add(has("-intfile", "-intimage"), 1, _set("intfile", conv=str))
    r.add(has("-pgmfile", "-pgmimage"), 1, _set("pgmfile", conv=str))
    r.add(has("-noisefile", "-noiseimage"), 1, lambda v, a: (setattr(v, "noisefile", a[0]),
                                                             setattr(v, "calculate_noise", True)))
    r.add(has("-nonoise"), 0, _flag("calculate_noise", False))
    r.add(has("-nopgm"), 0, _flag("write_pgm", False))
    r.add(has("-scale"), 1, _set("intfile_scale"))
    r.add(has("-pgmscale"), 1, _set("pgm_scale"))
    r.add(has("-noprogress"), 0, _flag("progress", False))
    r.add(has("-progress"), 0, _flag("progress", True))
    r.add(has("-seed"), 1, lambda v, a: setattr(v, "seed", -atoi(a[0])))
    r.add(has("-dtype"), 1, _set("dtype", conv=str))
    r.add(has("-device"), 1, _set("device", conv=str))


RULES = Rules()
for _add in (_geometry_rules, _beam_rules, _file_rules):
    _add(RULES)


def parse(argv: list[str]) -> NonBraggSettings:
    """Validated, C-resolved settings of a nonBragg command line (SI units)."""
    validate(argv, VOCABULARY)
    v = RULES.apply(scratch(NonBraggSettings(), thaw=True), argv)  # the parser's working copy
    if v.stolfile is None:
        raise UsageError("no -stol table given (e.g. -stol water.stol)")
    for name in ("pixel_size", "lambda0", "detsize_x", "detsize_y"):
        if not getattr(v, name) > 0:
            raise UsageError(f"{name}: must be positive, got {getattr(v, name):g}")
    if v.seed is None:
        import time
        v.seed = -int(time.time())
    _resolve(v)
    return freeze(NonBraggSettings, v)


def _resolve(v):
    """nonBragg.c's set-up: detector size, defaults, fluence, sample, sampling steps."""
    if v.fpixels:
        v.detsize_x = v.pixel_size * v.fpixels
    if v.spixels:
        v.detsize_y = v.pixel_size * v.spixels
    v.fpixels = resolve._count(v.detsize_x / v.pixel_size, "-detsize/-pixel: detector pixels")
    v.spixels = resolve._count(v.detsize_y / v.pixel_size, "-detsize/-pixel: detector pixels")
    if not math.isnan(v.ORGX):
        v.Xclose = v.ORGX * v.pixel_size
    if not math.isnan(v.ORGY):
        v.Yclose = v.ORGY * v.pixel_size
    if math.isnan(v.Xclose):
        v.Xclose = (v.detsize_x - v.pixel_size) / 2.0
    if math.isnan(v.Yclose):
        v.Yclose = (v.detsize_y + v.pixel_size) / 2.0
    v.Xbeam = v.Xclose if math.isnan(v.Xbeam) else v.Xbeam
    v.Ybeam = v.Yclose if math.isnan(v.Ybeam) else v.Ybeam
    defaults = (0, v.fpixels, 0, v.spixels)
    v.roi = [d if r < 0 else r for r, d in zip(v.roi, defaults)]
    v.warnings = []
    if v.flux != 0.0 and v.exposure > 0.0 and v.beamsize >= 0:
        v.fluence = v.flux * v.exposure / v.beamsize / v.beamsize
    if v.beamsize >= 0:
        for name, what in (("sample_y", "high"), ("sample_z", "wide")):
            if v.beamsize < getattr(v, name):
                v.warnings.append("WARNING: clipping sample (%s m %s) with beam (%s m)"
                                  % (c_g(getattr(v, name)), what, c_g(v.beamsize)))
                setattr(v, name, v.beamsize)
    v.molecules, v.density = amorphous.molecule_count(v.sample_x, v.sample_y, v.sample_z, v.density,
                                                      v.molecular_weight, v.molecules)
    v.beam, _ = resolve._unit(v.beam)
    v.fdet, _ = resolve._unit(v.fdet)
    v.sdet, _ = resolve._unit(v.sdet)
    f, s = v.fdet, v.sdet
    v.odet, _ = resolve._unit([f[1] * s[2] - f[2] * s[1], f[2] * s[0] - f[0] * s[2], f[0] * s[1] - f[1] * s[0]])
    v.polar_vector, _ = resolve._unit(v.polar_vector)
    b, p = v.beam, v.polar_vector
    v.vert, _ = resolve._unit([b[1] * p[2] - b[2] * p[1], b[2] * p[0] - b[0] * p[2], b[0] * p[1] - b[1] * p[0]])
    v.detector_thick, v.detector_thickstep, v.detector_thicksteps, v.detector_mu = 0.0, -1.0, -1, 0.0
    v.mosaic_domains, v.mosaic_spread = 0, 0.0
    resolve.sampling(v, v.warnings.append)
    v.oversample = max(v.oversample, 1)


def make_detector(v, dtype, device):
    """nonBragg's detector: its own default basis and beam centre (no conventions), the shared
    Detector model for pivots, rotations and pixel positions."""
    return Detector(fpixels=v.fpixels, spixels=v.spixels, pixel_size=v.pixel_size, fdet=tuple(v.fdet),
                    sdet=tuple(v.sdet), odet=tuple(v.odet), beam=tuple(v.beam), twotheta_axis=tuple(v.twotheta_axis),
                    pivot=v.pivot, distance=v.distance,
                    close_distance=None if math.isnan(v.close_distance) else v.close_distance,
                    Fbeam=v.Xbeam, Sbeam=v.Ybeam, Fclose=v.Xclose, Sclose=v.Yclose, rotx=v.rotx, roty=v.roty,
                    rotz=v.rotz, twotheta=v.twotheta, curved=v.curved, point_pixel=v.point_pixel,
                    oversample=v.oversample, dtype=dtype, device=device)


def make_sources(v, say):
    """(positions (S,3), intensities (S,), wavelengths (S,), divergence steps) from -sourcefile or
    the divergence grid."""
    if v.sourcefile is not None:
        rows = read_sources_with_defaults(v.sourcefile, v.beam, v.source_distance, v.lambda0)
        positions, intensities, wavelengths = rows[:, :3], rows[:, 3], rows[:, 4]
        divsteps = 0
    else:
        from .setup import generated_sources

        grid = generated_sources(v, say)
        positions, wavelengths = grid.positions, grid.wavelengths
        intensities = np.ones(len(wavelengths))
        divsteps = grid.divsteps
    if len(wavelengths) == 0:
        raise UsageError("no x-ray sources: the divergence settings leave no source points")
    if np.any(~(wavelengths > 0)) or np.any(np.linalg.norm(positions, axis=1) == 0):
        raise InputFileError(f"{v.sourcefile}: source wavelengths must be positive and positions non-zero")
    say("  created a total of %d sources:" % len(wavelengths))
    for p, w, wl in zip(positions, intensities, wavelengths):
        say("%g %g %g   %g %g" % (p[0], p[1], p[2], w, wl))
    return positions, intensities, wavelengths, divsteps


def _report(v, say, geo, table_len, nsources):
    from .setup import report_beam

    say("  %d initialized F points (will cubic-spline interpolate between them)" % table_len)
    report_beam(v, say)
    say("  incident fluence: %s photons/m^2" % c_g(v.fluence))
    say("  sample is %s m thick x %s m high x %s m wide, %s g/cm^3 and %s g/mol (%s molecules)"
        % tuple(c_g(x) for x in (v.sample_x, v.sample_y, v.sample_z, v.density / 1e6, v.molecular_weight,
                                 v.molecules)))
    say("  distance=%g detsize=%gx%g  pixel=%g meters (%dx%d pixels)"
        % (v.distance, v.detsize_x, v.detsize_y, v.pixel_size, v.fpixels, v.spixels))
    say("  Xbeam=%g Ybeam=%g" % (v.Xbeam, v.Ybeam))
    def vec(key):
        return "%g %g %g" % tuple(float(c) for c in geo[key])

    say("  detector origin: " + vec("pix0"))
    say("  DIRECTION_OF_DETECTOR_X-AXIS= " + vec("fdet"))
    say("  DIRECTION_OF_DETECTOR_Y-AXIS= " + vec("sdet"))
    say("  INCIDENT_BEAM_DIRECTION= %g %g %g" % tuple(v.beam))
    say("  POLARIZATION_PLANE_NORMAL= %g %g %g" % tuple(v.polar_vector))
    say("  roi: %d < x < %d && %d < y < %d" % tuple(v.roi))
    say("  hdivrange=%g hdivstep=%g  radians" % (v.hdivrange, v.hdivstep))
    say("  vdivrange=%g vdivstep=%g  radians" % (v.vdivrange, v.vdivstep))
    say("  %d divergence steps\n  %d sources\n  %d pixel oversample steps" % (v.divsteps, nsources, v.oversample))
    if v.calculate_noise:
        say("\n  noise image paramters:\n  seed: %d" % v.seed)


def _header(v):
    return keyed_header([
        ("SIZE1", "%d" % v.fpixels), ("SIZE2", "%d" % v.spixels), ("PIXEL_SIZE", c_g(v.pixel_size * 1000.0)),
        ("DISTANCE", c_g(v.distance * 1000.0)), ("WAVELENGTH", c_g(v.lambda0 * 1e10)),
        ("BEAM_CENTER_X", c_g(v.Xbeam * 1000.0)), ("BEAM_CENTER_Y", c_g((v.detsize_y - v.Ybeam) * 1000)),
        ("ORGX", c_g(v.Xclose / v.pixel_size)), ("ORGY", c_g(v.Yclose / v.pixel_size)),
        ("CLOSE_DISTANCE", c_g(v.close_distance * 1000.0)), ("PHI", c_g(v.phi0 * RTD)),
        ("OSC_START", c_g(v.phi0 * RTD)), ("OSC_RANGE", c_g(v.osc * RTD)), ("TWOTHETA", c_g(v.twotheta * RTD))])


def _geometry_back(v, geo):
    """The C reports and writes the beam centre and near point after the detector is placed."""
    return replace(v, **{name: float(geo[key]) for name, key in (
        ("Xclose", "Fclose"), ("Yclose", "Sclose"), ("close_distance", "close_distance"), ("Xbeam", "Fbeam"),
        ("Ybeam", "Sbeam"), ("distance", "distance"))})


def simulate(v: NonBraggSettings, say, progress=None, on_rows=None) -> tuple:
    """Render for resolved settings `v`: (float image (float64 tensor), solid-angle sum, the
    settings with the placed detector's beam centre, distances and divergence steps).
    `on_rows`: as render_background's (finished row blocks, in order)."""
    from .setup import pick_device

    dtype = torch.float32 if v.dtype == "float32" else torch.float64
    device = pick_device(v.device)
    detector = make_detector(v, dtype, device)
    say("pivoting detector around %s" % ("sample" if v.pivot == "sample" else "direct beam spot"))
    geo = detector.geometry()
    v = _geometry_back(v, geo)
    say("reading %s" % v.stolfile)
    table = amorphous.StolTable.from_rows(read_stol(v.stolfile), v.stol_mult, dtype, device)
    positions, intensities, wavelengths, divsteps = make_sources(v, say)
    v = replace(v, divsteps=divsteps)
    _report(v, say, geo, len(table), len(wavelengths))
    sample = amorphous.AmorphousSample(table, v.molecules)
    image, omega_sum = amorphous.render_background(
        detector, positions, intensities, wavelengths, sample, v.fluence, kahn=v.polarization, nopolar=v.nopolar,
        polar_axis=v.polar_vector, roi=roi_ranges(v.roi), progress=progress, on_rows=on_rows)
    return image, omega_sum, v


def _c_rmsd(image32, rendered, mean):
    """nonBragg.c's rmsd (it sets the PGM scale): its loop reads each pixel's right-hand neighbour
    (the last one reads the zero past the end)."""
    shifted = np.append(image32.ravel()[1:].astype(np.float64), 0.0)
    dev = (shifted if rendered.all() else shifted[rendered.ravel()]) - mean  # a whole image needs no mask
    n = max(dev.size, 2)
    return math.sqrt(float((dev * dev).sum()) / (n - 1))


def write_outputs(v, image32, say, noise=None):
    """Float, integer, PGM and noise images as nonBragg writes them (the PGM correctly sized);
    `noise`: the rng.RowNoise already fed the image's rows."""
    rendered = np.zeros(image32.shape, dtype=bool)
    x0, x1, y0, y1 = v.roi
    rendered[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
    stats = statistics(image32, rendered, tuple(v.roi), v.oversample, v.pixel_size)
    stats["rmsd"] = _c_rmsd(image32, rendered, stats["mean"])
    write_all(v, image32, stats, say, header=_header(v), noise=None if noise is None else lambda _: noise.result())


def run(argv, out=None):

    from .cli import Progress, check_outputs

    say = line_writer(out)
    v = parse(argv)
    say("nonBragg amorphous material diffraction simulator - James Holton and Ken Frankel 3-19-16")
    for line in v.warnings:
        say(line)
    check_outputs(v)
    # the noise image's sequential draws follow the render block by block on a worker thread
    noise = rng.RowNoise((v.spixels, v.fpixels), v.seed, v.adc_offset, v.roi) if v.calculate_noise else None
    with torch.no_grad():
        image, omega_sum, v = simulate(v, say, Progress(v.progress),
                                       None if noise is None else
                                       lambda row, block: noise.add(row, torch.as_tensor(block).cpu().numpy()))
    say("")
    omega = float(omega_sum)
    say("solid angle subtended by detector = %g steradian ( %g%% sphere)" % (omega, 100 * omega / 4 / math.pi))
    write_outputs(v, image.detach().to("cpu", torch.float32).numpy(), say, noise)
    return 0


def main(argv=None):
    return run_main("nonBragg", run, argv, USAGE)


def entry():
    console_entry(main)
