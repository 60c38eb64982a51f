"""The command line's -h text (every option, grouped, with units and defaults) and -version."""

# (group, [(option spellings and values, what it does, with units and default)])
GROUPS = [
    ("Crystal", [
        ("-cell a b c alpha beta gamma", "unit cell (Angstrom, degrees); or -mat"),
        ("-mat/-matrix FILE", "MOSFLM orientation matrix (reciprocal vectors x wavelength)"),
        ("-misset rx ry rz | random", "crystal rotation about x, y, z (degrees), or a random one"),
        ("-hkl FILE", "h k l F text file (P1); writes -dump for reuse"),
        ("-dump FILE", "Fdump cache read when no -hkl is given (default Fdump.bin)"),
        ("-mtz FILE [-mtz_column LABEL]", "F from an MTZ file, expanded to P1 (default: first amplitude column)"),
        ("-cif_sf FILE [-cif_column TAG]", "F from an SF-mmCIF file, expanded to P1 (default: F_meas_au)"),
        ("-model FILE", "F computed from a PDB/mmCIF model to the detector's corners or -dmin A"),
        ("-anomalous", "keep F(+)/F(-) apart; with -model add f' and f'' at the beam energy"),
        ("-default_F F", "structure factor of reflections not in the file (default 0)"),
        ("-N n, -Na/-Nb/-Nc n", "unit cells along a, b, c (default 1)"),
        ("-xtalsize/-xtal_size/-samplesize/-sample_size mm", "crystal size instead of -N (default: from -N)"),
        ("-xtal_thick/-xtal_x/-sample_thick/-sample_x mm", "crystal size along x (the beam)"),
        ("-xtal_width/-xtal_y/-sample_width/-sample_y/-width mm", "crystal size along y"),
        ("-xtal_height/-xtal_z/-sample_height/-sample_z/-height mm", "crystal size along z"),
        ("-square_xtal | -round_xtal | -gauss_xtal | -tophat_spots/-binary_spots", "crystal shape (default square)"),
        ("-fudge f", "lattice-transform width factor for round/gauss/tophat (default 1)"),
        ("-mosaic/-mosaicity/-mosaic_spread deg", "isotropic mosaic spread (default 0)"),
        ("-mosaic_domains/-mosaic_dom n", "mosaic domains (default 10 with a spread, else 1)"),
        ("-mosaic_seed n", "seed of the mosaic domains (default -12345678)"),
        ("-misset_seed n", "seed of -misset random (default: the clock)"),
        ("-density/-sample_density g/cm^3", "sample density (default 1), -MW/-molecular_weight Da (default 18)"),
        ("-water um", "water around the crystal, for the background (default 0)"),
        ("-interpolate | -nointerpolate", "tricubic F interpolation (default: on when N <= 2)"),
    ]),
    ("Beam", [
        ("-lambda/-wave/-wavelength A", "wavelength (default 1 A); or -energy eV"),
        ("-fluence photons/m^2", "incident fluence (default 1.259e29)"),
        ("-flux photons/s, -exposure s, -beamsize mm", "fluence from flux (exposure default 1 s, beam 0.1 mm)"),
        ("-dispersion %", "spectral bandpass (default 0), -dispsteps n"),
        ("-divergence mrad", "beam divergence, both directions (default 0)"),
        ("-hdivrange/-vdivrange mrad", "horizontal / vertical divergence range"),
        ("-hdivstep/-vdivstep mrad", "divergence step; -hdivsteps/-vdivsteps/-divsteps n: counts"),
        ("-round_div | -square_div", "trim the divergence grid to an ellipse (default round)"),
        ("-sourcefile FILE", "sources: X Y Z (m) weight wavelength (m) per line"),
        ("-source_distance mm", "distance of generated sources (default 10 m)"),
        ("-polar k", "Kahn polarization factor (default 0); -nopolar turns polarization off"),
        ("-beam_vector x y z", "beam direction (default per convention, MOSFLM 1 0 0)"),
        ("-polar_vector x y z", "E-vector direction (default 0 0 1)"),
        ("-coherent", "accepted and ignored, as by nanoBragg.c (which never uses it)"),
    ]),
    ("Detector", [
        ("-distance mm", "sample to detector, beam pivot (default 100 mm)"),
        ("-close_distance mm", "sample to detector plane, sample pivot"),
        ("-pixel/-pixel_size mm", "pixel size (default 0.1 mm)"),
        ("-detpixels n, -detpixels_f/-detpixels_x, -detpixels_s/-detpixels_y n", "detector size in pixels"),
        ("-detsize mm, -detsize_f/-detsize_x, -detsize_s/-detsize_y mm", "detector size (default 102.4 mm)"),
        ("-Xbeam/-Ybeam mm", "direct-beam position (default: the centre); -Xclose/-Yclose mm, -ORGX/-ORGY pixels"),
        ("-mosflm | -xds | -adxv | -denzo | -dials", "beam-centre convention (default MOSFLM)"),
        ("-pivot sample|beam", "what stays fixed when the detector rotates"),
        ("-twotheta deg", "detector rotation about -twotheta_axis x y z (default 0)"),
        ("-detector_rotx/-detector_roty/-detector_rotz deg", "detector rotations (default 0)"),
        ("-fdet_vector/-sdet_vector/-odet_vector x y z", "fast, slow, normal detector axes (default per convention)"),
        ("-pix0_vector x y z", "corner of the first pixel (m); no effect, as in C, unless -compat fixed"),
        ("-curved_det/-curved_detector", "all pixels at the same distance"),
        ("-point_pixel", "no obliquity in the pixel solid angle"),
        ("-detector_thick um", "sensor thickness (default 0), -detector_thicksteps/-thicksteps n layers"),
        ("-detector_abs/-detector_absorb/-detector_absorption um|inf", "sensor attenuation length"),
        ("-img FILE, -mask FILE", "SMV image whose header sets the geometry; mask (0 = skip pixel)"),
        ("-adc n", "offset added to integer images (default 40)"),
    ]),
    ("Sampling", [
        ("-phi deg", "start of the rotation (default 0)"),
        ("-osc deg", "rotation range (default 0, or 1 deg with -phisteps)"),
        ("-phistep deg, -phisteps n", "rotation step / number of steps (default 1 step)"),
        ("-spindle_axis x y z", "rotation axis, right-handed (default per convention, MOSFLM 0 0 1)"),
        ("-oversample n", "sub-pixels per pixel edge (default: from crystal size)"),
        ("-oversample_thick | -oversample_polar | -oversample_omega", "recompute that factor per sub-pixel"),
        ("-roi xmin xmax ymin ymax", "render only these pixels (fast, slow; inclusive)"),
        ("-dmin A", "skip scattering beyond this resolution (default 0: none)"),
    ]),
    ("Outputs", [
        ("-floatfile/-floatimage FILE", "raw 4-byte floats, photons/pixel (default floatimage.bin)"),
        ("-intfile/-intimage FILE", "SMV 16-bit image (default intimage.img); -scale s (default: auto)"),
        ("-noisefile/-noiseimage FILE", "SMV image with Poisson noise (default noiseimage.img); -nonoise: none"),
        ("-pgmfile/-pgmimage FILE", "8-bit PGM preview (default image.pgm); -pgmscale s; -nopgm: none"),
        ("-seed n", "noise seed (default: the clock)"),
        ("-stol/-4stol/-Q FILE, -stolout FILE", "structure factor vs sin(theta)/lambda table (read, unused)"),
        ("-printout, -printout_pixel FAST SLOW", "print pixel values (one pixel: fast then slow index)"),
        ("-trace_pixel SLOW FAST", "full-precision trace of one pixel (slow then fast index)"),
        ("-progress | -noprogress", "progress meter (default on, for runs over a second)"),
    ]),
    ("Background and detector model (nanobrag_torch only; see README)", [
        ("-background FILE.stol", "add nonBragg's amorphous scattering from this table"),
        ("-background_thick mm", "amorphous sample thickness (default 0.1 mm)"),
        ("-background_density g/cm^3, -background_MW g/mol", "its density (default 1) and molar mass (default 18)"),
        ("-psf gauss|fiber, -psf_fwhm um, -psf_radius px", "point spread of the noise image (fwhm default 46 um)"),
        ("-readout_noise ADU, -gain ADU/photon", "readout noise and gain of the noise image"),
        ("-flicker f, -calibration c, -calib_seed n", "beam 1/f noise, per-pixel gain error (default 0.03)"),
    ]),
    ("Datasets and geometry files (nanobrag_torch only; see README)", [
        ("-frames n", "rotation series of n frames (frame i starts at -phi + i x -osc)"),
        ("-stills n", "n serial stills at random orientations; -shots FILE.toml varies them"),
        ("-frame k", "render only frame k (0-based) as an ordinary single run"),
        ("-smv PREFIX | -cbf PREFIX | -nexus FILE.nxs", "dataset outputs: SMV / miniCBF files, one NXmx file"),
        ("-resume | -overwrite", "continue an interrupted dataset / replace existing outputs"),
        ("-export_c DIR", "nanoBragg.c argument lists for every frame"),
        ("-workers n | -scheduler ADDRESS", "render a dataset on a local / an existing Dask cluster"),
        ("-expt FILE.expt, -write_expt FILE.expt", "DIALS experiment list: geometry in / out"),
    ]),
    ("Compatibility and running (nanobrag_torch only)", [
        ("-compat c", "read source and HKL files exactly as nanoBragg.c does"),
        ("-compat fixed", "sensible reading and none of nanoBragg.c's numeric bugs"),
        ("", "(default: sensible reading, nanoBragg.c's numbers)"),
        ("-dtype float32|float64", "precision (default float64)"),
        ("-device cpu|cuda|cuda:N|auto", "where to compute (default cpu)"),
        ("-nthreads n", "CPU threads (default: torch's choice)"),
        ("--debug", "show Python tracebacks"),
        ("-h/-help/--help, -version/--version", "this text; versions"),
    ]),
]

HEADER = """usage: nanoBragg -hkl Fs.hkl -mat auto.mat [options]     (or -cell a b c alpha beta gamma, -default_F F)
nanoBragg.c's options with its units, defaults and precedence (see README, "Differences from nanoBragg.c")."""


def usage_text():
    lines = [HEADER]
    for group, options in GROUPS:
        lines.append(f"\n{group}:")
        for spelled, what in options:
            if len(spelled) > 34:
                lines.append(f"  {spelled}")
                lines.append(f"  {'':34s}  {what}")
            else:
                lines.append(f"  {spelled:34s}  {what}")
    return "\n".join(lines)


SHORT = "usage: nanoBragg -hkl Fs.hkl -mat auto.mat [options]   (nanoBragg -h lists every option)"


def version_text():
    """Package, torch and device versions (one line each)."""
    import platform

    import torch

    from . import __version__
    lines = [f"nanobrag_torch {__version__}", f"torch {torch.__version__}",
             f"python {platform.python_version()}"]
    if torch.cuda.is_available():
        lines.append(f"device cuda: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
    else:
        lines.append(f"device cpu: {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads);"
                     " no CUDA device")
    return "\n".join(lines)
