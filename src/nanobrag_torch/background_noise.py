"""nanoBragg's -background and detector-model options: nonBragg's amorphous background added to
the Bragg image and noisify's detector response as the noise image, in one run.

A run with these options gives the float image float32(bragg) + float32(background) and the
noise image noisify makes of that sum with the same -seed (and -calib_seed), so it equals the
three-program pipeline nanoBragg + nonBragg -> noisify.
"""
import dataclasses

import numpy as np
import torch

from . import amorphous, detector_model
from .cnum import atof, atoi
from .errors import UsageError
from .factor_cache import frozen_values, same_values
from .io.stol import read_stol
from .scoped import scoped
from .settings import Settings, roi_ranges

BACKGROUND_OPTIONS = ("background", "background_thick", "background_density", "background_MW")
DETECTOR_OPTIONS = ("psf", "psf_fwhm", "psf_radius", "readout_noise", "flicker", "calibration", "calib_seed",
                    "gain")


def with_options(v: Settings, argv: list[str]) -> Settings:
    """The settings `v` with the options read into background (dict or None), detector_model
    (or None) and calib_seed (a new object: settings are frozen)."""
    seen = {}
    for i, tok in enumerate(argv[:-1]):
        if tok.startswith("-") and tok[1:] in BACKGROUND_OPTIONS + DETECTOR_OPTIONS:
            seen[tok[1:]] = argv[i + 1]
    background = None
    if "background" in seen:
        background = dict(stol=seen["background"], thick=atof(seen.get("background_thick", "0.1")) / 1000.0,
                          density=atof(seen.get("background_density", "1")) * 1e6,
                          MW=atof(seen.get("background_MW", "18")))
        if not (background["thick"] > 0 and background["density"] > 0 and background["MW"] > 0):
            raise UsageError("options -background_thick, -background_density, -background_MW: must be positive")
    elif any(k in seen for k in BACKGROUND_OPTIONS):
        raise UsageError("option -background FILE.stol is needed by -background_thick/-density/-MW")
    model, calib_seed = None, -atoi(seen["calib_seed"]) if "calib_seed" in seen else 123456789
    if any(k in seen for k in DETECTOR_OPTIONS):
        psf = seen.get("psf")
        if psf is not None and psf not in ("gauss", "fiber"):
            raise UsageError(f"option -psf: expected gauss or fiber, got '{psf}'")
        fwhm_m = atof(seen.get("psf_fwhm", "46")) * 1e-6
        model = detector_model.DetectorModel(
            gain=atof(seen.get("gain", "1")), adc_offset=v.adc_offset,
            readout_noise=atof(seen.get("readout_noise", "0")),
            flicker=atof(seen.get("flicker", "0")), calibration=atof(seen.get("calibration", "0.03")),
            psf=psf if fwhm_m > 0 else None, psf_fwhm_px=detector_model.fwhm_pixels(fwhm_m, v.pixel_size),
            psf_radius=atoi(seen.get("psf_radius", "0")))
    return dataclasses.replace(v, background=background, detector_model=model, calib_seed=calib_seed)


def background_image(v, sim, say=None):
    """The amorphous background (float64 tensor, photons/pixel) seen by the run's detector and
    beam: the same sub-pixels and sources, no sensor absorption (nonBragg has none); zero where
    the run renders nothing (outside -roi, masked)."""
    bg = v.background
    table = amorphous.StolTable.from_rows(read_stol(bg["stol"]), 1e10, sim.detector.dtype, sim.detector.device)
    side = min(1e-4, v.beamsize) if v.beamsize >= 0 else 1e-4  # nonBragg's default block, clipped by the beam
    molecules, _ = amorphous.molecule_count(bg["thick"], side, side, bg["density"], bg["MW"])
    if say:
        say("  background: %s, %g m thick, %g g/cm^3, %g g/mol (%g molecules)"
            % (bg["stol"], bg["thick"], bg["density"] / 1e6, bg["MW"], molecules))
    detector = dataclasses.replace(sim.detector, thickness=0.0, thicksteps=1, thickstep=0.0, mu=0.0, _cache=None)
    beam = sim.beam
    n = beam.wavelengths.numel()
    weights = torch.ones(n, dtype=torch.float64) if beam.weights is None else \
        beam.weights.detach().to("cpu", torch.float64) * n / beam.weights.detach().sum().cpu()
    image, _ = amorphous.render_background(
        detector, beam.source_dirs, weights, beam.wavelengths, amorphous.AmorphousSample(table, molecules),
        v.fluence, kahn=v.polarization, nopolar=v.nopolar, polar_axis=v.polar_vector, roi=roi_ranges(v.roi))
    if getattr(v, "mask_image", None) is not None:
        image = image * torch.as_tensor(v.mask_image != 0, device=image.device)
    return image


def background_key(v, sim) -> list:
    """Everything background_image reads (detector, beam, sample layer, polarization, ROI, mask):
    frames of a series with equal keys share one background image."""
    d = sim.detector
    fields = [getattr(d, f.name) for f in dataclasses.fields(d) if f.name != "_cache"]
    beam = [sim.beam.source_dirs, sim.beam.weights, sim.beam.wavelengths]
    run = [v.background, v.beamsize, v.fluence, v.polarization, v.nopolar, tuple(v.polar_vector), tuple(v.roi),
           getattr(v, "mask_image", None)]
    return [frozen_values(x) for x in fields + beam + run]


def same_background(a, b) -> bool:
    return a is not None and b is not None and same_values(a, b)


def add_background(v, sim, image32, say=None):
    """float32(bragg) + float32(background), as summing the two programs' float files."""
    if getattr(v, "background", None) is None:
        return image32
    with torch.no_grad():
        bg = background_image(v, sim, say).to("cpu", torch.float32).numpy()
    return (image32.astype(np.float32) + bg).astype(np.float32)


def noise_function(v, spare_thread=False):
    """None (nanoBragg's Poisson noise), or image32 -> (noise image, photons, overloads) by
    noisify's model with the run's -seed and -calib_seed.  spare_thread: the caller is itself
    the spare thread (datasets draw a frame's noise while the next renders): one thread, no
    worker of its own, so as not to crowd the render."""
    model = getattr(v, "detector_model", None)
    if model is None:
        return None

    def noise(image32):  # only the noise image: no noiseless one to make
        import numba

        photons = detector_model.photon_values(image32, detector_model.photon_scale()).numpy()
        with scoped(numba.get_num_threads, numba.set_num_threads, 1 if spare_thread else None):
            counts, noisy, overloads = detector_model.noisy_response(photons, model, v.seed, v.calib_seed,
                                                                     worker=not spare_thread)
        return noisy, float(counts.sum()), overloads
    return noise


def describe(v, say):
    model = getattr(v, "detector_model", None)
    if model is not None:
        psf = "no PSF" if not model.has_psf else "%s PSF fwhm %g pixels, radius %s" % (
            model.psf, model.psf_fwhm_px, model.psf_radius or "automatic")
        say("  detector model: gain %g ADU/photon, read-out noise %g ADU, flicker %g, calibration %g (seed %d), %s"
            % (model.gain, model.readout_noise, model.flicker, model.calibration, v.calib_seed, psf))
