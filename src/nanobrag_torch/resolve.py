"""nanoBragg's default and step-count logic, applied to parsed settings (pure scalars).

Each block mirrors the order of nanoBragg.c so that interacting defaults (detector size vs
pixel count, beam centre per convention, step counts vs ranges) come out the same.
"""
import dataclasses
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from .errors import UsageError
from .geometry.conventions import CONVENTIONS, default_beam_centre
from .settings import RTD, Settings, Vec3, array_field, freeze, scratch


@dataclass(frozen=True)
class Resolved(Settings):
    """The settings of one run after nanoBragg's set-up (made by `setup.build`, whose steps each
    return the values they decide as a new object, and kept as `sim.settings`): every default
    chosen (beam centre, pivot, step counts, oversampling, interpolation, cell counts from the
    crystal size), vectors normalized, and the values derived from the models and input files,
    which the report, the output headers and -write_expt read."""

    vert: Vec3 = (0.0, 0.0, 0.0)  # beam x polarization vector: the vertical divergence axis
    panel_count: int = 1
    rng_table: Any = array_field()  # the shuffle table shared by the run's seeds (misset, mosaic, noise)
    geo: dict | None = None  # the rotated detector frame (Detector.geometry() as floats)
    dials_origin: Vec3 = (0.0, 0.0, 0.0)  # pix0 in DIALS' frame (mm)
    real: Any = array_field()  # real-space cell vectors (3x3 numpy, A, rows a, b, c)
    recip: Any = array_field()  # reciprocal cell vectors (3x3 numpy, 1/A)
    volume: float = 0.0  # cell volume (A^3)
    lattice_definition: dict | None = array_field()  # the cell/matrix/misset the lattice was computed from
    nsources: int = 0
    divsteps: int = -1
    source_weights_used: bool = True  # False: a -sourcefile's weights are ignored, as in nanoBragg.c
    steps: int = 1  # sources x mosaic domains x phi steps x oversample^2 (the C's normalization)
    structure_factors: Any = array_field()  # the HKL grid (io.hkl) rendered
    model_link: Any = array_field()  # the -model structure whose atoms are refinable, or None

    @classmethod
    def of(cls, settings: Settings) -> "Resolved":
        """The start of set-up: the settings as given, nothing derived yet."""
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)})


def placed(v: Resolved, say) -> Resolved:
    """The settings with nanoBragg's detector size, fluence, beam centre and vectors (a new object)."""
    work = scratch(v)
    detector_and_beam(work, say)
    return freeze(Resolved, work)


def sampled(v: Resolved, say) -> Resolved:
    """The settings with nanoBragg's step counts of phi, divergence, dispersion, sensor layers and
    mosaic domains (a new object)."""
    work = scratch(v)
    sampling(work, say)
    return freeze(Resolved, work)


def _count(x, what):
    """ceil(x) as a count; nanoBragg keeps counts in a C int, so larger ones are refused."""
    if not x < 2**31:  # also inf and nan
        raise UsageError(f"{what}: more than 2^31 steps")
    return int(math.ceil(x))


def _isnan(x):
    return isinstance(x, float) and math.isnan(x)


def _unit(vec):
    mag = math.sqrt(sum(c * c for c in vec))
    return ([c / mag for c in vec], mag) if mag != 0 else ([0.0, 0.0, 0.0], 0.0)


def detector_and_beam(v: SimpleNamespace, say) -> None:
    """Detector size, fluence, beam centre and vectors from the conventions (on a working copy)."""
    if v.fpixels:
        v.detsize_f = v.pixel_size * v.fpixels
    if v.spixels:
        v.detsize_s = v.pixel_size * v.spixels
    v.fpixels = _count(v.detsize_f / v.pixel_size - 0.5, "-detsize/-pixel: detector pixels")
    v.spixels = _count(v.detsize_s / v.pixel_size - 0.5, "-detsize/-pixel: detector pixels")

    if v.flux != 0.0 and v.exposure > 0.0 and v.beamsize >= 0:
        v.fluence = v.flux * v.exposure / v.beamsize / v.beamsize
    if v.beamsize >= 0:
        if v.beamsize < v.sample_y:
            say("WARNING: clipping sample (%lg m high) with beam (%lg m)" % (v.sample_y, v.beamsize))
            v.sample_y = v.beamsize
        if v.beamsize < v.sample_z:
            say("WARNING: clipping sample (%lg m wide) with beam (%lg m)" % (v.sample_z, v.beamsize))
            v.sample_z = v.beamsize
    if v.exposure > 0.0:
        v.flux = v.fluence / v.exposure * v.beamsize * v.beamsize

    if not _isnan(v.ORGX):
        v.Fclose = (v.ORGX - 0.5) * v.pixel_size
    if not _isnan(v.ORGY):
        v.Sclose = (v.ORGY - 0.5) * v.pixel_size
    if _isnan(v.Fclose):
        v.Fclose = v.detsize_f / 2.0
    if _isnan(v.Sclose):
        v.Sclose = v.detsize_s / 2.0
    if _isnan(v.Xclose):
        v.Xclose = v.Fclose
    if _isnan(v.Yclose):
        v.Yclose = v.Sclose
    if _isnan(v.Fbeam):
        v.Fbeam = v.Fclose
    if _isnan(v.Sbeam):
        v.Sbeam = v.Sclose
    roi = v.roi
    v.roi = [roi[0] if roi[0] >= 0 else 0, roi[1] if roi[1] >= 0 else v.fpixels,
             roi[2] if roi[2] >= 0 else 0, roi[3] if roi[3] >= 0 else v.spixels]

    conv, ps = v.convention, v.pixel_size
    if conv != "CUSTOM":
        for key, attr in (("beam", "beam"), ("fdet", "fdet"), ("sdet", "sdet"), ("odet", "odet"),
                          ("twotheta_axis", "twotheta_axis"), ("polar", "polar_vector"), ("spindle", "spindle")):
            setattr(v, attr, [float(c) for c in CONVENTIONS[conv][key]])
    if conv in ("ADXV", "MOSFLM", "DENZO"):
        xbeam, ybeam = default_beam_centre(conv, v.detsize_f, v.detsize_s, ps)
        v.Xbeam = xbeam if _isnan(v.Xbeam) else v.Xbeam
        v.Ybeam = ybeam if _isnan(v.Ybeam) else v.Ybeam
    if conv == "ADXV":
        v.Fbeam, v.Sbeam, v.pivot = v.Xbeam, v.detsize_s - v.Ybeam, "beam"
    elif conv in ("MOSFLM", "DENZO"):
        shift = 0.5 * ps if conv == "MOSFLM" else 0.0 * ps
        v.Fbeam, v.Sbeam, v.pivot = v.Ybeam + shift, v.Xbeam + shift, "beam"
    else:
        v.Xbeam = v.Xclose if _isnan(v.Xbeam) else v.Xbeam
        v.Ybeam = v.Yclose if _isnan(v.Ybeam) else v.Ybeam
        v.Fbeam, v.Sbeam = v.Xbeam, v.Ybeam
        if conv in ("XDS", "DIALS"):
            v.pivot = "sample"
        else:
            v.Fclose, v.Sclose = v.Xbeam, v.Ybeam

    v.beam, _ = _unit(v.beam)
    v.fdet, _ = _unit(v.fdet)
    v.sdet, _ = _unit(v.sdet)
    v.odet, mag = _unit(v.odet)
    if mag != 1.0:
        say("WARNING: auto-generating odet_vector")
        f, s = v.fdet, v.sdet
        v.odet, _ = _unit([f[1] * s[2] - f[2] * s[1], f[2] * s[0] - f[0] * s[2], f[0] * s[1] - f[1] * s[0]])
    v.polar_vector, _ = _unit(v.polar_vector)
    v.spindle, _ = _unit(v.spindle)
    b, p = v.beam, v.polar_vector
    v.vert, _ = _unit([b[1] * p[2] - b[2] * p[1], b[2] * p[0] - b[0] * p[2], b[0] * p[1] - b[1] * p[0]])


def _steps(count, rng, step, none_range=0.0, auto_range=1.0, single_range=None, what="range/step"):
    """Resolve (steps, range, step size) like nanoBragg's divergence/dispersion logic."""
    if count <= 0:
        if rng < 0.0:
            if step <= 0.0:
                return 1, none_range, 0.0
            return 2, step, step
        if step <= 0.0:
            return 2, rng, rng if single_range is None else single_range(rng)
        return _count(rng / step, what), rng, step
    if rng < 0.0:
        if step <= 0.0:
            return count, auto_range, auto_range / count
        return 2, step, step
    if step <= 0.0:
        count = 2 if count <= 1 else count
        return count, rng, rng / (count - 1)
    return count, rng, step


def sampling(v: SimpleNamespace, say) -> None:
    """Step counts of phi, divergence, dispersion, sensor layers and mosaic domains (on a working copy)."""
    # phi: its own rules (osc/2 half steps, a 1-degree default range)
    if v.phisteps < 0:
        if v.osc < 0.0:
            if v.phistep <= 0.0:
                v.phisteps, v.osc, v.phistep = 1, 0.0, 0.0
            else:
                v.osc, v.phisteps = v.phistep, 2
        elif v.phistep <= 0.0:
            v.phisteps, v.phistep = 2, v.osc / 2.0
        else:
            v.phisteps = _count(v.osc / v.phistep, "-osc/-phistep")
    else:
        if v.phisteps == 0:
            v.phisteps = 1
        if v.osc < 0.0:
            if v.phistep <= 0.0:
                v.osc = 1.0 / RTD
                v.phistep = v.osc / v.phisteps
            else:
                v.osc, v.phisteps = v.phistep, 2
        elif v.phistep < 0.0:
            v.phistep = v.osc / v.phisteps

    v.hdivsteps, v.hdivrange, v.hdivstep = _steps(v.hdivsteps, v.hdivrange, v.hdivstep, what="-hdivrange/-hdivstep")
    v.vdivsteps, v.vdivrange, v.vdivstep = _steps(v.vdivsteps, v.vdivrange, v.vdivstep, what="-vdivrange/-vdivstep")
    v.dispsteps, v.dispersion, v.dispstep = _steps(v.dispsteps, v.dispersion, v.dispstep, what="-dispersion/-dispstep")
    # detector layers: a range alone gives 2 layers of half the thickness; steps alone 0.5 um
    t = _steps(v.detector_thicksteps, v.detector_thick, v.detector_thickstep,
               auto_range=0.5e-6, single_range=lambda r: r / 2, what="-detector_thick/-thickstep")
    v.detector_thicksteps, v.detector_thick, v.detector_thickstep = t
    if v.detector_thick > 0.0 and v.detector_mu < 0.0:
        v.detector_mu = 1.0 / v.detector_thick
        say("WARNING: setting detector attenuation depth to %g m" % v.detector_mu)

    if v.mosaic_domains <= 0:
        if v.mosaic_spread < 0.0:
            v.mosaic_domains, v.mosaic_spread = 1, 0.0
        elif v.mosaic_spread == 0.0:
            v.mosaic_domains = 1
        else:
            say("WARNING: finite mosaicity with only one domain! upping to 10 mosaic domains")
            v.mosaic_domains = 10
    elif v.mosaic_spread < 0.0:
        say("WARNING: no mosaic spread specified.  setting mosaic_domains = 1")
        v.mosaic_spread, v.mosaic_domains = 0.0, 1
    elif v.mosaic_spread == 0.0:
        say("WARNING: zero mosaic spread specified.  setting mosaic_domains = 1")
        v.mosaic_domains = 1

    if v.hdivrange <= 0.0 or v.hdivstep <= 0.0 or v.hdivsteps <= 0:
        v.hdivsteps, v.hdivrange, v.hdivstep = 1, 0.0, 0.0
    if v.vdivrange <= 0.0 or v.vdivstep <= 0.0 or v.vdivsteps <= 0:
        v.vdivsteps, v.vdivrange, v.vdivstep = 1, 0.0, 0.0
    if v.dispersion <= 0.0 or v.dispstep <= 0.0 or v.dispsteps <= 0:
        v.dispsteps, v.dispersion, v.dispstep = 1, 0.0, 0.0
    if v.detector_thick <= 0.0 or v.detector_thickstep <= 0.0 or v.detector_thicksteps <= 0:
        v.detector_thicksteps, v.detector_thick, v.detector_thickstep = 1, 0.0, 0.0
