"""Build the simulation models from resolved nanoBragg settings, printing C's set-up report."""
import logging
import math
import os
from dataclasses import replace

import numpy as np
import torch

from . import compat, rng, sfsource
from .engine import Flags
from .errors import InputFileError, NanoBraggError, UsageError
from .geometry.vectors import cross
from .io import hkl as hkl_io
from .io.matrix import read_mosflm_matrix
from .io.sources import fill_source_defaults
from .io.stol import read_stol
from .lattice import cell_parameters, lattice_vectors
from .models import Beam, Crystal, Detector, Sample
from .models.sample import AVOGADRO
from .resolve import Resolved, placed, sampled
from .settings import RTD, Settings, roi_ranges
from .simulator import Simulation, recommended_oversample
from .sources import divergence_grid, source_directions

logger = logging.getLogger(__package__)


def pick_device(name):
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("option -device: CUDA is not available on this machine")
    return name


def check_physical(v):
    """Refuse physically impossible values before any work (one clear message each)."""
    checks = [
        (v.lambda0 > 0 and math.isfinite(v.lambda0), "-lambda/-energy: wavelength must be positive"),
        (v.pixel_size > 0, "-pixel: pixel size must be positive"),
        (v.detsize_f > 0 and v.detsize_s > 0, "-detsize/-detpixels: detector size must be positive"),
        (v.Na >= 0 and v.Nb >= 0 and v.Nc >= 0, "-N: cell counts cannot be negative"),
        (v.fluence >= 0, "-fluence: must not be negative"),
        (v.phisteps >= -1 and v.mosaic_domains >= -1, "-phisteps/-mosaic_domains: must not be negative"),
        (v.dispsteps >= -1 and v.hdivsteps >= -1 and v.vdivsteps >= -1, "step counts must not be negative"),
    ]
    if v.user_cell:
        a, b, c = v.cell[:3]
        checks.append((a > 0 and b >= 0 and c >= 0, "-cell: cell lengths must be positive"))
        al, be, ga = (x if x > 0 else math.pi / 2 for x in v.cell[3:])
        ok = all(0 < x < math.pi for x in (al, be, ga)) and al + be + ga < 2 * math.pi \
            and al < be + ga and be < al + ga and ga < al + be
        checks.append((ok, "-cell: these angles do not make a unit cell"))
    checks.append((v.distance != 0 and v.close_distance != 0, "-distance: the detector cannot pass through the sample"))
    # an -img/-mask header can bring in values the option parser would have refused
    for name, x in (("-distance", v.distance), ("-close_distance", v.close_distance), ("-Xbeam", v.Xbeam),
                    ("-Ybeam", v.Ybeam), ("-ORGX", v.ORGX), ("-ORGY", v.ORGY), ("-phi", v.phi0), ("-osc", v.osc)):
        checks.append((not math.isinf(x) and (name != "-distance" or x == x), f"{name}: value must be finite"))
    # a zero -odet_vector is fine: nanoBragg then makes it from fdet x sdet
    for name, vec in (("-beam_vector", "beam"), ("-fdet_vector", "fdet"), ("-sdet_vector", "sdet"),
                      ("-polar_vector", "polar_vector"), ("-spindle_axis", "spindle"),
                      ("-twotheta_axis", "twotheta_axis")):
        checks.append((any(c != 0 for c in getattr(v, vec)), f"{name}: zero-length vector"))
    for ok, msg in checks:
        if not ok:
            raise UsageError(msg)


def _memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def check_detector_size(v):
    if v.fpixels <= 0 or v.spixels <= 0:
        raise UsageError("-detpixels/-detsize: the detector must have at least one pixel")
    need = v.fpixels * v.spixels * v.panel_count * 16  # float64 image, float32 copy, integer images
    avail = _memory_bytes()
    if need > avail // 2:
        given = "/".join(v.size_options) or "-detpixels/-detsize/-pixel"
        raise UsageError("%s: detector of %dx%d pixels would need %.1f GB for its images; this machine has %.1f GB"
                         % (given, v.fpixels, v.spixels, need / 1e9, avail / 1e9))


BYTES_PER_TERM = 256  # measured engine peak per (pixel x sampling term), rounded up


def check_work(v, sources):
    """The engine renders at least one whole pixel at a time: refuse, before allocating anything,
    sampling so fine that the terms of one pixel cannot be held in memory."""
    counts = [max(int(c), 1) for c in (sources, v.mosaic_domains, v.phisteps, v.oversample, v.detector_thicksteps)]
    terms = counts[0] * counts[1] * counts[2] * counts[3] ** 2 * counts[4]
    need, avail = terms * BYTES_PER_TERM, _memory_bytes()
    if need > avail // 2:
        raise UsageError("%d sampling terms per pixel (%d sources x %d mosaic domains x %d phi steps x %d^2 "
                         "sub-pixels x %d layers) would need %.1f GB; this machine has %.1f GB"
                         % (terms, *counts, need / 1e9, avail / 1e9))


def check_roi_and_mask(v):
    """An empty -roi would render nothing (nanoBragg.c writes a blank image); a ROI reaching past
    the edge is clipped, as in nanoBragg.c. A -mask must match the detector."""
    x0, x1, y0, y1 = v.roi
    if x0 > x1 or y0 > y1:
        raise UsageError("-roi %d %d %d %d: xmin > xmax or ymin > ymax (the region is empty)" % tuple(v.roi))
    if x0 >= v.fpixels or y0 >= v.spixels:
        raise UsageError("-roi %d %d %d %d: the region lies outside the %dx%d-pixel detector"
                         % (*v.roi, v.fpixels, v.spixels))
    mask = v.mask_image
    if mask is not None and mask.shape != (v.spixels * v.panel_count, v.fpixels):
        raise InputFileError(f"{v.maskfile}: mask is {mask.shape[1]}x{mask.shape[0]} pixels "
                             f"but the detector is {v.fpixels}x{v.spixels}")


def build(settings: Settings, write_fdump: bool = True, structure_factors=None) -> Simulation:
    """Resolve settings and construct the Simulation: the resolved settings (a frozen
    `resolve.Resolved`) are kept as `sim.settings`, nanoBragg's set-up report (its lines, in
    order, for the command line to print) as `sim.report`.

    write_fdump: write the structure factors read from -hkl to the dump file (the command line
    does; the Python API only when asked). structure_factors: a grid already read (a dataset
    reads them once for all its frames). A NanoBraggError raised on the way carries the report
    lines made until then as `.report` (nanoBragg.c has printed them when it stops)."""
    report = []
    try:
        sim = _set_up(settings, report.append, write_fdump, structure_factors)
    except NanoBraggError as exc:
        exc.report = tuple(report)
        raise
    sim.report = tuple(report)
    return sim


def _set_up(settings, say, write_fdump, structure_factors):
    """nanoBragg's set-up in C's order; each step returns the values it decides, and the frozen
    Resolved settings are replaced (never changed) as they accumulate."""
    v, fdump_present, structure = resolve_inputs(Resolved.of(settings), say)
    sources, found = read_inputs(v)
    v = replace(v, **found)
    device = pick_device(v.device)  # an unusable device must fail before Fdump.bin is written
    det, placed = detector_report(v, say)
    v = replace(v, **placed)
    v = replace(v, interpolate=choose_interpolation(v, say))
    v = replace(v, **crystal_vectors(v, say))
    sfsource.check_cell(structure, cell_parameters(torch.tensor(v.real), torch.tensor(v.recip), v.volume)[0])
    v = replace(v, **crystal_size(v, say))
    grid, model_link = structure_factors, None
    if grid is None:
        grid, model_link = sfsource.grid(structure, v, say, sources[:3]) if structure else \
            (load_structure_factors(v, say, fdump_present), None)
        if v.hklfile is not None and structure is None and write_fdump:
            write_dump(v, grid, say)
    v = replace(v, structure_factors=grid, model_link=model_link,
                interpolate=0 if grid is None or grid.count == 0 else v.interpolate)
    umats, counts = report_sampling(v, say, sources)
    v = replace(v, **counts)
    sim = make_simulation(v, det, grid, sources, umats, device, v.model_link)
    report_summary(v, say, grid)
    sim.settings = v
    return sim


def resolve_inputs(v, say):
    """Checks, defaults and step counts before any file is read: (the settings with them, whether
    an Fdump.bin is reused, the -mtz/-cif_sf/-model structure or None)."""
    check_physical(v)
    # one shuffle table per run, shared by every seed in C's order (misset, mosaic, noise)
    v = replace(placed(replace(v, rng_table=rng.new_table()), say),
                panel_count=len(v.expt_panels) if v.expt_panels else 1)
    check_detector_size(v)
    check_roi_and_mask(v)
    say("nanoBragg nanocrystal diffraction simulator - James Holton and Ken Frankel 5-17-17")
    structure = sfsource.load(v)  # -mtz, -cif_sf or -model; may supply the cell
    cell = sfsource.file_cell(v, structure)
    if cell is not None:
        v = replace(v, user_cell=True, cell=cell)
    fdump_present = v.hklfile is None and structure is None and os.path.exists(v.dumpfile)
    if v.hklfile is None and structure is None and not fdump_present and v.default_F == 0.0:
        raise UsageError("no structure factors: give -hkl, -mtz, -cif_sf or -model FILE, or -default_F F "
                         f"(no {v.dumpfile} to reuse)")
    if v.matfile is None and v.cell[0] == 0.0 and v.expt_real is None:
        raise UsageError("no crystal: give -cell a b c alpha beta gamma, -mat FILE or an -expt file with a crystal")
    if v.nthreads > 0:
        torch.set_num_threads(v.nthreads)
    v = sampled(v, say)
    check_work(v, 1 if v.sourcefile else v.hdivsteps * v.vdivsteps * v.dispsteps)
    return v, fdump_present, structure


def read_inputs(v):
    """Read the remaining input files now: a bad one must fail before Fdump.bin is written.

    Returns ((positions, weights, wavelengths, report lines) of the sources, the settings they
    decide: divsteps, nsources, source_weights_used)."""
    source_report = []
    *sources, found = make_sources(v, source_report.append)
    if v.stolfile is not None:
        read_stol(v.stolfile)
    return (*sources, source_report), found


def detector_report(v, say):
    """The float64 CPU detector of the settings, reported, and the settings of its derived geometry."""
    say(f"{v.convention.lower()} convention selected.")
    if v.pix0_option and v.compat == "fixed":
        v = replace(v, pivot="pix0")  # nanoBragg.c recomputes pix0 from the pivot; -compat fixed takes it
    det = Detector(fpixels=v.fpixels, spixels=v.spixels, pixel_size=v.pixel_size, fdet=v.fdet, sdet=v.sdet,
                   odet=v.odet, beam=v.beam, twotheta_axis=v.twotheta_axis, pivot=v.pivot, distance=v.distance,
                   close_distance=None if math.isnan(v.close_distance) else v.close_distance,
                   Fbeam=v.Fbeam, Sbeam=v.Sbeam, Fclose=v.Fclose, Sclose=v.Sclose, rotx=v.rotx, roty=v.roty,
                   rotz=v.rotz, twotheta=v.twotheta, pix0=v.pix0 if v.pivot == "pix0" else None,
                   curved=v.curved, point_pixel=v.point_pixel,
                   thickness=v.detector_thick, thicksteps=v.detector_thicksteps, thickstep=v.detector_thickstep,
                   mu=v.detector_mu, dtype=torch.float64, device="cpu")
    if v.pivot == "sample":
        say("pivoting detector around sample")
    if v.pix0_option and v.pivot != "pix0":
        logger.info("-pix0_vector has no effect, as in nanoBragg.c (the pivot recomputes pix0 from the beam centre "
                    "and distance); -compat fixed honours it, or give the panel as -fdet_vector/-sdet_vector/"
                    "-beam_vector with -Xbeam/-Ybeam/-distance or in an -expt file")
    geo = det.geometry()
    if v.pivot == "beam":
        say("pivoting detector around direct beam spot")
    g = {k: (float(x) if x.dim() == 0 else [float(c) for c in x]) for k, x in geo.items()}
    pix0 = g["pix0"]
    xb = [sum(b * f for b, f in zip(v.beam, g[k])) for k in ("fdet", "sdet", "odet")]
    say("XDS incident beam: %g %g %g" % tuple(xb))
    return det, dict(pivot=v.pivot, Fbeam=g["Fbeam"], Sbeam=g["Sbeam"], Fclose=g["Fclose"], Sclose=g["Sclose"],
                     distance=g["distance"], close_distance=g["close_distance"],
                     ORGX=g["Fclose"] / v.pixel_size + 0.5, ORGY=g["Sclose"] / v.pixel_size + 0.5,
                     dials_origin=(1000.0 * pix0[2], 1000.0 * pix0[1], 1000.0 * -pix0[0]), geo=g)


def choose_interpolation(v, say) -> int:
    """-interpolate as given, or nanoBragg's choice from the cell counts (1: tricubic)."""
    if v.interpolate <= 1:
        return v.interpolate
    if v.Na <= 2 or v.Nb <= 2 or v.Nc <= 2:
        say("auto-selected tricubic interpolation of structure factors")
        return 1
    say("auto-selected no interpolation")
    return 0


def crystal_size(v, say):
    """Cell counts from -xtal_size, and nanoBragg's oversampling choice from the crystal size
    (the settings it decides: Na, Nb, Nc, oversample)."""
    real = v.real * 1e-10
    lens = [math.sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2]) for x in real]  # C's rounding
    n = {"Na": v.Na, "Nb": v.Nb, "Nc": v.Nc}
    for k, (attr, size) in enumerate((("Na", v.sample_x), ("Nb", v.sample_y), ("Nc", v.sample_z))):
        if size > 0:
            if not math.isfinite(size / lens[k]):
                raise UsageError("-samplesize/-xtal_size: %g m is too large a crystal" % size)
            n[attr] = float(math.ceil(size / lens[k]))
        if n[attr] <= 1.0:
            n[attr] = 1.0
    v = replace(v, **n)
    xa, xb_, xc = lens[0] * v.Na, lens[1] * v.Nb, lens[2] * v.Nc
    say("crystal is %g x %g x %g microns" % (xa * 1e6, xb_ * 1e6, xc * 1e6))
    xmax = max(xa, xb_, xc)
    recip_pixel = v.lambda0 * v.distance / v.pixel_size
    recommended = recommended_oversample(xmax, v.lambda0, v.distance, v.pixel_size)
    if v.oversample <= 0:
        v = replace(v, oversample=recommended)
        say("auto-selected %d-fold oversampling" % v.oversample)
    check_work(v, v.nsources)
    if v.oversample < recommended:
        say("WARNING: maximum dimension of sample is %g A" % (xmax * 1e10))
        say("         but reciprocal pixel size is %g A" % (recip_pixel * 1e10))
        say("         intensity may vary significantly across a pixel!")
        say("         recommend -oversample %d to work around this" % recommended)
    volume = xa * xb_ * xc
    say("approximate MW = %g" % (volume * 1.2e6 * AVOGADRO / (v.Na * v.Nb * v.Nc)))
    return dict(n, oversample=v.oversample)


def report_sampling(v, say, sources):
    """Report layers, phi steps and sources; draw the mosaic domains: (their rotations, the
    settings of the final counts: oversample, steps)."""
    if v.stolfile is not None:
        say("reading %s" % v.stolfile)
    for t in range(v.detector_thicksteps):
        say("thick%d = %g um" % (t, v.detector_thickstep * t * 1e6))
    for p in range(v.phisteps):
        say("phi%d = %g" % (p, (v.phi0 + v.phistep * p) * RTD))
    for line in sources[3]:
        say(line)
    umats = rng.mosaic_umats(v.mosaic_spread, v.mosaic_domains, v.mosaic_seed, table=v.rng_table)
    say("  created a total of %d mosaic domains" % v.mosaic_domains)
    oversample = max(v.oversample, 1)
    return umats, dict(oversample=oversample, steps=len(sources[2]) * v.mosaic_domains * v.phisteps * oversample ** 2)


def make_simulation(v, det, grid, sources, umats, device, model_link=None):
    """The Simulation on the run's device and dtype from resolved settings and what was read."""
    positions, weights, wavelengths = sources[:3]
    dtype = torch.float32 if v.dtype == "float32" else torch.float64
    det.dtype, det.device, det.oversample = dtype, device, v.oversample
    t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)
    crystal = Crystal(real=t(v.real * 1e-10), recip=t(v.recip), Na=v.Na, Nb=v.Nb, Nc=v.Nc, shape=v.shape,
                      fudge=v.fudge, Fhkl=None if grid is None else t(grid.F),
                      hkl_min=(0, 0, 0) if grid is None else (grid.h_min, grid.k_min, grid.l_min),
                      hkl_count=0 if grid is None else grid.count, default_F=v.default_F,
                      interpolate=bool(v.interpolate), phi0=v.phi0, phistep=v.phistep, phisteps=v.phisteps,
                      spindle=tuple(v.spindle), mosaic_spread=v.mosaic_spread,
                      mosaic_umats=t(umats) if v.mosaic_spread > 0 else None)
    if model_link is not None:
        crystal.extra["structure"] = model_link  # makes the atoms refinable (parameters "atom_*")
    compat.phi_zero_note(v)
    used = v.source_weights_used
    # the central wavelength and bandpass the source grid was made from (a source file has neither)
    spectrum = dict(lambda0=v.lambda0, dispersion=v.dispersion) if v.sourcefile is None else {}
    beam = Beam(source_dirs=source_directions(positions, dtype, device), wavelengths=t(wavelengths),
                weights=t(weights) if used else None,
                polar_axis=tuple(v.polar_vector), kahn=v.polarization, nopolar=v.nopolar, fluence=v.fluence,
                **spectrum)
    sample = Sample(water_size=v.water_size)
    i_bg = sample.background(v.fluence)
    flags = Flags(oversample_thick=v.oversample_thick, oversample_polar=v.oversample_polar,
                  oversample_omega=v.oversample_omega, nopolar=v.nopolar, kahn=v.polarization, dmin=v.dmin,
                  water_background=i_bg, fluence=v.fluence, steps=v.steps)
    mask = None
    if v.mask_image is not None:
        mask = torch.as_tensor(v.mask_image != 0, device=device)
    roi = roi_ranges(v.roi)
    if v.panel_count > 1:
        from .experiment import multi_panel_detector, rendered_panels
        det = multi_panel_detector(v, dtype, device)
        mask, roi = torch.as_tensor(rendered_panels(v), device=device), None
    sim = Simulation(detector=det, crystal=crystal, beam=beam, sample=sample, flags=flags, roi=roi, mask=mask,
                     compat=v.compat)
    if not np.all(wavelengths > 0):
        sim.use_compile = False  # -compat c's sources at the origin: NaN indices, kept off the compiled gather
    return sim


def crystal_vectors(v, say) -> dict:
    """The crystal's lattice from -cell, -mat or an -expt file, turned by -misset (drawn for
    'random'), reported; returns the settings it decides: misset, lattice_definition, real,
    recip, volume."""
    cell = recip = misset = None
    f64 = lambda x: torch.tensor(x, dtype=torch.float64)
    if v.user_cell:
        a = v.cell[0]
        b = v.cell[1] if v.cell[1] > 0 else a
        c = v.cell[2] if v.cell[2] > 0 else a
        angles = [x if x > 0 else math.pi / 2 for x in v.cell[3:]]
        cell = [f64(x) for x in (a, b, c, *angles)]
    if v.matfile is not None:
        say("reading %s" % v.matfile)
        recip = f64(read_mosflm_matrix(v.matfile).T / (v.lambda0 * 1e10))
    angles = v.misset
    if v.misset[0] == -1:
        umat, drawn = rng.random_misset(v.misset_seed, table=v.rng_table)
        angles = (1.0, *drawn)
        say("random orientation misset angles: %f %f %f deg" % tuple(x * RTD for x in drawn))
    if angles[0] > 0:
        misset = [f64(x) for x in angles[1:]]
    if cell is None and recip is None and v.expt_real is not None:
        return dict(_expt_crystal_vectors(v, say, misset), misset=angles)
    if cell is None and recip is None:
        raise UsageError("no crystal: give -cell a b c alpha beta gamma or -mat FILE")
    # what the lattice was computed from, so the API can recompute it from differentiable values
    definition = dict(cell=None if cell is None else torch.stack(cell), mat=recip,
                      misset=None if misset is None else torch.stack(misset))
    real, rstar, volume = lattice_vectors(cell=cell, reciprocal=recip, misset=misset)
    return dict(_report_cell(say, real, rstar, volume), misset=angles, lattice_definition=definition)


def _expt_crystal_vectors(v, say, misset):
    """The -expt crystal: its real-space vectors as they are (a -misset turns them, through the
    reciprocal vectors, as it would turn a -mat matrix)."""
    real = torch.tensor(v.expt_real, dtype=torch.float64)
    volume = torch.det(real)
    if not abs(float(volume)) > 0:
        raise InputFileError(f"{v.exptfile}: the crystal's real-space vectors are not independent")
    a, b, c = real.unbind(0)
    recip = torch.stack((cross(b, c), cross(c, a), cross(a, b))) / volume
    definition = dict(cell=None, mat=recip, misset=None if misset is None else torch.stack(misset))
    if misset is not None:
        real, recip, volume = lattice_vectors(reciprocal=recip, misset=misset)
    return dict(_report_cell(say, real, recip, volume), lattice_definition=definition)


def _report_cell(say, real, rstar, volume):
    """Report the lattice as nanoBragg does; returns it as settings (real, recip as numpy, volume)."""
    cells = dict(real=real.numpy(), recip=rstar.numpy(), volume=float(volume))
    (ra, rb, rc, al, be, ga), (sa, sb, sc, sal, sbe, sga) = cell_parameters(real, rstar, volume)
    say("Unit Cell: %g %g %g %g %g %g" % (ra, rb, rc, al, be, ga))
    say("Recp Cell: %g %g %g %g %g %g" % (sa, sb, sc, sal, sbe, sga))
    say("volume = %g A^3" % float(volume))
    say("real-space cell vectors (Angstrom):")
    say("     %-10s  %-10s  %-10s" % ("a", "b", "c"))
    for i, axis in enumerate("XYZ"):
        say("%s: %11.8f %11.8f %11.8f" % (axis, *(row[i] for row in cells["real"])))
    say("reciprocal-space cell vectors (Angstrom^-1):")
    say("     %-10s  %-10s  %-10s" % ("a_star", "b_star", "c_star"))
    for i, axis in enumerate("XYZ"):
        say("%s: %11.8f %11.8f %11.8f" % (axis, *(row[i] for row in cells["recip"])))
    return cells


def load_structure_factors(v, say, fdump_present):
    if v.hklfile is None:
        if not fdump_present:
            return None
        say("reading Fs from %s" % v.dumpfile)
        return hkl_io.read_fdump(v.dumpfile)
    say("counting entries in %s" % v.hklfile)
    grid = compat.read_hkl(v.hklfile, v.default_F, v.compat, say)
    if v.default_F != 0.0:
        say("initializing to default_F = %g:" % v.default_F)
        say("done initializing:")
    say("re-reading %s" % v.hklfile)
    return grid


def write_dump(v, grid, say):
    """Keep the structure factors read from -hkl in the dump file (nanoBragg's Fdump.bin)."""
    try:
        hkl_io.write_fdump(v.dumpfile, grid)
        say("writing dump file for next time: %s" % v.dumpfile)
    except InputFileError:
        say("WARNING: unable to open dump file: %s" % v.dumpfile)


def generated_sources(v, say):
    """The divergence x dispersion grid of the resolved settings, reported as the C reports it."""
    grid = divergence_grid(v.beam, v.polar_vector, v.vert, v.lambda0, v.hdivrange, v.hdivstep, v.hdivsteps,
                           v.vdivrange, v.vdivstep, v.vdivsteps, v.dispersion, v.dispstep, v.dispsteps,
                           v.round_div, v.source_distance)
    for hd, vd in grid.divergence_ticks:
        say("divergence deviation: %g %g" % (hd, vd))
    for k, wl in enumerate(grid.lambdas):
        say("lambda%d = %.15g" % (k, wl))
    return grid


def make_sources(v, say):
    """(positions, weights, wavelengths, the settings they decide) from -sourcefile or the grid."""
    if v.sourcefile is not None:
        rows, weighted = compat.read_sources(v.sourcefile, v.compat)
        rows = fill_source_defaults(rows, v.beam, v.source_distance, v.lambda0)
        positions, weights, wavelengths = rows[:, :3], rows[:, 3], rows[:, 4]
        found = dict(divsteps=-1, source_weights_used=weighted)  # -1: nanoBragg.c's initial value, reported
    else:
        grid = generated_sources(v, say)
        positions, weights, wavelengths = grid.positions, grid.weights, grid.wavelengths
        found = dict(divsteps=grid.divsteps)
    if len(wavelengths) == 0:
        raise UsageError("no x-ray sources: the divergence settings leave no source points")
    if v.compat != "c" and np.any(~(wavelengths > 0)):
        raise InputFileError(f"{v.sourcefile}: source wavelengths must be positive")
    say("  created a total of %d sources:" % len(wavelengths))
    for p, w, wl in zip(positions, weights, wavelengths):
        say("%g %g %g   %g %g" % (p[0], p[1], p[2], w, wl))
    norms = np.linalg.norm(positions, axis=1)
    if v.compat != "c" and np.any(norms == 0):
        raise InputFileError(f"{v.sourcefile}: a source sits at the sample position (zero direction)")
    return positions, weights, wavelengths, dict(found, nsources=len(wavelengths))


def report_beam(v, say):
    """The wavelength, polarization and pixel-model lines of the C's summary."""
    say("  wave=%g meters +/- %g%% in %d steps" % (v.lambda0, v.dispersion * 100, v.dispsteps))
    say("  polarization effect disabled" if v.nopolar else "  Kahn polarization factor: %f" % v.polarization)
    if v.curved:
        say("  curved detector: all pixels same distance from origin")
    if v.point_pixel:
        say("  pixel obliquity effect disabled")


def report_summary(v, say, grid):
    say("  %d initialized hkls (all others =%g)" % (0 if grid is None else grid.count, v.default_F))
    shape = {"round": "ellipsoidal", "square": "parallelpiped", "gauss": "gaussian", "tophat": "tophat-spot"}
    say("  %s xtal: %.0fx%.0fx%.0f cells" % (shape[v.shape], v.Na, v.Nb, v.Nc))
    report_beam(v, say)
    say("  incident fluence: %lg photons/m^2" % v.fluence)
    say("  distance=%lg detsize=%lgx%lg  pixel=%lg meters (%dx%d pixels)"
        % (v.distance, v.detsize_f, v.detsize_s, v.pixel_size, v.fpixels, v.spixels))
    say("  sensor is %lg m thick in %d layers with mu= %lg" % (v.detector_thick, v.detector_thicksteps, v.detector_mu))
    say("  Xbeam=%lg Ybeam=%lg" % (v.Xbeam, v.Ybeam))
    say("  Fbeam=%lg Sbeam=%lg" % (v.Fbeam, v.Sbeam))
    say("  Xclose=%lg Yclose=%lg" % (v.Xclose, v.Yclose))
    say("  Fclose=%lg Sclose=%lg" % (v.Fclose, v.Sclose))
    g = v.geo
    say("  DIRECTION_OF_DETECTOR_X-AXIS= %g %g %g" % tuple(g["fdet"]))
    say("  DIRECTION_OF_DETECTOR_Y-AXIS= %g %g %g" % tuple(g["sdet"]))
    say("  DIRECTION_OF_DETECTOR_Z-AXIS= %g %g %g" % tuple(g["odet"]))
    say("  INCIDENT_BEAM_DIRECTION= %g %g %g" % tuple(v.beam))
    say("  spindle ROTATION_AXIS= %g %g %g" % tuple(v.spindle))
    b, p = v.beam, v.polar_vector
    say("  POLARIZATION_PLANE_NORMAL= %g %g %g" % (b[1] * p[2] - b[2] * p[1], b[2] * p[0] - b[0] * p[2],
                                                   b[0] * p[1] - b[1] * p[0]))
    say("  dials origin= %g %g %g" % v.dials_origin)
    say("  roi: %d < x < %d && %d < y < %d" % tuple(v.roi))
    say("  hdivrange=%g hdivstep=%g  radians" % (v.hdivrange, v.hdivstep))
    say("  vdivrange=%g vdivstep=%g  radians" % (v.vdivrange, v.vdivstep))
    say("  %d divergence steps" % v.divsteps)
    say("  %d sources" % v.nsources)
    say("  %d mosaic domains over mosaic spread of %g degrees" % (v.mosaic_domains, v.mosaic_spread * RTD))
    say("  %d phi steps from %g to %g degrees" % (v.phisteps, v.phi0 * RTD, (v.phi0 + v.osc) * RTD))
    extra = "".join(s for flag, s in ((v.oversample_thick, " +thick"), (v.oversample_polar, " +polar"),
                                       (v.oversample_omega, " +omega")) if flag)
    say("  %dx%d pixel oversample steps%s" % (v.oversample, v.oversample, extra))
    if v.mask_image is not None:
        say("  skipping zero-flagged pixels in %s" % v.maskfile)
    if v.calculate_noise:
        say("\n  noise image paramters:")
        say("  seed: %ld" % v.seed)
        say("  water droplet size: %g m" % v.water_size)
