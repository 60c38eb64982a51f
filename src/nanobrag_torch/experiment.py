"""-expt / -write_expt: a DIALS experiment list as nanoBragg settings, and settings as one.

Reading: `with_experiment` puts the file's geometry into the settings before the command line
is applied (like an -img header), so any option given as well overrides it. The detector frame
comes in as a CUSTOM convention with the panel corner kept as pix0 (pivot "pix0"); the beam
centre and distance that this frame implies are filled in too, so that an overriding -distance or
-Xbeam/-Ybeam (which pivot about the beam spot, as nanoBragg does) moves the panel from there.
Writing: `experiment_from_settings` describes what a run simulated (after set-up).
"""
from dataclasses import replace

from .io.expt import Experiment, Panel
from .settings import RTD, Settings


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _frame_values(panel, beam):
    """Distance along the beam and beam spot (Fbeam, Sbeam), near point and close distance."""
    o = panel.normal
    close = _dot(panel.origin, o)
    ratio = _dot(beam, o)
    distance = close / ratio if ratio != 0 else close
    to_beam = [distance * b - p for b, p in zip(beam, panel.origin)]
    return {"distance": distance, "close": close, "Fbeam": _dot(panel.fast, to_beam),
            "Sbeam": _dot(panel.slow, to_beam), "Fclose": -_dot(panel.origin, panel.fast),
            "Sclose": -_dot(panel.origin, panel.slow)}


def with_experiment(settings: Settings, exp: Experiment) -> Settings:
    """The settings with an Experiment's geometry (before the options are parsed), as a new object."""
    c = dict(expt=exp)
    if exp.beam is not None:
        c.update(beam=tuple(exp.beam), lambda0=exp.wavelength, convention="CUSTOM")
        if exp.kahn is not None:
            c["polarization"] = exp.kahn
        if exp.polar_vector is not None:
            c["polar_vector"] = tuple(exp.polar_vector)
    if exp.panels:
        c.update(_panel_settings(exp.panels[0], c.get("beam", settings.beam)), expt_panels=tuple(exp.panels))
    if exp.real is not None:
        c["expt_real"] = tuple(tuple(r) for r in exp.real)
    if exp.spindle is not None:
        c.update(spindle=tuple(exp.spindle), convention="CUSTOM")
    if exp.phi0 is not None:
        c.update(phi0=exp.phi0, osc=exp.osc)
    return replace(settings, **c)


def _panel_settings(p, beam):
    """The settings of an Experiment's first panel: a CUSTOM frame with its corner as pix0."""
    f = _frame_values(p, beam)
    thick = p.thickness > 0 and p.mu > 0
    return dict(convention="CUSTOM", fdet=tuple(p.fast), sdet=tuple(p.slow), odet=tuple(p.normal),
                pix0=tuple(p.origin), pivot="pix0", pixel_size=p.pixel_size, fpixels=p.fpixels, spixels=p.spixels,
                detsize_f=p.pixel_size * p.fpixels, detsize_s=p.pixel_size * p.spixels,
                detector_thick=p.thickness if thick else 0.0, detector_mu=p.mu if thick else -1.0,
                distance=f["distance"], Xbeam=f["Fbeam"], Ybeam=f["Sbeam"], Xclose=f["Fclose"], Yclose=f["Sclose"])


def _space_group(v):
    """The -expt crystal's Hall symbol while its vectors are the ones simulated, else P 1."""
    own = v.expt is not None and v.expt_real is not None and not v.user_cell and v.matfile is None
    return v.expt.space_group if own and v.expt.space_group else " P 1"


def panel_from_geometry(geo, v, index=0, name=""):
    """A Panel from a detector's rotated frame (geometry() values as float lists)."""
    return Panel(origin=list(geo["pix0"]), fast=list(geo["fdet"]), slow=list(geo["sdet"]), pixel_size=v.pixel_size,
                 fpixels=v.fpixels, spixels=v.spixels, thickness=v.detector_thick,
                 mu=v.detector_mu if v.detector_thick > 0 else 0.0, name=name or f"panel{index:02d}")


def experiment_from_settings(v, panels=None, phi0=None):
    """What a run simulated, after set-up: the beam, every panel, the crystal at phi = 0 and,
    for a rotation (or a phi offset), the spindle and phi range as a one-image scan."""
    panels = panels if panels is not None else [panel_from_geometry(v.geo, v)]
    phi0 = v.phi0 if phi0 is None else phi0
    rotation = v.osc > 0 or phi0 != 0
    return Experiment(beam=list(v.beam), wavelength=v.lambda0, kahn=v.polarization,
                      polar_vector=list(v.polar_vector), panels=panels,
                      real=[[float(x) for x in row] for row in v.real], space_group=_space_group(v),
                      spindle=list(v.spindle) if rotation else None, phi0=phi0 if rotation else None,
                      osc=v.osc if rotation else None, images=1)


def panels_from_detector(det, v):
    """Panels of a multi-panel detector (models/panels.py) as Experiment panels."""
    geo = det.geometry()
    out = []
    for i in range(det.n_panels):
        def pick(key, i=i):
            return [float(c) for c in geo[key][i].detach().cpu()]

        thick = float(det.thickness[i]) if det.thickness is not None else 0.0
        out.append(Panel(origin=pick("pix0"), fast=pick("fdet"), slow=pick("sdet"),
                         pixel_size=float(geo["panel_pixel_size"][i]), fpixels=det.fpixels, spixels=det.panel_spixels,
                         thickness=thick, mu=float(det.mu[i]) if thick > 0 else 0.0, name=det.names[i]))
    return out


def write_run_expt(v, sim, say):
    """-write_expt: the run's geometry as a DIALS experiment list."""
    from .io.expt import write_expt

    det = sim.detector
    panels = panels_from_detector(det, v) if getattr(det, "n_panels", 1) > 1 else None
    say(f"writing {v.write_expt} (DIALS experiment list)")
    write_expt(v.write_expt, experiment_from_settings(v, panels))


def multi_panel_detector(v, dtype, device):
    """The -expt file's panels as one PanelDetector (see models/panels.py)."""
    from .errors import UsageError
    from .models.panels import PanelDetector

    moved = v.pivot != "pix0" or any(x != 0 for x in (v.rotx, v.roty, v.rotz, v.twotheta))
    if moved:
        raise UsageError(f"{v.exptfile}: {len(v.expt_panels)} panels are placed by the file; options that move "
                         "the detector (-distance, -Xbeam/-Ybeam, conventions, -pivot, rotations, -twotheta) apply to "
                         "one panel only")
    if v.curved or v.printout or v.trace_pixel is not None:
        raise UsageError("-curved_det, -printout and -trace_pixel take a one-panel detector")
    try:
        return PanelDetector.from_panels(v.expt_panels, v.beam, thicksteps=v.detector_thicksteps,
                                         oversample=v.oversample, point_pixel=v.point_pixel, dtype=dtype,
                                         device=device)
    except ValueError as exc:
        raise UsageError(f"{v.exptfile}: {exc}") from None


def rendered_panels(v):
    """(panels x spixels, fpixels) bool: the -roi box of every panel (and the -mask)."""
    import numpy as np

    box = np.zeros((v.spixels, v.fpixels), dtype=bool)
    x0, x1, y0, y1 = v.roi
    box[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
    keep = np.tile(box, (getattr(v, "panel_count", 1), 1))
    if v.mask_image is not None:
        keep &= v.mask_image != 0
    return keep


def panel_header_fields(v, det):
    """Each panel's SMV header: its own distance, beam centre, near point and DIALS origin."""
    from .outputs import header_fields

    geo = det.geometry()
    out = []
    for i in range(det.n_panels):
        g = {k: geo[k][i].detach().cpu().tolist() for k in ("pix0", "distance", "close_distance", "Fbeam", "Sbeam",
                                                          "Fclose", "Sclose", "panel_pixel_size")}
        ps = g["panel_pixel_size"]
        out.append(header_fields(replace(
            v, pixel_size=ps, distance=g["distance"], close_distance=g["close_distance"], Fbeam=g["Fbeam"],
            Sbeam=g["Sbeam"], Xbeam=g["Fbeam"], Ybeam=g["Sbeam"], ORGX=g["Fclose"] / ps + 0.5,
            ORGY=g["Sclose"] / ps + 0.5, detsize_s=ps * v.spixels,
            dials_origin=tuple(1000.0 * c for c in (g["pix0"][2], g["pix0"][1], -g["pix0"][0])))))
    return out


def dataset_experiments(base, plan):
    """The experiments of a dataset (datasets.plan.FramePlan over the base arguments): a rotation
    series is one experiment whose scan has one image per frame; serial stills are one experiment
    per still, each with its own crystal orientation (and no goniometer or scan)."""
    import tempfile

    from .cli import load_settings
    from .setup import build, crystal_vectors

    def quiet(text):
        pass

    with tempfile.TemporaryDirectory(prefix="nanobragg-expt-") as folder:
        v = load_settings(list(base) + plan.frame_args(plan.frame(0), folder), quiet)
        sim = build(replace(v, dumpfile=folder + "/Fdump.bin"))
        v = sim.settings
    panels = panels_from_detector(sim.detector, v) if getattr(sim.detector, "n_panels", 1) > 1 else None
    if plan.kind == "rotation":
        exp = experiment_from_settings(v, panels)
        exp.spindle, exp.phi0, exp.osc, exp.images = list(v.spindle), plan.phi_deg / RTD, plan.osc_deg / RTD, plan.count
        return [exp]
    out = []
    for frame in plan:
        still = replace(v, misset=(1.0, *(a / RTD for a in frame.misset_deg)))
        still = replace(still, **crystal_vectors(still, quiet))  # this still's orientation
        exp = experiment_from_settings(still, panels)
        exp.spindle = exp.phi0 = exp.osc = None
        out.append(exp)
    return out


def write_dataset_expt(path, base, plan, say):
    from .io.expt import write_expt

    experiments = dataset_experiments(base, plan)
    say(f"writing {path} (DIALS experiment list, {len(experiments)} experiment(s))")
    write_expt(path, experiments)
