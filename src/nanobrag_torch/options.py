"""The command-line vocabulary: every spelling nanoBragg.c accepts, with its values.

Validation here is strict (unknown options, missing, non-numeric or non-finite values are
errors); the effects of the options are applied by `settings.py` exactly as nanoBragg does.
"""
import difflib
import math

from .cnum import atoi
from .compat import MODES
from .errors import UsageError

F, I, S = "float", "int", "str"
V3 = (F, F, F)

# name -> tuple of value kinds ("cell", "misset", "absorb" and "pivot" are special)
OPTIONS = {
    "Na": (I,), "Nb": (I,), "Nc": (I,), "N": (I,), "cell": ("cell",), "misset": ("misset",),
    "samplesize": (F,), "sample_size": (F,), "sample_thick": (F,), "sample_x": (F,),
    "sample_width": (F,), "sample_y": (F,), "sample_height": (F,), "sample_z": (F,),
    "width": (F,), "height": (F,),
    "xtalsize": (F,), "xtal_size": (F,), "xtal_thick": (F,), "xtal_x": (F,), "xtal_width": (F,),
    "xtal_y": (F,), "xtal_height": (F,), "xtal_z": (F,), "density": (F,), "sample_density": (F,),
    "MW": (F,), "molecular_weight": (F,),
    "Xbeam": (F,), "Ybeam": (F,), "Xclose": (F,), "Yclose": (F,), "ORGX": (F,), "ORGY": (F,),
    "pivot": ("pivot",), "mosflm": (), "xds": (), "adxv": (), "denzo": (), "dials": (),
    "fdet_vector": V3, "sdet_vector": V3, "odet_vector": V3, "beam_vector": V3,
    "polar_vector": V3, "spindle_axis": V3, "twotheta_axis": V3, "pix0_vector": V3,
    "distance": (F,), "close_distance": (F,), "source_distance": (F,),
    "detector_abs": ("absorb",), "detector_absorb": ("absorb",), "detector_absorption": ("absorb",),
    "detector_thick": (F,), "detector_thicksteps": (I,), "thicksteps": (I,),
    "twotheta": (F,), "detector_rotx": (F,), "detector_roty": (F,), "detector_rotz": (F,),
    "detsize": (F,), "detsize_f": (F,), "detsize_s": (F,), "detsize_x": (F,), "detsize_y": (F,),
    "detpixels": (I,), "detpixels_f": (I,), "detpixels_s": (I,), "detpixels_x": (I,), "detpixels_y": (I,),
    "curved_det": (), "curved_detector": (), "pixel": (F,), "pixel_size": (F,), "point_pixel": (),
    "polar": (F,), "nopolar": (), "oversample_thick": (), "oversample_polar": (), "oversample_omega": (),
    "oversample": (I,), "roi": (I, I, I, I), "lambda": (F,), "wave": (F,), "wavelength": (F,),
    "energy": (F,), "fluence": (F,), "flux": (F,), "exposure": (F,), "beamsize": (F,),
    "mosaic": (F,), "mosaicity": (F,), "mosaic_spread": (F,), "mosaic_dom": (I,), "mosaic_domains": (I,),
    "dispersion": (F,), "dispsteps": (I,), "divergence": (F,), "hdivrange": (F,), "vdivrange": (F,),
    "hdivstep": (F,), "hdivsteps": (I,), "vdivstep": (F,), "vdivsteps": (I,), "divsteps": (I,),
    "round_div": (), "square_div": (), "adc": (F,), "phi": (F,), "osc": (F,), "phistep": (F,),
    "phisteps": (I,), "dmin": (F,), "mat": (S,), "matrix": (S,), "hkl": (S,), "default_F": (F,),
    "dump": (S,), "img": (S,), "mask": (S,), "stolout": (S,), "stol": (S,), "4stol": (S,), "Q": (S,),
    "sourcefile": (S,), "floatfile": (S,), "floatimage": (S,), "intfile": (S,), "intimage": (S,),
    "pgmfile": (S,), "pgmimage": (S,), "noisefile": (S,), "noiseimage": (S,), "nonoise": (), "nopgm": (),
    "scale": (F,), "pgmscale": (F,), "coherent": (), "printout": (), "noprogress": (), "progress": (),
    "interpolate": (), "nointerpolate": (), "round_xtal": (), "square_xtal": (), "gauss_xtal": (),
    "binary_spots": (), "tophat_spots": (), "fudge": (F,), "printout_pixel": (I, I), "seed": (I,),
    "mosaic_seed": (I,), "misset_seed": (I,), "water": (F,),
    # nanobrag_torch's own options
    "mtz": (S,), "mtz_column": (S,), "cif_sf": (S,), "cif_column": (S,), "model": (S,), "anomalous": (),
    "background": (S,), "background_thick": (F,), "background_density": (F,), "background_MW": (F,),
    "psf": (S,), "psf_fwhm": (F,), "psf_radius": (I,), "readout_noise": (F,), "flicker": (F,),
    "calibration": (F,), "calib_seed": (I,), "gain": (F,),
    "dtype": ("dtype",), "device": ("device",), "expt": (S,), "write_expt": (S,), "nthreads": (I,),
    "trace_pixel": (I, I), "compat": ("compat",),
    # datasets (datasets/cli.py)
    "frames": (I,), "stills": (I,), "frame": (I,), "smv": (S,), "nexus": (S,), "cbf": (S,), "resume": (),
    "overwrite": (), "shots": (S,), "export_c": (S,), "workers": (I,), "scheduler": (S,),
}

# values nanoBragg.c would run on with into a meaningless image, a division by zero or a crash
POSITIVE = {"lambda", "wave", "wavelength", "energy", "pixel", "pixel_size", "detpixels", "detpixels_f",
            "detpixels_s", "detpixels_x", "detpixels_y", "detsize", "detsize_f", "detsize_s", "detsize_x",
            "detsize_y", "frames", "stills", "workers"}
NON_NEGATIVE = {"N", "Na", "Nb", "Nc", "mosaic_dom", "mosaic_domains", "phisteps", "dispsteps", "hdivsteps",
                "vdivsteps", "divsteps", "detector_thicksteps", "thicksteps", "fluence", "flux", "water", "nthreads",
                "frame", "psf_fwhm", "psf_radius", "readout_noise", "flicker", "calibration"}
NON_ZERO = {"distance", "close_distance"}  # the detector plane would pass through the sample
C_INT_MAX = 2**31 - 1
MAX_THREADS = 1024  # torch crashes (segfault) when asked for ~100000 threads

OWN_FLAGS = {"--debug", "-debug"}
HELP = {"-h", "-help", "--help"}
VERSION = {"-version", "--version"}


def _bad(option, message):
    raise UsageError(f"option -{option}: {message}")


def _number(option, token, kind):
    if token is None:
        _bad(option, "missing value")
    plain = "_" not in token and token.isascii()  # Python reads '1_0' and non-ASCII digits; C does not
    try:
        if not plain:
            raise ValueError
        value = int(token) if kind == I else float(token)
    except ValueError:
        if kind == I and plain:
            try:
                as_float = float(token)
            except ValueError:
                as_float = None
            # '5.0' is fine, but not '1e3': nanoBragg's atoi would read 1 from it
            if as_float is not None and math.isfinite(as_float) and as_float == int(as_float) \
                    and atoi(token) == int(as_float):
                return _in_range(option, token, int(as_float))
        _bad(option, f"expected {'an integer' if kind == I else 'a number'}, got '{token}'")
    if kind == F and not math.isfinite(value):
        _bad(option, f"value must be finite, got '{token}'")
    return _in_range(option, token, value) if kind == I else value


def _in_range(option, token, value):
    if abs(value) > C_INT_MAX:
        _bad(option, f"integer out of range, got '{token}'")
    return value


def _check_sign(option, values):
    for value in values:
        if not isinstance(value, (int, float)):
            continue
        if option in POSITIVE and not value > 0:
            _bad(option, f"must be positive, got {value:g}")
        if option in NON_NEGATIVE and value < 0:
            _bad(option, f"must not be negative, got {value:g}")
        if option in NON_ZERO and value == 0:
            _bad(option, "must not be zero")
        if option == "nthreads" and value > MAX_THREADS:
            _bad(option, f"at most {MAX_THREADS} threads, got {value}")


def _is_number(token):
    try:
        return math.isfinite(float(token))
    except (TypeError, ValueError):
        return False


# options that take several values: the names of their values, for the message when some are missing
MULTI = {"cell": "a b c alpha beta gamma", "misset": "rotx roty rotz (degrees) or 'random'",
         "roi": "xmin xmax ymin ymax", "printout_pixel": "FAST SLOW", "trace_pixel": "SLOW FAST",
         **{name: "x y z" for name, kinds in OPTIONS.items() if kinds == V3}}


def _check_count(name, argv, start):
    """A multi-value option takes all of its values or is an error naming the count it got."""
    if name not in MULTI:
        return
    if name == "misset" and start < len(argv) and argv[start].lower().startswith("rand"):
        return
    need = len(MULTI[name].split()) if name != "misset" else 3
    got = 0
    while start + got < len(argv) and got < need and _is_value(argv[start + got]):
        got += 1
    if got < need:
        _bad(name, f"expected {need} values ({MULTI[name]}), got {got}")


def _is_value(token):
    """A token that can be an option's value: anything but a known option or flag (-5 is a value)."""
    if token in OWN_FLAGS or token in HELP:
        return False
    return not (token.startswith("-") and not _is_number(token) and token[1:] in OPTIONS)


def option_name(tok, vocabulary):
    """The option that `tok` names (without its '-'); an unknown one is an error naming the closest."""
    name = tok[1:]
    if name not in vocabulary:
        close = difflib.get_close_matches(name, vocabulary.keys(), n=1, cutoff=0.6)
        hint = f"; did you mean -{close[0]}?" if close else ""
        raise UsageError(f"unknown option '{tok}'{hint}")
    return name


def validate(argv):
    """Check every option and its values; return {option: [values...]} (last occurrence wins)."""
    seen = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in OWN_FLAGS or tok in HELP or tok in VERSION:
            seen[tok.lstrip("-")] = []
            i += 1
            continue
        if not tok.startswith("-") or len(tok) < 2 or _is_number(tok):
            raise UsageError(f"unexpected argument '{tok}' (options start with '-')")
        name = option_name(tok, OPTIONS)
        values = []
        i += 1
        _check_count(name, argv, i)
        for kind in OPTIONS[name]:
            token = argv[i] if i < len(argv) else None
            if kind in (F, I):
                values.append(_number(name, token, kind))
                i += 1
            elif kind == S:
                if token is None or (token.startswith("-") and not _is_number(token) and token[1:] in OPTIONS):
                    _bad(name, "missing file name")
                values.append(token)
                i += 1
            elif kind == "cell":
                while i < len(argv) and len(values) < 6 and _is_number(argv[i]) and not argv[i].startswith("-"):
                    values.append(float(argv[i]))
                    i += 1
                if i < len(argv) and _is_number(argv[i]) and len(values) < 6:
                    _bad(name, "cell values must be positive")
            elif kind == "misset":
                if token is not None and token.lower().startswith("rand"):
                    values.append("random")
                    i += 1
                else:
                    for _ in range(3):
                        values.append(_number(name, argv[i] if i < len(argv) else None, F))
                        i += 1
            elif kind == "absorb":
                if token is not None and "inf" in token:
                    values.append(float("inf"))
                else:
                    values.append(_number(name, token, F))
                    if values[-1] != 0 and values[-1] * 1e-6 == 0:  # microns -> m underflows: 1/0
                        _bad(name, f"attenuation length too small, got '{token}'")
                i += 1
            elif kind == "pivot":
                if token not in ("sample", "beam"):
                    _bad(name, f"expected 'sample' or 'beam', got '{token}'" if token else "missing value")
                values.append(token)
                i += 1
            elif kind == "dtype":
                if token not in ("float32", "float64"):
                    _bad(name, f"expected float32 or float64, got '{token}'" if token else "missing value")
                values.append(token)
                i += 1
            elif kind == "compat":
                if token not in MODES:
                    _bad(name, f"expected {', '.join(MODES)}, got '{token}'" if token else "missing value")
                values.append(token)
                i += 1
            elif kind == "device":
                if token is None or not (token in ("cpu", "cuda", "auto") or token.startswith("cuda:")):
                    _bad(name, f"expected cpu, cuda or auto, got '{token}'" if token else "missing value")
                values.append(token)
                i += 1
        _check_sign(name, values)
        seen[name] = values
    return seen
