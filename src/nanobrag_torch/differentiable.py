"""Differentiable parameters: named leaf tensors that are written into a Simulation's models
before every render, so that each render builds a fresh autograd graph from the current values.

`parameters(sim, "cell", "distance", ...)` returns a `Parameters` dict of float64 leaves in the
command line's units (Angstrom, degrees, mm, um, percent) and attaches it to `sim`; after an
optimizer step the next `sim.run()` / `sim.roi_image()` / `sim.render_pixels()` sees the new values.
Quantities derived from several values (lattice vectors from cell + misset, mosaic rotations
from the spread, wavelengths from the central wavelength + bandpass, sensor layers from the
thickness, water background from water size + fluence) are recomputed at every render.
"""
import math
from dataclasses import dataclass, fields

import torch

from .geometry.vectors import unitize
from .lattice import axis_angle_umats, cell_parameters, mosaic_axis_angles
from .models.sample import Sample
from .structure import atom_initial, atom_write, model_check, refresh_grid


@dataclass(frozen=True)
class Spec:
    unit: str
    doc: str
    initial: object  # (sim, context) -> float64 tensor: the current value in `unit`
    write: object  # (sim, value, context) -> None: put the value into the models
    group: str = None  # derived quantity to recompute after the writes
    check: object = None  # (sim) -> error text when the parameter does not apply, else None


def _f64(x, sim):
    return torch.as_tensor(x, dtype=torch.float64).to(sim.detector.device).clone()


def _cast(sim, x):
    return x.to(dtype=sim.detector.dtype, device=sim.detector.device)


# ---- crystal -------------------------------------------------------------------------------

def _reciprocal_of_real(sim):
    """Rows a*, b*, c* (1/Angstrom) of the real vectors in use (float64). The stored reciprocal
    vectors can differ slightly: nanoBragg rescales the real vectors to the cell lengths last."""
    real = sim.crystal.real.detach().to(torch.float64) * 1e10
    return torch.linalg.inv(real).T.contiguous()


def _ensure_definition(sim):
    """Crystals built from bare vectors get their current orientation matrix as definition."""
    c = sim.crystal
    if c.cell is None and c.mat is None:
        c.mat = _reciprocal_of_real(sim)


def _cell_initial(sim, ctx):
    _ensure_definition(sim)
    c = sim.crystal
    if c.cell is not None:
        cell = torch.as_tensor(c.cell, dtype=torch.float64)
        return torch.cat((cell[:3], torch.rad2deg(cell[3:]))).to(sim.detector.device)
    real = c.real.detach().double().cpu() * 1e10
    return _f64(cell_parameters(real, _reciprocal_of_real(sim).cpu(), torch.det(real))[0], sim)


def _cell_write(sim, v, ctx):
    sim.crystal.cell = torch.cat((v[:3], torch.deg2rad(v[3:])))


def _mat_initial(sim, ctx):
    return _reciprocal_of_real(sim)


def _mat_write(sim, v, ctx):
    sim.crystal.cell, sim.crystal.mat, sim.crystal.misset = None, v, None


def _misset_initial(sim, ctx):
    _ensure_definition(sim)
    m = sim.crystal.misset
    return torch.zeros(3, dtype=torch.float64, device=sim.detector.device) if m is None else \
        torch.rad2deg(_f64(m, sim))


def _lattice(sim, p, ctx):
    c = sim.crystal
    c.real, c.recip = c.lattice(sim.detector.dtype, sim.detector.device)


def _mosaic_check(sim):
    c = sim.crystal
    if c.mosaic_umats is None or not float(c.mosaic_spread) > 0:
        return "needs mosaic domains (a mosaic spread > 0 and more than one domain)"
    return None


def _mosaic_initial(sim, ctx):
    c = sim.crystal
    spread = float(c.mosaic_spread)
    axes, angles = mosaic_axis_angles(c.mosaic_umats.detach().cpu().double().numpy())
    # each domain keeps its axis; its angle scales with the spread
    ctx["mosaic"] = (_f64(axes, sim), _f64(angles / spread, sim))
    return _f64(math.degrees(spread), sim)


def _mosaic(sim, p, ctx):
    axes, unit = ctx["mosaic"]
    spread = torch.deg2rad(p["mosaic_spread"])
    sim.crystal.mosaic_spread = spread
    sim.crystal.mosaic_umats = _cast(sim, axis_angle_umats(axes, unit * spread))


def _setter(owner, attr, scale=1.0, deg=False):
    """Write value * scale (or degrees -> radians) to sim.<owner>.<attr>."""
    def write(sim, v, ctx):
        x = torch.deg2rad(v) if deg else v * scale if scale != 1.0 else v
        setattr(getattr(sim, owner), attr, _cast(sim, x))
    return write


def _getter(owner, attr, scale=1.0, deg=False):
    def initial(sim, ctx):
        x = _f64(getattr(getattr(sim, owner), attr), sim)
        return torch.rad2deg(x) if deg else x / scale
    return initial


def _grid_check(sim):
    return None if sim.crystal.Fhkl is not None else "needs a structure-factor grid (-hkl or Fdump.bin)"


def _fudge_check(sim):
    return None if sim.crystal.shape != "square" else "only shapes the round, gauss and tophat crystals"


def _kahn_check(sim):
    f = sim.flags
    return "polarization is off (-nopolar)" if f.nopolar and not f.oversample_polar else None


def _n_write(attr):
    def write(sim, v, ctx):
        setattr(sim.crystal, attr, _cast(sim, v))
    return write


# ---- detector ------------------------------------------------------------------------------

def _geometry_value(key, scale):
    """The detector's own value of `key`, or the one its geometry implies when it has none."""
    def initial(sim, ctx):
        own = getattr(sim.detector, key)
        if own is None:
            own = sim.detector.geometry()[key].detach()
        return _f64(own, sim) / scale
    return initial


def _distance_initial(sim, ctx):
    d = sim.detector
    if d.close_distance is None:
        return _f64(d.distance, sim) / 1e-3
    return _f64(d.geometry()["distance"].detach(), sim) / 1e-3


def _close_initial(sim, ctx):
    d = sim.detector
    if d.close_distance is not None:
        return _f64(d.close_distance, sim) / 1e-3
    # what the geometry derives from the distance (before the two-theta swing, as nanoBragg)
    return _f64(torch.abs(d.geometry()["ratio"].detach() * d.t(d.distance)), sim) / 1e-3


def _distance_write(sim, v, ctx):
    sim.detector.close_distance = None
    sim.detector.distance = v * 1e-3


def _pivot_check(pivot, alternative):
    def check(sim):
        if sim.detector.pivot != pivot:
            return f"only moves a detector that pivots about the {pivot} (use {alternative})"
        return None
    return check


def _thickness_check(sim):
    return None if float(sim.detector.thickness) > 0 else "needs a sensor thickness > 0 (-detector_thick)"


def _thickness_initial(sim, ctx):
    d = sim.detector
    ctx["layer_ratio"] = float(d.thickstep) / float(d.thickness)
    return _f64(d.thickness, sim) / 1e-6


def _layers(sim, p, ctx):
    thick = p["thickness"] * 1e-6
    sim.detector.thickness = thick
    sim.detector.thickstep = thick * ctx["layer_ratio"]


def _depth_check(sim):
    if float(sim.detector.mu) <= 0:
        return "needs a finite attenuation depth (-detector_abs)"
    return _thickness_check(sim)


def _depth_write(sim, v, ctx):
    sim.detector.mu = 1.0 / (v * 1e-6)


# ---- several panels (models/panels.py) --------------------------------------------------------

def _panels_check(sim):
    return None if getattr(sim.detector, "n_panels", 1) > 1 else "needs a multi-panel detector (PanelDetector)"


def _panel_initial(attr, deg=False):
    def initial(sim, ctx):
        d = sim.detector
        value = getattr(d, attr)
        if value is None:
            return torch.zeros(d.n_panels, 3, dtype=torch.float64, device=d.device)
        return torch.rad2deg(_f64(value, sim)) if deg else _f64(value, sim) / 1e-3
    return initial


# values that place a one-panel detector as a whole; several panels move with panel_shifts/_rotations
ONE_PANEL = {"distance", "close_distance", "Fbeam", "Sbeam", "Fclose", "Sclose", "rotx", "roty", "rotz", "twotheta",
             "pixel_size", "thickness", "attenuation_depth"}


# ---- beam ----------------------------------------------------------------------------------

def _spectrum_context(sim, ctx):
    if "spectrum" not in ctx:
        b = sim.beam
        wl = b.wavelengths.detach().to(torch.float64)
        lam0 = float(b.lambda0) if b.lambda0 is not None else float(wl.mean())
        disp = float(b.dispersion or 0.0)
        # each wavelength is lambda0 * (1 + offset * dispersion / dispersion_ref)
        ctx["spectrum"] = (lam0, disp, (wl / lam0 - 1.0).to(sim.detector.device))
    return ctx["spectrum"]


def _wavelength_initial(sim, ctx):
    return _f64(_spectrum_context(sim, ctx)[0], sim) / 1e-10


def _dispersion_check(sim):
    b = sim.beam
    if not float(b.dispersion or 0.0) > 0 or b.wavelengths.numel() < 2:
        return "needs a bandpass with several wavelengths (-dispersion and -dispsteps)"
    return None


def _dispersion_initial(sim, ctx):
    return _f64(_spectrum_context(sim, ctx)[1], sim) * 100.0


def _wavelengths(sim, p, ctx):
    lam0, disp, offsets = _spectrum_context(sim, ctx)
    lam = p["wavelength"] * 1e-10 if "wavelength" in p else lam0
    scale = p["dispersion"] / 100.0 / disp if "dispersion" in p else 1.0
    sim.beam.wavelengths = _cast(sim, lam * (1.0 + offsets * scale))


def _directions_write(sim, v, ctx):
    sim.beam.source_dirs = _cast(sim, unitize(v)[0])


def _weights_initial(sim, ctx):
    w = sim.beam.weights
    n = sim.beam.source_dirs.shape[0]
    return torch.ones(n, dtype=torch.float64, device=sim.detector.device) if w is None else _f64(w, sim)


def _fluence_write(sim, v, ctx):
    sim.beam.fluence = sim.flags.fluence = _cast(sim, v)


def _kahn_write(sim, v, ctx):
    sim.beam.kahn = sim.flags.kahn = _cast(sim, v)


# ---- sample --------------------------------------------------------------------------------

def _water_per_volume():
    """I_bg per (fluence x water size^3), written in nanoBragg's order of operations."""
    return lambda fluence, size: Sample(water_size=size).background(fluence)


def _background_context(sim, ctx):
    if "background" not in ctx:
        ctx["background"] = (float(sim.flags.water_background), float(sim.flags.fluence))
    return ctx["background"]


def _water_initial(sim, ctx):
    bg0, fluence0 = _background_context(sim, ctx)
    settings = getattr(sim, "settings", None)
    if settings is not None:
        return _f64(settings.water_size, sim) / 1e-6
    unit = _water_per_volume()(fluence0, 1.0)
    return _f64((bg0 / unit) ** (1.0 / 3.0) if unit > 0 else 0.0, sim) / 1e-6


def _fluence_initial(sim, ctx):
    _background_context(sim, ctx)
    return _f64(sim.flags.fluence, sim)


def _background(sim, p, ctx):
    bg0, fluence0 = _background_context(sim, ctx)
    if "water_size" in p:
        bg = _water_per_volume()(sim.flags.fluence, p["water_size"] * 1e-6)
    elif fluence0 != 0:
        bg = bg0 * (sim.flags.fluence / fluence0)
    else:
        return
    sim.flags.water_background = _cast(sim, bg)


def _noop(sim, v, ctx):
    pass


SPECS = {
    # crystal
    "cell": Spec("Angstrom, degrees", "a, b, c, alpha, beta, gamma", _cell_initial, _cell_write, "lattice"),
    "mat": Spec("1/Angstrom", "rows a*, b*, c* (a MOSFLM matrix / wavelength); replaces cell and misset",
                _mat_initial, _mat_write, "lattice"),
    "misset": Spec("degrees", "misset rotations about x, y, z", _misset_initial,
                   lambda sim, v, ctx: setattr(sim.crystal, "misset", torch.deg2rad(v)), "lattice"),
    "phi0": Spec("degrees", "spindle angle of the first phi step", _getter("crystal", "phi0", deg=True),
                 _setter("crystal", "phi0", deg=True)),
    "phistep": Spec("degrees", "spindle rotation per phi step", _getter("crystal", "phistep", deg=True),
                    _setter("crystal", "phistep", deg=True)),
    "spindle": Spec("unit vector", "spindle axis (normalized before use)", _getter("crystal", "spindle"),
                    lambda sim, v, ctx: setattr(sim.crystal, "spindle", _cast(sim, unitize(v)[0]))),
    "mosaic_spread": Spec("degrees", "mosaic spread (each domain keeps its random axis)", _mosaic_initial, _noop,
                          "mosaic", _mosaic_check),
    "Na": Spec("cells", "crystal size along a (real-valued)", _getter("crystal", "Na"), _n_write("Na")),
    "Nb": Spec("cells", "crystal size along b (real-valued)", _getter("crystal", "Nb"), _n_write("Nb")),
    "Nc": Spec("cells", "crystal size along c (real-valued)", _getter("crystal", "Nc"), _n_write("Nc")),
    "fudge": Spec("", "shape-transform fudge factor (round, gauss, tophat shapes)", _getter("crystal", "fudge"),
                  _n_write("fudge"), check=_fudge_check),
    "Fhkl": Spec("", "structure-factor grid, one value per reflection (h - h_min, k - k_min, l - l_min)",
                 _getter("crystal", "Fhkl"), _n_write("Fhkl"), check=_grid_check),
    "default_F": Spec("", "structure factor outside the grid (cells filled at construction keep their value)",
                      _getter("crystal", "default_F"),
                      _n_write("default_F")),
    "atom_xyz": Spec("Angstrom", "(atoms, 3) Cartesian coordinates of the atomic model (-model)", atom_initial("xyz"),
                     atom_write("xyz"), "structure", model_check),
    "atom_B": Spec("Angstrom^2", "(atoms,) isotropic B factors of the atomic model", atom_initial("B"),
                   atom_write("B"), "structure", model_check),
    "atom_occ": Spec("", "(atoms,) occupancies of the atomic model", atom_initial("occ"), atom_write("occ"),
                     "structure", model_check),
    # detector
    "distance": Spec("mm", "sample to detector distance along the beam", _distance_initial, _distance_write),
    "close_distance": Spec("mm", "sample to detector plane distance", _close_initial,
                           _setter("detector", "close_distance", 1e-3)),
    "Fbeam": Spec("mm", "direct-beam spot along the fast axis", _geometry_value("Fbeam", 1e-3),
                  _setter("detector", "Fbeam", 1e-3), check=_pivot_check("beam", "Fclose")),
    "Sbeam": Spec("mm", "direct-beam spot along the slow axis", _geometry_value("Sbeam", 1e-3),
                  _setter("detector", "Sbeam", 1e-3), check=_pivot_check("beam", "Sclose")),
    "Fclose": Spec("mm", "near point along the fast axis", _geometry_value("Fclose", 1e-3),
                   _setter("detector", "Fclose", 1e-3), check=_pivot_check("sample", "Fbeam")),
    "Sclose": Spec("mm", "near point along the slow axis", _geometry_value("Sclose", 1e-3),
                   _setter("detector", "Sclose", 1e-3), check=_pivot_check("sample", "Sbeam")),
    "rotx": Spec("degrees", "detector rotation about x", _getter("detector", "rotx", deg=True),
                 _setter("detector", "rotx", deg=True)),
    "roty": Spec("degrees", "detector rotation about y", _getter("detector", "roty", deg=True),
                 _setter("detector", "roty", deg=True)),
    "rotz": Spec("degrees", "detector rotation about z", _getter("detector", "rotz", deg=True),
                 _setter("detector", "rotz", deg=True)),
    "twotheta": Spec("degrees", "detector two-theta swing", _getter("detector", "twotheta", deg=True),
                     _setter("detector", "twotheta", deg=True)),
    "panel_shifts": Spec("mm", "(panels, 3) offset of each panel along the lab axes", _panel_initial("shifts"),
                         _setter("detector", "shifts", 1e-3), check=_panels_check),
    "panel_rotations": Spec("degrees", "(panels, 3) turn of each panel about its own fast, slow and normal axes "
                            "through its centre", _panel_initial("rotations", deg=True),
                            _setter("detector", "rotations", deg=True), check=_panels_check),
    "pixel_size": Spec("mm", "pixel size", _getter("detector", "pixel_size", 1e-3),
                       _setter("detector", "pixel_size", 1e-3)),
    "thickness": Spec("um", "sensor thickness (layer spacing scales with it)", _thickness_initial, _noop, "layers",
                      _thickness_check),
    "attenuation_depth": Spec("um", "sensor attenuation depth (1/mu)",
                              lambda sim, ctx: 1e6 / _f64(sim.detector.mu, sim), _depth_write, check=_depth_check),
    # beam
    "wavelength": Spec("Angstrom", "central wavelength", _wavelength_initial, _noop, "wavelengths"),
    "dispersion": Spec("percent", "full bandpass", _dispersion_initial, _noop, "wavelengths", _dispersion_check),
    "source_directions": Spec("unit vectors", "(sources, 3) sample-to-source directions (normalized before use)",
                              _getter("beam", "source_dirs"), _directions_write),
    "source_weights": Spec("", "(sources,) relative source weights", _weights_initial,
                           _setter("beam", "weights")),
    "fluence": Spec("photons/m^2", "incident fluence (water background scales with it)", _fluence_initial,
                    _fluence_write, "background"),
    "kahn": Spec("", "Kahn polarization factor", lambda sim, ctx: _f64(sim.flags.kahn, sim), _kahn_write,
                 check=_kahn_check),
    # sample
    "water_size": Spec("um", "thickness of the water illuminated with the crystal", _water_initial, _noop,
                       "background"),
}

# derived quantities, recomputed after all writes (background after the fluence write)
DERIVED = {"structure": refresh_grid, "lattice": _lattice, "mosaic": _mosaic, "wavelengths": _wavelengths,
           "layers": _layers, "background": _background}

EXCLUSIVE = [("mat", "cell"), ("mat", "misset"), ("distance", "close_distance"), ("Fhkl", "atom_xyz"),
             ("Fhkl", "atom_B"), ("Fhkl", "atom_occ")]


class Parameters(dict):
    """Name -> tensor in the unit of SPECS[name]; `apply(sim)` writes them into the models (called
    before each render).

    Values that are torch.nn.Parameter are registered on the Simulation (a torch.nn.Module) under
    the same name, so `sim.named_parameters()` holds exactly the parameters made differentiable;
    a value replaced by a tensor computed from the caller's own variables is no longer one."""

    def __init__(self, sim=None):
        super().__init__()
        self.context = {}
        self.sim = sim

    def __setitem__(self, name, value):
        super().__setitem__(name, value)
        if self.sim is None:
            return
        if isinstance(value, torch.nn.Parameter):
            self.sim.register_parameter(name, value)
        elif name in dict(self.sim.named_parameters(recurse=False)):
            delattr(self.sim, name)

    def apply(self, sim):
        groups = []
        for name, value in self.items():
            spec = SPECS[name]
            spec.write(sim, value, self.context)
            if spec.group and spec.group not in groups:
                groups.append(spec.group)
        for group in DERIVED:
            if group in groups:
                DERIVED[group](sim, self, self.context)


def applicable(sim, name):
    """None when `name` can be made differentiable for `sim`, else the reason it cannot."""
    if name not in SPECS:
        return f"unknown parameter {name!r}; known: {', '.join(SPECS)}"
    if name in ONE_PANEL and getattr(sim.detector, "n_panels", 1) > 1:
        return "places a one-panel detector (several panels: panel_shifts, panel_rotations)"
    check = SPECS[name].check
    return check(sim) if check else None


def available_parameters(sim):
    """Names of the parameters that apply to this simulation (mutually exclusive ones listed once)."""
    names = [n for n in SPECS if applicable(sim, n) is None]
    return [n for n in names if n not in ("mat", "close_distance")]


def parameters(sim, *names, requires_grad=True):
    """Make the named parameters differentiable: returns the simulation's Parameters (name ->
    float64 torch.nn.Parameter in the units of SPECS[name].unit, starting at the current value),
    each also registered on `sim` (`sim.named_parameters()`, `sim.state_dict()`)."""
    params = sim.parametrization if sim.parametrization is not None else Parameters(sim)
    for name in names:
        why = applicable(sim, name)
        if why:
            raise ValueError(f"parameter {name!r}: {why}")
        for a, b in EXCLUSIVE:
            other = b if name == a else a if name == b else None
            if other in params:
                raise ValueError(f"parameters {name!r} and {other!r} cannot both be differentiable")
        if name in params:
            continue
        value = SPECS[name].initial(sim, params.context).detach().to(torch.float64).clone()
        params[name] = torch.nn.Parameter(value, requires_grad=requires_grad)
    sim.parametrization = params
    return params


def release(sim):
    """Stop differentiating: the models keep the parameters' current values as plain tensors."""
    if sim.parametrization is not None:
        with torch.no_grad():
            sim.parametrization.apply(sim)
    for model in (sim.detector, sim.crystal, sim.beam, sim.flags):
        for f in fields(model):
            value = getattr(model, f.name)
            if torch.is_tensor(value) and value.requires_grad:
                setattr(model, f.name, value.detach())
    for name in list(dict(sim.named_parameters(recurse=False))):
        delattr(sim, name)
    sim.parametrization = None
