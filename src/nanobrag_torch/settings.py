"""nanoBragg's option semantics: turn a validated argument list into resolved settings.

nanoBragg.c matches options by substring (strstr), so one argument can trigger several rules
(e.g. -misset_seed also sets misset angles and the noise seed; -twotheta_axis also sets
-twotheta; -printout_pixel also turns on -printout). These rules are reproduced on purpose,
in C's order, so that any command line gives C's image. Values read by such side rules use
C's lenient atof/atoi; the option's own values were already validated by options.py.
"""
import math
from types import SimpleNamespace

from .cnum import atof, atoi

RTD = 180.0 / math.pi
NAN = float("nan")


def _defaults():
    return SimpleNamespace(
        Na=1.0, Nb=1.0, Nc=1.0, user_cell=False, cell=[0.0, 0.0, 0.0, 0.0, 0.0, 0.0], misset=[0.0, 0.0, 0.0, 0.0],
        sample_x=0.0, sample_y=0.0, sample_z=0.0, density=1.0e6, molecular_weight=18.0,
        Xbeam=NAN, Ybeam=NAN, Xclose=NAN, Yclose=NAN, ORGX=NAN, ORGY=NAN, Fbeam=NAN, Sbeam=NAN,
        Fclose=NAN, Sclose=NAN, pivot="beam", convention="MOSFLM",
        fdet=[0.0, 0.0, 1.0], sdet=[0.0, -1.0, 0.0], odet=[1.0, 0.0, 0.0], beam=[1.0, 0.0, 0.0],
        polar_vector=[0.0, 0.0, 1.0], spindle=[0.0, 0.0, 1.0], twotheta_axis=[0.0, 0.0, -1.0],
        pix0=None, distance=100.0e-3, close_distance=NAN, source_distance=10.0,
        detector_mu=-1.0, detector_thick=0.0, detector_thickstep=-1.0, detector_thicksteps=-1,
        twotheta=0.0, rotx=0.0, roty=0.0, rotz=0.0, detsize_f=102.4e-3, detsize_s=102.4e-3,
        fpixels=0, spixels=0, curved=False, pixel_size=0.1e-3, point_pixel=False, polarization=0.0,
        nopolar=False, oversample_thick=False, oversample_polar=False, oversample_omega=False,
        oversample=-1, roi=[-1, -1, -1, -1], lambda0=1.0e-10, fluence=125932015286227086360700780544.0,
        flux=0.0, exposure=1.0, beamsize=1e-4, mosaic_spread=-1.0, mosaic_domains=-1,
        dispersion=0.0, dispstep=-1.0, dispsteps=-1, hdivrange=-1.0, vdivrange=-1.0, hdivstep=-1.0,
        vdivstep=-1.0, hdivsteps=-1, vdivsteps=-1, round_div=True, adc_offset=40.0, phi0=0.0,
        osc=-1.0, phistep=-1.0, phisteps=-1, dmin=0.0, matfile=None, hklfile=None, default_F=0.0,
        dumpfile="Fdump.bin", imgfile=None, maskfile=None, stolfile=None, sourcefile=None,
        floatfile="floatimage.bin", intfile="intimage.img", pgmfile="image.pgm", noisefile="noiseimage.img",
        calculate_noise=True, write_pgm=True, intfile_scale=0.0, pgm_scale=0.0, printout=False,
        progress=True, interpolate=2, shape="square", fudge=1.0, printout_fpixel=-1, printout_spixel=-1,
        seed=None, mosaic_seed=-12345678, misset_seed=None, water_size=0.0,
        mtzfile=None, mtz_column=None, cif_sf_file=None, cif_column=None, modelfile=None, anomalous=False,
        dtype="float64", device="cpu", nthreads=0, trace_pixel=None, debug=False, compat="default",
        warnings=[], notes=[], exptfile=None, write_expt=None, expt=None, expt_panels=None, expt_real=None,
        pix0_option=False,
    )


def input_images(argv):
    """(-img file, -mask file): nanoBragg reads both headers before any other option."""
    img = mask = None
    for i, tok in enumerate(argv):
        if tok.startswith("-") and i + 1 < len(argv):
            if "-img" in tok:
                img = argv[i + 1]
            if "-mask" in tok:
                mask = argv[i + 1]
    return img, mask


def size_options(argv):
    """The options that set the detector's size, for messages about it ("-detpixels", "-img header")."""
    found = []
    for tok in argv:
        name = tok.split("_")[0] if tok.startswith(("-detpixels", "-detsize")) else tok
        if tok.startswith(("-detpixels", "-detsize", "-pixel")) and tok not in found:
            found.append(tok)
        elif name in ("-img", "-mask") and f"{name} header" not in found:
            found.append(f"{name} header")
    return found


def apply_header(v, smv, is_mask):
    """Take detector geometry from an SMV header (nanoBragg's -mask / -img ingestion)."""
    v.fpixels, v.spixels = smv.width, smv.height
    val = smv.value("PIXEL_SIZE")
    if val is not None:
        v.pixel_size = val / 1000.0
    v.detsize_f = v.pixel_size * v.fpixels
    v.detsize_s = v.pixel_size * v.spixels
    for key, attr, scale in (("DISTANCE", "distance", 1e-3), ("CLOSE_DISTANCE", "close_distance", 1e-3),
                             ("WAVELENGTH", "lambda0", 1e-10), ("BEAM_CENTER_X", "Xbeam", 1e-3)):
        val = smv.value(key)
        if val is not None:
            setattr(v, attr, val * scale)
    val = smv.value("BEAM_CENTER_Y")
    if val is not None:
        v.Ybeam = v.detsize_s - val / 1000.0 if is_mask else val / 1000.0
    for key, attr, scale in (("ORGX", "ORGX", 1.0), ("ORGY", "ORGY", 1.0), ("PHI", "phi0", 1 / RTD),
                             ("OSC_RANGE", "osc", 1 / RTD)):
        val = smv.value(key)
        if val is not None:
            setattr(v, attr, val * scale)
    # nanoBragg also reads TWOTHETA here but stores it where nothing uses it


def parse(argv, preload=None):
    """Apply nanoBragg's substring rules to argv (validated) and return the raw settings.

    `preload(v)` runs first: it applies -mask / -img headers, which options then override."""
    v = _defaults()
    if preload is not None:
        preload(v)
    n = len(argv)

    def nxt(i, k=1):
        return argv[i + k] if i + k < n else None

    def avail(i, k=1):
        return i + k < n

    v.imgfile, v.maskfile = input_images(argv)
    for i, tok in enumerate(argv):
        if not tok.startswith("-"):
            continue
        has = tok.__contains__
        a1 = avail(i)
        if has("-Na") and a1:
            v.Na = atoi(nxt(i)); continue
        if has("-Nb") and a1:
            v.Nb = atoi(nxt(i)); continue
        if has("-Nc") and a1:
            v.Nc = atoi(nxt(i)); continue
        if tok == "-N" and a1:
            v.Na = v.Nb = v.Nc = atoi(nxt(i)); continue
        if has("-cell") and a1:
            v.user_cell = True
            for k in range(6):
                t = nxt(i, k + 1)
                if t is None or t.startswith("-"):
                    break
                v.cell[k] = atof(t) if k < 3 else atof(t) / RTD
        if has("-misset") and a1 and "rand" in nxt(i):
            v.misset[0] = -1; continue
        if has("-misset") and avail(i, 3):
            v.misset = [1, atof(nxt(i, 1)) / RTD, atof(nxt(i, 2)) / RTD, atof(nxt(i, 3)) / RTD]
        if (has("-samplesize") or has("-sample_size")) and a1:
            v.sample_x = v.sample_y = v.sample_z = atof(nxt(i)) / 1000
        if (has("-sample_thick") or has("-sample_x")) and a1:
            v.sample_x = atof(nxt(i)) / 1000
        if (has("-sample_width") or has("-sample_y") or has("-width")) and a1:
            v.sample_y = atof(nxt(i)) / 1000
        if (has("-sample_heigh") or has("-sample_z") or has("-heigh")) and a1:
            v.sample_z = atof(nxt(i)) / 1000
        if (has("-xtalsize") or has("-xtal_size")) and a1:
            v.sample_x = v.sample_y = v.sample_z = atof(nxt(i)) / 1000
        if (has("-xtal_thick") or has("-xtal_x")) and a1:
            v.sample_x = atof(nxt(i)) / 1000
        if (has("-xtal_width") or has("-xtal_y") or has("-width")) and a1:
            v.sample_y = atof(nxt(i)) / 1000
        if (has("-xtal_heigh") or has("-xtal_z") or has("-heigh")) and a1:
            v.sample_z = atof(nxt(i)) / 1000
        if (has("-density") or has("-sample_den")) and a1:
            v.density = atof(nxt(i)) * 1e6
        if (tok == "-MW" or has("-molec")) and a1:
            v.molecular_weight = atof(nxt(i))
        if has("-Xbeam") and a1:
            v.Xbeam = atof(nxt(i)) / 1000.0; v.pivot = "beam"
        if has("-Ybeam") and a1:
            v.Ybeam = atof(nxt(i)) / 1000.0; v.pivot = "beam"
        if has("-Xclose") and a1:
            v.Xclose = atof(nxt(i)) / 1000.0; v.pivot = "sample"
        if has("-Yclose") and a1:
            v.Yclose = atof(nxt(i)) / 1000.0; v.pivot = "sample"
        if has("-ORGX") and a1:
            v.ORGX = atof(nxt(i)); v.pivot = "sample"
        if has("-ORGY") and a1:
            v.ORGY = atof(nxt(i)); v.pivot = "sample"
        if has("-pivot") and a1:
            if "sample" in nxt(i):
                v.pivot = "sample"
            if "beam" in nxt(i):
                v.pivot = "beam"
        for name, conv, piv in (("-mosflm", "MOSFLM", "beam"), ("-xds", "XDS", "sample"), ("-adxv", "ADXV", "beam"),
                                ("-denzo", "DENZO", "beam"), ("-dials", "DIALS", "beam")):
            if has(name):
                v.convention, v.pivot = conv, piv
        for name, attr in (("-fdet_vector", "fdet"), ("-sdet_vector", "sdet"), ("-odet_vector", "odet"),
                           ("-beam_vector", "beam"), ("-polar_vector", "polar_vector"),
                           ("-spindle_axis", "spindle"), ("-twotheta_axis", "twotheta_axis"),
                           ("-pix0_vector", "pix0")):
            if has(name) and avail(i, 3):
                v.convention = "CUSTOM"
                setattr(v, attr, [atof(nxt(i, 1)), atof(nxt(i, 2)), atof(nxt(i, 3))])
                v.pix0_option = v.pix0_option or attr == "pix0"
        if has("-distance") and a1:
            v.distance = atof(nxt(i)) / 1000.0; v.pivot = "beam"
        if has("-close_distance") and a1:
            v.close_distance = atof(nxt(i)) / 1000.0; v.pivot = "sample"
        if has("-source_distance") and a1:
            v.source_distance = atof(nxt(i)) / 1000.0
        if has("-detector_abs") and a1:
            if "inf" in nxt(i) or atof(nxt(i)) == 0.0:
                v.detector_thick = 0.0; v.detector_mu = 0.0
            else:
                v.detector_mu = 1.0 / (atof(nxt(i)) * 1e-6)
        if has("-detector_thick") and len(tok) == 15 and a1:
            v.detector_thick = atof(nxt(i)) * 1e-6
        if has("-detector_thicksteps") and a1:
            v.detector_thicksteps = atoi(nxt(i))
        if has("-thicksteps") and a1:
            v.detector_thicksteps = atoi(nxt(i))
        if has("-twotheta") and a1:
            v.twotheta = atof(nxt(i)) / RTD; v.pivot = "sample"
        if has("-detector_rotx") and a1:
            v.rotx = atof(nxt(i)) / RTD
        if has("-detector_roty") and a1:
            v.roty = atof(nxt(i)) / RTD
        if has("-detector_rotz") and a1:
            v.rotz = atof(nxt(i)) / RTD
        if has("-detsize") and len(tok) == 8 and a1:
            v.detsize_f = v.detsize_s = atof(nxt(i)) / 1000.0
        if (has("-detsize_f") or has("-detsize_x")) and a1:
            v.detsize_f = atof(nxt(i)) / 1000.0
        if (has("-detsize_s") or has("-detsize_y")) and a1:
            v.detsize_s = atof(nxt(i)) / 1000.0
        if has("-detpixels") and len(tok) == 10 and a1:
            v.fpixels = v.spixels = atoi(nxt(i))
        if (has("-detpixels_f") or has("-detpixels_x")) and a1:
            v.fpixels = atoi(nxt(i))
        if (has("-detpixels_s") or has("-detpixels_y")) and a1:
            v.spixels = atoi(nxt(i))
        if has("-curved_det") and a1:
            v.curved = True
        if has("-pixel") and a1:
            v.pixel_size = atof(nxt(i)) / 1000.0
        if has("-point_pixel"):
            v.point_pixel = True
        if has("-polar") and len(tok) == 6 and a1:
            v.polarization = atof(nxt(i)); v.nopolar = False
        if has("-nopolar"):
            v.nopolar = True
        if has("-oversample_thick"):
            v.oversample_thick = True; continue
        if has("-oversample_polar"):
            v.oversample_polar = True; continue
        if has("-oversample_omega"):
            v.oversample_omega = True; continue
        if has("-oversample") and a1:
            v.oversample = atoi(nxt(i))
        if has("-roi") and avail(i, 4):
            v.roi = [atoi(nxt(i, k)) for k in (1, 2, 3, 4)]
        if (has("-lambda") or has("-wave")) and a1:
            v.lambda0 = atof(nxt(i)) / 1.0e10
        if has("-energy") and a1:
            e = atof(nxt(i))
            v.lambda0 = (12398.42 / e if e else math.inf) / 1.0e10
        if has("-fluence") and a1:
            v.fluence = atof(nxt(i))
        if has("-flux") and a1:
            v.flux = atof(nxt(i))
        if has("-exposure") and a1:
            v.exposure = atof(nxt(i))
        if has("-beamsize") and a1:
            v.beamsize = atof(nxt(i)) / 1000
        if ((has("-mosaic") and len(tok) == 7) or has("-mosaici") or has("-mosaic_spr")) and a1:
            v.mosaic_spread = atof(nxt(i)) / RTD
        if has("-mosaic_dom") and a1:
            v.mosaic_domains = atoi(nxt(i))
        if has("-dispersion") and a1:
            v.dispersion = atof(nxt(i)) / 100.0
        if has("-dispsteps") and a1:
            v.dispsteps = atoi(nxt(i))
        if has("-divergence") and a1:
            v.hdivrange = v.vdivrange = atof(nxt(i)) / 1000.0
        if has("-hdivrange") and a1:
            v.hdivrange = atof(nxt(i)) / 1000.0
        if has("-vdivrange") and a1:
            v.vdivrange = atof(nxt(i)) / 1000.0
        if has("-hdivstep") and len(tok) == 9 and a1:
            v.hdivstep = atof(nxt(i)) / 1000.0
        if has("-hdivsteps") and a1:
            v.hdivsteps = atoi(nxt(i))
        if has("-vdivstep") and len(tok) == 9 and a1:
            v.vdivstep = atof(nxt(i)) / 1000.0
        if has("-vdivsteps") and a1:
            v.vdivsteps = atoi(nxt(i))
        if has("-divsteps") and a1:
            v.hdivsteps = v.vdivsteps = atoi(nxt(i))
        if has("-round_div"):
            v.round_div = True
        if has("-square_div"):
            v.round_div = False
        if has("-adc") and a1:
            v.adc_offset = atof(nxt(i))
        if has("-phi") and len(tok) == 4 and a1:
            v.phi0 = atof(nxt(i)) / RTD
        if has("-osc") and a1:
            v.osc = atof(nxt(i)) / RTD
        if has("-phistep") and len(tok) == 8 and a1:
            v.phistep = atof(nxt(i)) / RTD
        if has("-phisteps") and a1:
            v.phisteps = atoi(nxt(i))
        if has("-dmin") and a1:
            v.dmin = atof(nxt(i)) * 1e-10
        if has("-mat") and a1:
            v.matfile = nxt(i)
        if has("-hkl") and a1:
            v.hklfile = nxt(i)
        if has("-default_F") and a1:
            v.default_F = atof(nxt(i))
        if has("-dump") and a1:
            v.dumpfile = nxt(i)
        if has("-img") and a1:
            v.imgfile = nxt(i)
        if has("-stolout") and len(tok) > 7 and a1:
            pass  # nanoBragg never writes this file
        if ((has("-stol") and len(tok) == 5) or (has("-4stol") and len(tok) == 6) or (has("-Q") and len(tok) == 2)) and a1:
            v.stolfile = nxt(i)
        if has("-sourcefile") and a1:
            v.sourcefile = nxt(i)
        if (has("-floatfile") or has("-floatimage")) and a1:
            v.floatfile = nxt(i)
        if (has("-intfile") or has("-intimage")) and a1:
            v.intfile = nxt(i)
        if (has("-pgmfile") or has("-pgmimage")) and a1:
            v.pgmfile = nxt(i); v.write_pgm = True
        if (has("-noisefile") or has("-noiseimage")) and a1:
            v.noisefile = nxt(i); v.calculate_noise = True
        if has("-nonoise"):
            v.calculate_noise = False
        if has("-nopgm"):
            v.write_pgm = False
        if has("-scale") and a1:
            v.intfile_scale = atof(nxt(i))
        if has("-pgmscale") and a1:
            v.pgm_scale = atof(nxt(i)); v.write_pgm = True
        if has("-printout"):
            v.printout = True
        if has("-noprogress"):
            v.progress = False
        if has("-progress") and not has("-noprogress"):
            v.progress = True
        if has("-interpolate") and not has("-nointerpolate"):
            v.interpolate = 1
        if has("-nointerpolate"):
            v.interpolate = 0
        if has("-round_xtal"):
            v.shape = "round"
        if has("-square_xtal"):
            v.shape = "square"
        if has("-gauss_xtal"):
            v.shape = "gauss"
        if has("-binary_spots") or has("-tophat_spots"):
            v.shape = "tophat"
        if has("-fudge") and a1:
            v.fudge = atof(nxt(i))
        if has("-printout_pixel") and avail(i, 2):
            v.printout_fpixel, v.printout_spixel = atoi(nxt(i, 1)), atoi(nxt(i, 2))
        if has("-seed") and a1:
            v.seed = -atoi(nxt(i))
        if has("-mosaic_seed") and a1:
            v.mosaic_seed = -atoi(nxt(i))
        if has("-misset_seed") and a1:
            v.misset_seed = -atoi(nxt(i))
        if has("-water") and a1:
            v.water_size = atof(nxt(i)) / 1e6
        # nanobrag_torch's own options
        own = {"-mtz": "mtzfile", "-mtz_column": "mtz_column", "-cif_sf": "cif_sf_file", "-cif_column": "cif_column",
               "-model": "modelfile"}
        if tok in own:
            setattr(v, own[tok], nxt(i))
        if tok == "-anomalous":
            v.anomalous = True
        if tok == "-dtype":
            v.dtype = nxt(i)
        if tok == "-device":
            v.device = nxt(i)
        if tok == "-nthreads":
            v.nthreads = atoi(nxt(i))
        if tok == "-expt":
            v.exptfile = nxt(i)
        if tok == "-write_expt":
            v.write_expt = nxt(i)
        if tok == "-trace_pixel":
            v.trace_pixel = (atoi(nxt(i, 1)), atoi(nxt(i, 2)))
        if tok == "-compat":
            v.compat = nxt(i)
        if tok in ("--debug", "-debug"):
            v.debug = True
    return v
