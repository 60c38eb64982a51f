"""nanoBragg's option semantics: turn a validated argument list into resolved settings.

nanoBragg.c matches options by substring (strstr), so one argument can trigger several rules
(e.g. -misset_seed also sets misset angles and the noise seed; -twotheta_axis also sets
-twotheta; -printout_pixel also turns on -printout). These rules are reproduced on purpose,
in C's order, so that any command line gives C's image. Values read by such side rules use
C's lenient atof/atoi; the option's own values were already validated by options.py.
"""
import dataclasses
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from .cnum import atof, atoi

RTD = 180.0 / math.pi
NAN = float("nan")
Vec3 = tuple[float, float, float]


def array_field() -> dataclasses.Field:
    """A field holding arrays or file contents: not compared (numpy's == is elementwise) nor shown in repr."""
    return dataclasses.field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SharedSettings:
    """The options nanoBragg and nonBragg share, with the same names, defaults and units (SI; C's
    sentinels: NaN = not given, -1 = choose a default). `Settings` and `nonbragg.NonBraggSettings`
    add the options of their own program."""

    # sample
    density: float = 1.0e6
    molecular_weight: float = 18.0
    # detector placement and pixels (NaN: not given)
    Xbeam: float = NAN
    Ybeam: float = NAN
    Xclose: float = NAN
    Yclose: float = NAN
    close_distance: float = NAN
    ORGX: float = NAN
    ORGY: float = NAN
    pivot: str = "beam"
    fdet: Vec3 = (0.0, 0.0, 1.0)
    sdet: Vec3 = (0.0, -1.0, 0.0)
    odet: Vec3 = (1.0, 0.0, 0.0)
    beam: Vec3 = (1.0, 0.0, 0.0)
    polar_vector: Vec3 = (0.0, 0.0, 1.0)
    spindle: Vec3 = (0.0, 0.0, 1.0)
    distance: float = 100.0e-3
    source_distance: float = 10.0
    twotheta: float = 0.0
    rotx: float = 0.0
    roty: float = 0.0
    rotz: float = 0.0
    detector_thick: float = 0.0
    detector_thickstep: float = -1.0
    detector_thicksteps: int = -1
    fpixels: int = 0
    spixels: int = 0
    curved: bool = False
    pixel_size: float = 0.1e-3
    point_pixel: bool = False
    oversample: int = -1
    roi: tuple[int, int, int, int] = (-1, -1, -1, -1)  # xmin xmax ymin ymax (fast first, as typed)
    # beam, sources and rotation
    polarization: float = 0.0
    nopolar: bool = False
    lambda0: float = 1.0e-10
    fluence: float = 125932015286227086360700780544.0
    flux: float = 0.0
    exposure: float = 1.0
    beamsize: float = 1e-4
    dispersion: float = 0.0
    dispstep: float = -1.0
    dispsteps: int = -1
    hdivrange: float = -1.0
    vdivrange: float = -1.0
    hdivstep: float = -1.0
    vdivstep: float = -1.0
    hdivsteps: int = -1
    vdivsteps: int = -1
    round_div: bool = True
    phi0: float = 0.0
    osc: float = -1.0
    phistep: float = -1.0
    phisteps: int = -1
    # files and outputs
    stolfile: str | None = None
    sourcefile: str | None = None
    floatfile: str = "floatimage.bin"
    intfile: str = "intimage.img"
    pgmfile: str = "image.pgm"
    noisefile: str = "noiseimage.img"
    write_expt: str | None = None
    calculate_noise: bool = True
    write_pgm: bool = True
    intfile_scale: float = 0.0
    pgm_scale: float = 0.0
    adc_offset: float = 40.0
    # run
    progress: bool = True
    seed: int | None = None
    dtype: str = "float64"
    device: str = "cpu"


@dataclass(frozen=True)
class Settings(SharedSettings):
    """The command line's settings, as nanoBragg.c holds them after reading argv (SI units:
    metres, radians, seconds; C's sentinels kept: NaN = not given, -1 = choose a default).

    Made once by `parse` (then `cli.load_settings` adds what other readers supply, as new objects
    with `dataclasses.replace`) and never changed: `resolve.Resolved` holds the values derived
    from them. Field names are nanoBragg.c's variable names."""

    # crystal
    Na: float = 1.0
    Nb: float = 1.0
    Nc: float = 1.0
    user_cell: bool = False
    cell: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # a, b, c (A), alpha, beta, gamma (rad)
    misset: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # (flag: 1 given, -1 random, 0 none), 3 angles (rad)
    sample_x: float = 0.0
    sample_y: float = 0.0
    sample_z: float = 0.0
    shape: str = "square"
    fudge: float = 1.0
    # detector placement
    Fbeam: float = NAN
    Sbeam: float = NAN
    Fclose: float = NAN
    Sclose: float = NAN
    convention: str = "MOSFLM"
    twotheta_axis: Vec3 = (0.0, 0.0, -1.0)
    pix0: Vec3 | None = None
    pix0_option: bool = False
    # detector pixels and sensor
    detector_mu: float = -1.0
    detsize_f: float = 102.4e-3
    detsize_s: float = 102.4e-3
    oversample_thick: bool = False
    oversample_polar: bool = False
    oversample_omega: bool = False
    # sampling
    mosaic_spread: float = -1.0
    mosaic_domains: int = -1
    dmin: float = 0.0
    interpolate: int = 2  # 2: choose from the crystal size
    # input files
    matfile: str | None = None
    hklfile: str | None = None
    default_F: float = 0.0
    dumpfile: str = "Fdump.bin"
    imgfile: str | None = None
    maskfile: str | None = None
    mtzfile: str | None = None
    mtz_column: str | None = None
    cif_sf_file: str | None = None
    cif_column: str | None = None
    modelfile: str | None = None
    anomalous: bool = False
    exptfile: str | None = None
    expt: Any = array_field()  # io.expt.Experiment read from -expt
    expt_panels: tuple | None = None  # its panels (io.expt.Panel)
    expt_real: tuple | None = None  # its crystal's real-space vectors (A, rows a, b, c)
    mask_image: Any = array_field()  # -mask as a (spixels, fpixels) numpy array
    # outputs
    printout: bool = False
    printout_fpixel: int = -1
    printout_spixel: int = -1
    trace_pixel: tuple[int, int] | None = None  # (slow, fast)
    # random numbers (C's negated seeds; None until `cli.load_settings` takes the clock)
    mosaic_seed: int = -12345678
    misset_seed: int | None = None
    calib_seed: int = 123456789
    # background and detector response (background_noise.py)
    water_size: float = 0.0
    background: dict | None = None
    detector_model: Any = array_field()
    # this program's own
    nthreads: int = 0
    debug: bool = False
    compat: str = "default"
    size_options: tuple[str, ...] = ()  # the options that set the detector size, for messages


def _frozen(value):
    """Lists (the builders' working values) as tuples, so a frozen stage holds no mutable list."""
    return tuple(_frozen(x) for x in value) if isinstance(value, list) else value


def freeze(cls: type, scratch: SimpleNamespace):
    """The frozen stage `cls` from a builder's working namespace; a name that `cls` does not
    declare is an error (every stage's fields are declared)."""
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(vars(scratch)) - names)
    if extra:
        raise TypeError(f"{cls.__name__} declares no field {', '.join(extra)}")
    return cls(**{name: _frozen(value) for name, value in vars(scratch).items()})


def scratch(stage, thaw: bool = False) -> SimpleNamespace:
    """A private working copy of a frozen stage, for the one function that makes the next stage
    from it (thaw: tuples as lists, for builders that change items in place)."""
    values = {f.name: getattr(stage, f.name) for f in dataclasses.fields(stage)}
    return SimpleNamespace(**{name: list(x) if thaw and isinstance(x, tuple) else x for name, x in values.items()})


def roi_ranges(roi) -> tuple[tuple[int, int], tuple[int, int]]:
    """-roi's (xmin, xmax, ymin, ymax) as the (slow, fast) ranges ((ymin, ymax), (xmin, xmax))
    that the Python API takes, like the image tensor's axes."""
    x0, x1, y0, y1 = roi
    return (y0, y1), (x0, x1)


def input_images(argv: list[str]) -> tuple[str | None, str | None]:
    """(-img file, -mask file): nanoBragg reads both headers before any other option."""
    img = mask = None
    for i, tok in enumerate(argv):
        if tok.startswith("-") and i + 1 < len(argv):
            if "-img" in tok:
                img = argv[i + 1]
            if "-mask" in tok:
                mask = argv[i + 1]
    return img, mask


def size_options(argv: list[str]) -> list[str]:
    """The options that set the detector's size, for messages about it ("-detpixels", "-img header")."""
    found = []
    for tok in argv:
        name = tok.split("_")[0] if tok.startswith(("-detpixels", "-detsize")) else tok
        if tok.startswith(("-detpixels", "-detsize", "-pixel")) and tok not in found:
            found.append(tok)
        elif name in ("-img", "-mask") and f"{name} header" not in found:
            found.append(f"{name} header")
    return found


def with_header(settings: Settings, smv, is_mask: bool) -> Settings:
    """The settings with the detector geometry of an SMV header (nanoBragg's -mask / -img
    ingestion, before the options), as a new object."""
    val = smv.value("PIXEL_SIZE")
    pixel_size = settings.pixel_size if val is None else val / 1000.0
    c = dict(fpixels=smv.width, spixels=smv.height, pixel_size=pixel_size, detsize_f=pixel_size * smv.width,
             detsize_s=pixel_size * smv.height)
    for key, attr, scale in (("DISTANCE", "distance", 1e-3), ("CLOSE_DISTANCE", "close_distance", 1e-3),
                             ("WAVELENGTH", "lambda0", 1e-10), ("BEAM_CENTER_X", "Xbeam", 1e-3), ("ORGX", "ORGX", 1.0),
                             ("ORGY", "ORGY", 1.0), ("PHI", "phi0", 1 / RTD), ("OSC_RANGE", "osc", 1 / RTD)):
        val = smv.value(key)
        if val is not None:
            c[attr] = val * scale
    val = smv.value("BEAM_CENTER_Y")
    if val is not None:
        c["Ybeam"] = c["detsize_s"] - val / 1000.0 if is_mask else val / 1000.0
    # nanoBragg also reads TWOTHETA here but stores it where nothing uses it
    return dataclasses.replace(settings, **c)


def parse(argv: list[str], start: Settings | None = None) -> Settings:
    """Apply nanoBragg's substring rules to argv (validated) and return the frozen Settings.

    start: the settings the options apply to (default: nanoBragg's defaults; the command line
    passes them with -mask / -img headers and an -expt file applied, which options override)."""
    v = scratch(start or Settings(), thaw=True)  # the parser's working copy
    n = len(argv)
    v.imgfile, v.maskfile = input_images(argv)
    for i, tok in enumerate(argv):
        if not tok.startswith("-"):
            continue

        def nxt(k=1, i=i):
            return argv[i + k] if i + k < n else None

        for rule in RULES:
            if rule.matches(tok) and i + rule.nargs < n and rule.action(v, nxt):
                break  # C's `continue`: no later rule sees this argument
    return freeze(Settings, v)


# ---- the option table ---------------------------------------------------------------------------
# Each rule is one `if (strstr(argv[i], ...) && i+k < argc)` of nanoBragg.c, in C's order; every
# rule whose test passes applies, unless an earlier one ended the argument (`stop`).


class Rule:
    """One of nanoBragg's option tests: a token predicate, the values it needs and its effect."""

    def __init__(self, matches, nargs, action, stop=False):
        self.matches, self.nargs = matches, nargs
        self.action = (lambda v, nxt: action(v, nxt) or True) if stop else action


def sub(*names):
    """C's strstr: the token contains any of `names`."""
    return lambda tok: any(name in tok for name in names)


def sub_len(name, length):
    """strstr plus C's strlen test (how nanoBragg tells -detsize from -detsize_f)."""
    return lambda tok: name in tok and len(tok) == length


def exact(*names):
    return lambda tok: tok in names


def put(fields, read, **also):
    """Set one or several fields to read(value); `also` sets fixed companions (e.g. the pivot)."""
    names = (fields,) if isinstance(fields, str) else fields

    def action(v, nxt):
        value = read(nxt())
        for name in names:
            setattr(v, name, value)
        for name, fixed in also.items():
            setattr(v, name, fixed)
    return action


def flag(**values):
    def action(v, nxt):
        for name, value in values.items():
            setattr(v, name, value)
    return action


def vector(field):
    def action(v, nxt):
        v.convention = "CUSTOM"
        setattr(v, field, [atof(nxt(1)), atof(nxt(2)), atof(nxt(3))])
        v.pix0_option = v.pix0_option or field == "pix0"
    return action


def _mm(text):
    return atof(text) / 1000.0


def _deg(text):
    return atof(text) / RTD


def _text(text):
    return text


def _negated_int(text):
    return -atoi(text)


# named quirks: rules whose effect is more than setting a field


def _cell(v, nxt):
    """-cell takes up to six values and stops at the next option (angles in degrees)."""
    v.user_cell = True
    for k in range(6):
        t = nxt(k + 1)
        if t is None or t.startswith("-"):
            break
        v.cell[k] = atof(t) if k < 3 else atof(t) / RTD


def _misset_random(v, nxt):
    """-misset random: angles drawn from -misset_seed; ends the argument."""
    if "rand" in nxt():
        v.misset[0] = -1
        return True
    return False


def _misset_angles(v, nxt):
    v.misset = [1, atof(nxt(1)) / RTD, atof(nxt(2)) / RTD, atof(nxt(3)) / RTD]


def _pivot(v, nxt):
    if "sample" in nxt():
        v.pivot = "sample"
    if "beam" in nxt():
        v.pivot = "beam"


def _absorption(v, nxt):
    """-detector_abs: 'inf' or 0 turns absorption off; otherwise an attenuation depth in um."""
    if "inf" in nxt() or atof(nxt()) == 0.0:
        v.detector_thick = 0.0
        v.detector_mu = 0.0
    else:
        v.detector_mu = 1.0 / (atof(nxt()) * 1e-6)


def _energy(v, nxt):
    e = atof(nxt())
    v.lambda0 = (12398.42 / e if e else math.inf) / 1.0e10


def _printout_pixel(v, nxt):
    v.printout_fpixel, v.printout_spixel = atoi(nxt(1)), atoi(nxt(2))


def _trace_pixel(v, nxt):
    v.trace_pixel = (atoi(nxt(1)), atoi(nxt(2)))


def _roi(v, nxt):
    v.roi = [atoi(nxt(k)) for k in (1, 2, 3, 4)]


_SAMPLE = ("sample_x", "sample_y", "sample_z")
_CONVENTIONS = (("-mosflm", "MOSFLM", "beam"), ("-xds", "XDS", "sample"), ("-adxv", "ADXV", "beam"),
                ("-denzo", "DENZO", "beam"), ("-dials", "DIALS", "beam"))
_VECTORS = (("-fdet_vector", "fdet"), ("-sdet_vector", "sdet"), ("-odet_vector", "odet"), ("-beam_vector", "beam"),
            ("-polar_vector", "polar_vector"), ("-spindle_axis", "spindle"),
            ("-twotheta_axis", "twotheta_axis"), ("-pix0_vector", "pix0"))

RULES = (
    Rule(sub("-Na"), 1, put("Na", atoi), stop=True),
    Rule(sub("-Nb"), 1, put("Nb", atoi), stop=True),
    Rule(sub("-Nc"), 1, put("Nc", atoi), stop=True),
    Rule(exact("-N"), 1, put(("Na", "Nb", "Nc"), atoi), stop=True),
    Rule(sub("-cell"), 1, _cell),
    Rule(sub("-misset"), 1, _misset_random),
    Rule(sub("-misset"), 3, _misset_angles),
    Rule(sub("-samplesize", "-sample_size"), 1, put(_SAMPLE, _mm)),
    Rule(sub("-sample_thick", "-sample_x"), 1, put("sample_x", _mm)),
    Rule(sub("-sample_width", "-sample_y", "-width"), 1, put("sample_y", _mm)),
    Rule(sub("-sample_heigh", "-sample_z", "-heigh"), 1, put("sample_z", _mm)),
    Rule(sub("-xtalsize", "-xtal_size"), 1, put(_SAMPLE, _mm)),
    Rule(sub("-xtal_thick", "-xtal_x"), 1, put("sample_x", _mm)),
    Rule(sub("-xtal_width", "-xtal_y", "-width"), 1, put("sample_y", _mm)),
    Rule(sub("-xtal_heigh", "-xtal_z", "-heigh"), 1, put("sample_z", _mm)),
    Rule(sub("-density", "-sample_den"), 1, put("density", lambda t: atof(t) * 1e6)),
    Rule(lambda tok: tok == "-MW" or "-molec" in tok, 1, put("molecular_weight", atof)),
    Rule(sub("-Xbeam"), 1, put("Xbeam", _mm, pivot="beam")),
    Rule(sub("-Ybeam"), 1, put("Ybeam", _mm, pivot="beam")),
    Rule(sub("-Xclose"), 1, put("Xclose", _mm, pivot="sample")),
    Rule(sub("-Yclose"), 1, put("Yclose", _mm, pivot="sample")),
    Rule(sub("-ORGX"), 1, put("ORGX", atof, pivot="sample")),
    Rule(sub("-ORGY"), 1, put("ORGY", atof, pivot="sample")),
    Rule(sub("-pivot"), 1, _pivot),
    *(Rule(sub(name), 0, flag(convention=conv, pivot=piv)) for name, conv, piv in _CONVENTIONS),
    *(Rule(sub(name), 3, vector(field)) for name, field in _VECTORS),
    Rule(sub("-distance"), 1, put("distance", _mm, pivot="beam")),
    Rule(sub("-close_distance"), 1, put("close_distance", _mm, pivot="sample")),
    Rule(sub("-source_distance"), 1, put("source_distance", _mm)),
    Rule(sub("-detector_abs"), 1, _absorption),
    Rule(sub_len("-detector_thick", 15), 1, put("detector_thick", lambda t: atof(t) * 1e-6)),
    Rule(sub("-detector_thicksteps"), 1, put("detector_thicksteps", atoi)),
    Rule(sub("-thicksteps"), 1, put("detector_thicksteps", atoi)),
    Rule(sub("-twotheta"), 1, put("twotheta", _deg, pivot="sample")),
    Rule(sub("-detector_rotx"), 1, put("rotx", _deg)),
    Rule(sub("-detector_roty"), 1, put("roty", _deg)),
    Rule(sub("-detector_rotz"), 1, put("rotz", _deg)),
    Rule(sub_len("-detsize", 8), 1, put(("detsize_f", "detsize_s"), _mm)),
    Rule(sub("-detsize_f", "-detsize_x"), 1, put("detsize_f", _mm)),
    Rule(sub("-detsize_s", "-detsize_y"), 1, put("detsize_s", _mm)),
    Rule(sub_len("-detpixels", 10), 1, put(("fpixels", "spixels"), atoi)),
    Rule(sub("-detpixels_f", "-detpixels_x"), 1, put("fpixels", atoi)),
    Rule(sub("-detpixels_s", "-detpixels_y"), 1, put("spixels", atoi)),
    Rule(sub("-curved_det"), 1, flag(curved=True)),
    Rule(sub("-pixel"), 1, put("pixel_size", _mm)),
    Rule(sub("-point_pixel"), 0, flag(point_pixel=True)),
    Rule(sub_len("-polar", 6), 1, put("polarization", atof, nopolar=False)),
    Rule(sub("-nopolar"), 0, flag(nopolar=True)),
    Rule(sub("-oversample_thick"), 0, flag(oversample_thick=True), stop=True),
    Rule(sub("-oversample_polar"), 0, flag(oversample_polar=True), stop=True),
    Rule(sub("-oversample_omega"), 0, flag(oversample_omega=True), stop=True),
    Rule(sub("-oversample"), 1, put("oversample", atoi)),
    Rule(sub("-roi"), 4, _roi),
    Rule(sub("-lambda", "-wave"), 1, put("lambda0", lambda t: atof(t) / 1.0e10)),
    Rule(sub("-energy"), 1, _energy),
    Rule(sub("-fluence"), 1, put("fluence", atof)),
    Rule(sub("-flux"), 1, put("flux", atof)),
    Rule(sub("-exposure"), 1, put("exposure", atof)),
    Rule(sub("-beamsize"), 1, put("beamsize", _mm)),
    Rule(lambda tok: sub_len("-mosaic", 7)(tok) or "-mosaici" in tok or "-mosaic_spr" in tok, 1,
         put("mosaic_spread", _deg)),
    Rule(sub("-mosaic_dom"), 1, put("mosaic_domains", atoi)),
    Rule(sub("-dispersion"), 1, put("dispersion", lambda t: atof(t) / 100.0)),
    Rule(sub("-dispsteps"), 1, put("dispsteps", atoi)),
    Rule(sub("-divergence"), 1, put(("hdivrange", "vdivrange"), _mm)),
    Rule(sub("-hdivrange"), 1, put("hdivrange", _mm)),
    Rule(sub("-vdivrange"), 1, put("vdivrange", _mm)),
    Rule(sub_len("-hdivstep", 9), 1, put("hdivstep", _mm)),
    Rule(sub("-hdivsteps"), 1, put("hdivsteps", atoi)),
    Rule(sub_len("-vdivstep", 9), 1, put("vdivstep", _mm)),
    Rule(sub("-vdivsteps"), 1, put("vdivsteps", atoi)),
    Rule(sub("-divsteps"), 1, put(("hdivsteps", "vdivsteps"), atoi)),
    Rule(sub("-round_div"), 0, flag(round_div=True)),
    Rule(sub("-square_div"), 0, flag(round_div=False)),
    Rule(sub("-adc"), 1, put("adc_offset", atof)),
    Rule(sub_len("-phi", 4), 1, put("phi0", _deg)),
    Rule(sub("-osc"), 1, put("osc", _deg)),
    Rule(sub_len("-phistep", 8), 1, put("phistep", _deg)),
    Rule(sub("-phisteps"), 1, put("phisteps", atoi)),
    Rule(sub("-dmin"), 1, put("dmin", lambda t: atof(t) * 1e-10)),
    Rule(sub("-mat"), 1, put("matfile", _text)),
    Rule(sub("-hkl"), 1, put("hklfile", _text)),
    Rule(sub("-default_F"), 1, put("default_F", atof)),
    Rule(sub("-dump"), 1, put("dumpfile", _text)),
    Rule(sub("-img"), 1, put("imgfile", _text)),
    # -stolout: nanoBragg reads the name and never writes the file
    Rule(lambda tok: sub_len("-stol", 5)(tok) or sub_len("-4stol", 6)(tok) or sub_len("-Q", 2)(tok), 1,
         put("stolfile", _text)),
    Rule(sub("-sourcefile"), 1, put("sourcefile", _text)),
    Rule(sub("-floatfile", "-floatimage"), 1, put("floatfile", _text)),
    Rule(sub("-intfile", "-intimage"), 1, put("intfile", _text)),
    Rule(sub("-pgmfile", "-pgmimage"), 1, put("pgmfile", _text, write_pgm=True)),
    Rule(sub("-noisefile", "-noiseimage"), 1, put("noisefile", _text, calculate_noise=True)),
    Rule(sub("-nonoise"), 0, flag(calculate_noise=False)),
    Rule(sub("-nopgm"), 0, flag(write_pgm=False)),
    Rule(sub("-scale"), 1, put("intfile_scale", atof)),
    Rule(sub("-pgmscale"), 1, put("pgm_scale", atof, write_pgm=True)),
    Rule(sub("-printout"), 0, flag(printout=True)),
    Rule(sub("-noprogress"), 0, flag(progress=False)),
    Rule(lambda tok: "-progress" in tok and "-noprogress" not in tok, 0, flag(progress=True)),
    Rule(lambda tok: "-interpolate" in tok and "-nointerpolate" not in tok, 0, flag(interpolate=1)),
    Rule(sub("-nointerpolate"), 0, flag(interpolate=0)),
    Rule(sub("-round_xtal"), 0, flag(shape="round")),
    Rule(sub("-square_xtal"), 0, flag(shape="square")),
    Rule(sub("-gauss_xtal"), 0, flag(shape="gauss")),
    Rule(sub("-binary_spots", "-tophat_spots"), 0, flag(shape="tophat")),
    Rule(sub("-fudge"), 1, put("fudge", atof)),
    Rule(sub("-printout_pixel"), 2, _printout_pixel),
    Rule(sub("-seed"), 1, put("seed", _negated_int)),
    Rule(sub("-mosaic_seed"), 1, put("mosaic_seed", _negated_int)),
    Rule(sub("-misset_seed"), 1, put("misset_seed", _negated_int)),
    Rule(sub("-water"), 1, put("water_size", lambda t: atof(t) / 1e6)),
    # nanobrag_torch's own options: exact names (their values were checked by options.validate)
    Rule(exact("-mtz"), 0, put("mtzfile", _text)),
    Rule(exact("-mtz_column"), 0, put("mtz_column", _text)),
    Rule(exact("-cif_sf"), 0, put("cif_sf_file", _text)),
    Rule(exact("-cif_column"), 0, put("cif_column", _text)),
    Rule(exact("-model"), 0, put("modelfile", _text)),
    Rule(exact("-anomalous"), 0, flag(anomalous=True)),
    Rule(exact("-dtype"), 0, put("dtype", _text)),
    Rule(exact("-device"), 0, put("device", _text)),
    Rule(exact("-nthreads"), 0, put("nthreads", atoi)),
    Rule(exact("-expt"), 0, put("exptfile", _text)),
    Rule(exact("-write_expt"), 0, put("write_expt", _text)),
    Rule(exact("-trace_pixel"), 0, _trace_pixel),
    Rule(exact("-compat"), 0, put("compat", _text)),
    Rule(exact("--debug", "-debug"), 0, flag(debug=True)),
)
