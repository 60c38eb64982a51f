"""DIALS experiment lists (.expt, JSON) read and written without dxtbx.

The file holds DIALS's models as dxtbx's `to_dict` writes them: beam (direction towards the source,
wavelength in Angstrom, polarization normal and fraction), detector (panels with their *local*
frames under a hierarchy of groups, lengths in mm, mu in 1/mm), crystal (real-space vectors in
Angstrom, Hall symbol), goniometer (rotation axis, fixed and setting rotations) and scan (image
range and oscillation in degrees, legacy or `properties` form).

`Experiment` holds one experiment in nanoBragg's lab frame and SI units. The two frames differ by a
fixed rotation, the one nanoBragg uses for its "dials origin" line: (x, y, z) here is (z, y, -x) in
DIALS, so MOSFLM's beam along +x becomes DIALS's beam along -z. Only signs and places change, so
vectors cross the frames without rounding; lengths are converted between m and mm.
"""
import json
import math
import os
from dataclasses import dataclass, field

from ..errors import InputFileError
from .atomic import atomic_open

RTD = 180.0 / math.pi


def to_dials(v):
    return [float(v[2]), float(v[1]), -float(v[0])]


def from_dials(d):
    return [-float(d[2]), float(d[1]), float(d[0])]


def _cross(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def _unit(v):
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return [c / n for c in v] if n > 0 else [0.0, 0.0, 0.0]


@dataclass
class Panel:
    """One flat panel: origin = corner of pixel (0, 0) (m), unit fast/slow axes, our lab frame."""

    origin: list
    fast: list
    slow: list
    pixel_size: float  # m (square pixels)
    fpixels: int
    spixels: int
    thickness: float = 0.0  # m
    mu: float = 0.0  # 1/m
    name: str = ""
    material: str = ""

    @property
    def normal(self):
        """fast x slow, turned to point away from the sample (nanoBragg's odet; DIALS's normal
        may point either way, which nanoBragg's solid angle and parallax would take as a
        detector behind the sample)."""
        n = _unit(_cross(self.fast, self.slow))
        if n[0] * self.origin[0] + n[1] * self.origin[1] + n[2] * self.origin[2] < 0:
            n = [-c for c in n]
        return n


@dataclass
class Experiment:
    """Geometry of one experiment in nanoBragg's lab frame, SI units (None: not in the file)."""

    beam: list = None  # unit vector along the x-ray propagation
    wavelength: float = None  # m
    kahn: float = None  # nanoBragg's Kahn factor = 2 * polarization_fraction - 1
    polar_vector: list = None  # E-vector direction (normal x beam)
    panels: list = field(default_factory=list)
    real: list = None  # rows a, b, c in Angstrom at scan angle 0
    space_group: str = None  # Hall symbol
    spindle: list = None
    phi0: float = None  # rad, start of the first image
    osc: float = None  # rad, oscillation width per image
    images: int = 1


def _get(d, key, where, kind=None, length=None):
    if not isinstance(d, dict) or key not in d:
        raise InputFileError(f"{where}: missing key '{key}'")
    value = d[key]
    if length is not None:
        ok = isinstance(value, (list, tuple)) and len(value) == length and \
            all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value)
        if not ok:
            raise InputFileError(f"{where}: '{key}' must be {length} finite numbers")
        return [float(x) for x in value]
    if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)
                             or (isinstance(value, float) and not math.isfinite(value))):
        raise InputFileError(f"{where}: '{key}' has the wrong type")
    return value


def _matrix(d, key, where):
    if key not in d or d[key] is None:
        return None
    m = _get(d, key, where, length=9)
    return [m[0:3], m[3:6], m[6:9]]


def _mat_vec(m, v):
    return [m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2] for i in range(3)]


def _mat_mul(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(3)) for j in range(3)] for i in range(3)]


IDENTITY = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def _axis_matrix(axis, angle_deg):
    """Right-handed rotation matrix about a unit axis."""
    x, y, z = _unit(axis)
    c, s = math.cos(angle_deg / RTD), math.sin(angle_deg / RTD)
    t = 1 - c
    return [[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c]]


def _frame(node, where):
    fast = _get(node, "fast_axis", where, length=3)
    slow = _get(node, "slow_axis", where, length=3)
    origin = _get(node, "origin", where, length=3)
    return origin, fast, slow


def _compose(parent, local):
    """Global frame of a child from its parent's global frame and its own local frame (dxtbx:
    the parent's fast, slow and normal axes carry the child's local coordinates)."""
    (po, pf, ps), (lo, lf, ls) = parent, local
    pn = _unit(_cross(pf, ps))

    def carry(v):
        return [pf[i] * v[0] + ps[i] * v[1] + pn[i] * v[2] for i in range(3)]

    return [po[i] + c for i, c in enumerate(carry(lo))], carry(lf), carry(ls)


def _walk(node, frame, frames, where, depth=0):
    """Give every panel index under `node` its global frame."""
    if depth > 32:
        raise InputFileError(f"{where}: hierarchy deeper than 32 levels")
    for child in node.get("children", []) if isinstance(node, dict) else []:
        if isinstance(child, dict) and "panel" in child:
            frames[child["panel"]] = frame
        elif isinstance(child, dict):
            _walk(child, _compose(frame, _frame(child, where)), frames, where, depth + 1)
        else:
            raise InputFileError(f"{where}: a hierarchy child must be an object")


def _panels(det, where):
    raw = _get(det, "panels", where)
    if not isinstance(raw, list) or not raw:
        raise InputFileError(f"{where}: the detector has no panels")
    parents = {}
    root = det.get("hierarchy")
    if isinstance(root, dict):
        _walk(root, _frame(root, where + " hierarchy"), parents, where + " hierarchy")
    panels = []
    for i, p in enumerate(raw):
        here = f"{where} panel {i}"
        frame = _frame(p, here)
        if i in parents:
            frame = _compose(parents[i], frame)
        origin, fast, slow = frame
        size = _get(p, "pixel_size", here, length=2)
        nf, ns = _get(p, "image_size", here, length=2)
        if size[0] <= 0 or size[0] != size[1]:
            raise InputFileError(f"{here}: pixel_size {size} must be square and positive (nanoBragg's pixels are)")
        if nf < 1 or ns < 1 or nf != int(nf) or ns != int(ns):
            raise InputFileError(f"{here}: image_size must be two positive integers")
        if abs(fast[0] * fast[0] + fast[1] * fast[1] + fast[2] * fast[2] - 1) > 1e-6 or \
                abs(slow[0] * slow[0] + slow[1] * slow[1] + slow[2] * slow[2] - 1) > 1e-6:
            raise InputFileError(f"{here}: fast_axis and slow_axis must be unit vectors")
        thick = float(p.get("thickness", 0.0) or 0.0)
        mu = float(p.get("mu", 0.0) or 0.0)
        if not (math.isfinite(thick) and math.isfinite(mu)) or thick < 0 or mu < 0:
            raise InputFileError(f"{here}: thickness and mu must be finite and not negative")
        panels.append(Panel(origin=[x / 1000.0 for x in from_dials(origin)], fast=from_dials(fast),
                            slow=from_dials(slow), pixel_size=size[0] / 1000.0, fpixels=int(nf), spixels=int(ns),
                            thickness=thick / 1000.0, mu=mu * 1000.0, name=str(p.get("name", "")),
                            material=str(p.get("material", ""))))
    return panels


def _beam(exp, b, where):
    direction = _get(b, "direction", where, length=3)
    exp.beam = [-c for c in _unit(from_dials(direction))]
    wl = _get(b, "wavelength", where, kind=(int, float))
    if not wl > 0:
        raise InputFileError(f"{where}: wavelength must be positive")
    exp.wavelength = wl / 1e10
    if "polarization_fraction" in b:
        frac = _get(b, "polarization_fraction", where, kind=(int, float))
        exp.kahn = 2.0 * frac - 1.0
    if "polarization_normal" in b:
        normal = from_dials(_get(b, "polarization_normal", where, length=3))
        exp.polar_vector = _unit(_cross(normal, exp.beam))


def _crystal(exp, c, where):
    exp.real = [from_dials(_get(c, f"real_space_{x}", where, length=3)) for x in "abc"]
    exp.space_group = str(c.get("space_group_hall_symbol", " P 1"))


def _goniometer_and_scan(exp, g, s, where):
    """Spindle and phi range; crystal vectors are turned by the fixed and setting rotations so
    that the lab-frame orientation at scan angle 0 is what nanoBragg rotates by phi."""
    fixed = setting = IDENTITY
    if "rotation_axis" in g:
        axis = _get(g, "rotation_axis", where, length=3)
        fixed = _matrix(g, "fixed_rotation", where) or IDENTITY
        setting = _matrix(g, "setting_rotation", where) or IDENTITY
    elif "axes" in g:  # multi-axis goniometer: axes listed innermost first
        axes, angles = g["axes"], g.get("angles", [])
        scan_axis = int(g.get("scan_axis", 0))
        if not isinstance(axes, list) or not axes or len(angles) != len(axes) or not 0 <= scan_axis < len(axes):
            raise InputFileError(f"{where}: axes, angles and scan_axis do not agree")
        axes = [_get({"a": a}, "a", where, length=3) for a in axes]
        for i in range(scan_axis):
            fixed = _mat_mul(_axis_matrix(axes[i], float(angles[i])), fixed)
        for i in range(scan_axis + 1, len(axes)):
            setting = _mat_mul(_axis_matrix(axes[i], float(angles[i])), setting)
        axis = axes[scan_axis]
    else:
        raise InputFileError(f"{where}: neither 'rotation_axis' nor 'axes'")
    exp.spindle = from_dials(_unit(_mat_vec(setting, axis)))
    if exp.real is not None and (fixed != IDENTITY or setting != IDENTITY):
        turn = _mat_mul(setting, fixed)
        exp.real = [from_dials(_mat_vec(turn, to_dials(v))) for v in exp.real]
    if s is None:
        return
    first, last = _get(s, "image_range", where + " scan", length=2)
    exp.images = int(last - first + 1)
    props = s.get("properties", {})
    if isinstance(props, dict) and "oscillation" in props:
        starts = props["oscillation"]
        if not isinstance(starts, list) or not starts:
            raise InputFileError(f"{where} scan: 'oscillation' must be a list of angles")
        width = props.get("oscillation_width", [None])[0] if len(starts) == 1 else starts[1] - starts[0]
        start = starts[0]
    else:
        start, width = _get(s, "oscillation", where + " scan", length=2)
    if width is None:
        raise InputFileError(f"{where} scan: no oscillation width")
    exp.phi0, exp.osc = float(start) / RTD, float(width) / RTD


def _pick(doc, kind, index, where):
    items = doc.get(kind, [])
    if index is None:
        return None
    if not isinstance(items, list) or not isinstance(index, int) or not 0 <= index < len(items):
        raise InputFileError(f"{where}: experiment refers to {kind} {index}, which the file does not have")
    return items[index]


def read_expt(path, which=0):
    """The `which`-th experiment of a DIALS experiment list as an `Experiment`."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: not a JSON experiment list ({str(exc)[:80]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("experiment"), list) or not doc["experiment"]:
        raise InputFileError(f"{path}: no 'experiment' list (not a DIALS experiment list)")
    if not 0 <= which < len(doc["experiment"]):
        raise InputFileError(f"{path}: has {len(doc['experiment'])} experiments, not {which + 1}")
    ex = doc["experiment"][which]
    if not isinstance(ex, dict):
        raise InputFileError(f"{path}: experiment {which} is not an object")
    exp = Experiment()
    for kind in ("beam", "detector", "crystal", "goniometer", "scan"):
        ex_kind = ex.get(kind)
        if ex_kind is not None and not isinstance(ex_kind, int):
            raise InputFileError(f"{path}: experiment {which} '{kind}' must be an index")
    beam, det = _pick(doc, "beam", ex.get("beam"), path), _pick(doc, "detector", ex.get("detector"), path)
    crystal = _pick(doc, "crystal", ex.get("crystal"), path)
    gonio = _pick(doc, "goniometer", ex.get("goniometer"), path)
    scan = _pick(doc, "scan", ex.get("scan"), path)
    if beam is not None:
        _beam(exp, beam, f"{path} beam")
    if det is not None:
        exp.panels = _panels(det, f"{path} detector")
    if crystal is not None:
        _crystal(exp, crystal, f"{path} crystal")
    if gonio is not None:
        _goniometer_and_scan(exp, gonio, scan, f"{path} goniometer")
    return exp


def _panel_dict(p, index):
    strategy = {"type": "SimplePxMmStrategy"}
    if p.thickness > 0 and p.mu > 0:
        strategy = {"type": "ParallaxCorrectedPxMmStrategy", "mu": p.mu / 1000.0, "t0": p.thickness * 1000.0}
    return {
        "name": p.name or f"panel{index:02d}", "type": "SENSOR_PAD", "fast_axis": to_dials(p.fast),
        "slow_axis": to_dials(p.slow), "origin": to_dials([x * 1000.0 for x in p.origin]),
        "raw_image_offset": [0, 0], "image_size": [p.fpixels, p.spixels],
        "pixel_size": [p.pixel_size * 1000.0, p.pixel_size * 1000.0], "trusted_range": [-1.0, 65535.0],
        "thickness": p.thickness * 1000.0, "material": p.material or ("Si" if p.thickness > 0 else ""),
        "mu": p.mu / 1000.0, "identifier": "", "mask": [], "gain": 1.0, "pedestal": 0.0,
        "px_mm_strategy": strategy,
    }


def _detector_dict(panels):
    """Panels with global frames under a root group at the lab origin with the lab's axes (so that
    each panel's local frame is its global one)."""
    root = {"name": "", "type": "", "fast_axis": [1.0, 0.0, 0.0], "slow_axis": [0.0, 1.0, 0.0],
            "origin": [0.0, 0.0, 0.0], "raw_image_offset": [0, 0], "image_size": [0, 0], "pixel_size": [0.0, 0.0],
            "trusted_range": [0.0, 0.0], "thickness": 0.0, "material": "", "mu": 0.0, "identifier": "",
            "mask": [], "gain": 1.0, "pedestal": 0.0, "px_mm_strategy": {"type": "SimplePxMmStrategy"},
            "children": [{"panel": i} for i in range(len(panels))]}
    return {"panels": [_panel_dict(p, i) for i, p in enumerate(panels)], "hierarchy": root}


def experiment_dicts(exp):
    """(beam, detector, crystal or None, goniometer or None, scan or None) dictionaries."""
    kahn = 0.0 if exp.kahn is None else exp.kahn
    polar = exp.polar_vector or [0.0, 0.0, 1.0]
    beam = {"__id__": "monochromatic", "direction": to_dials([-c for c in exp.beam]),
            "wavelength": exp.wavelength * 1e10, "divergence": 0.0, "sigma_divergence": 0.0,
            "polarization_normal": to_dials(_unit(_cross(exp.beam, polar))),
            "polarization_fraction": (1.0 + kahn) / 2.0, "flux": 0.0, "transmission": 1.0}
    crystal = None
    if exp.real is not None:
        crystal = {"__id__": "crystal", "real_space_a": to_dials(exp.real[0]), "real_space_b": to_dials(exp.real[1]),
                   "real_space_c": to_dials(exp.real[2]), "space_group_hall_symbol": exp.space_group or " P 1"}
    gonio = scan = None
    if exp.spindle is not None and exp.osc is not None:
        identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        gonio = {"rotation_axis": to_dials(exp.spindle), "fixed_rotation": identity, "setting_rotation": list(identity)}
        n = max(int(exp.images), 1)
        start, width = exp.phi0 * RTD, exp.osc * RTD
        props = {"oscillation": [start + width * i for i in range(n)], "epochs": [float(i) for i in range(n)],
                 "exposure_time": [1.0] * n}
        if n == 1:
            props["oscillation_width"] = [width]
        scan = {"image_range": [1, n], "batch_offset": 0, "properties": props, "valid_image_ranges": {}}
    return beam, _detector_dict(exp.panels), crystal, gonio, scan


def expt_document(experiments):
    """A DIALS experiment list (dict) holding every Experiment of `experiments`, models unshared."""
    doc = {"__id__": "ExperimentList", "experiment": [], "imageset": [], "beam": [], "detector": [],
           "goniometer": [], "scan": [], "crystal": [], "profile": [], "scaling_model": []}
    for exp in experiments:
        beam, det, crystal, gonio, scan = experiment_dicts(exp)
        entry = {"__id__": "Experiment", "identifier": "", "beam": len(doc["beam"]),
                 "detector": len(doc["detector"])}
        doc["beam"].append(beam)
        doc["detector"].append(det)
        for kind, model in (("crystal", crystal), ("goniometer", gonio), ("scan", scan)):
            if model is not None:
                entry[kind] = len(doc[kind])
                doc[kind].append(model)
        doc["experiment"].append(entry)
    return doc


def write_expt(path, experiments):
    """Write one or several Experiments as a DIALS experiment list (atomically)."""
    if isinstance(experiments, Experiment):
        experiments = [experiments]
    text = json.dumps(expt_document(experiments), indent=2)
    with atomic_open(path, "w") as handle:
        handle.write(text + "\n")
