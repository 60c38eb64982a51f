"""Image statistics and output files, as nanoBragg reports and writes them."""
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import rng
from .io.floatimage import write_float_image
from .io.pgm import auto_pgm_scale, write_pgm
from .io.smv import int_image, smv_header, write_raw_smv
from .settings import RTD


def _row_blocks(rows, cols):
    """Row slices of about 2^18 pixels: double-precision temporaries stay small."""
    step = max(1, (1 << 18) // max(1, cols))
    return [slice(r, r + step) for r in range(0, rows, step)]


def statistics(image32, rendered, roi, oversample, pixel_size):
    """max_I (and where), mean, rms, rmsd over the float32 image as nanoBragg computes them."""
    n, total, squares = 0, 0.0, 0.0
    max_i, idx = -np.inf, None
    whole = bool(rendered.all())  # a whole image needs no mask: fewer passes over it
    for rows in _row_blocks(*image32.shape):
        block = image32[rows]
        vals = (block if whole else block[rendered[rows]]).astype(np.float64).ravel()
        n += vals.size
        total += float(vals.sum())
        squares += float(np.einsum("i,i", vals, vals))  # not np.dot: BLAS threads crawl on a busy machine
        if vals.size:
            # the first maximum in C order (float32 orders as its doubles do)
            flat = block.ravel() if whole else np.where(rendered[rows].ravel(), block.ravel(), -np.inf)
            best = int(np.argmax(flat))
            if float(flat[best]) > max_i:
                max_i, idx = float(flat[best]), best + rows.start * image32.shape[1]
    max_x = max_y = 0.0
    if idx is not None and max_i > 0:
        s, f = divmod(idx, image32.shape[1])
        sub = pixel_size / oversample
        # nanoBragg reports the last sub-pixel position of that pixel
        max_x = sub * (f * oversample + oversample - 1) + sub / 2.0
        max_y = sub * (s * oversample + oversample - 1) + sub / 2.0
    else:
        max_i = 0.0
    avg = total / max(n, 1)
    n_rms = max(n, 1) if n > 1 else 2
    rms = math.sqrt(squares / (n_rms - 1))
    x0, x1, y0, y1 = roi
    box = image32[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1]
    nb = box.size if box.size > 1 else 2
    deviations = 0.0
    for rows in _row_blocks(*box.shape):
        centred = box[rows].astype(np.float64).ravel()
        centred -= avg
        deviations += float(np.einsum("i,i", centred, centred))
    rmsd = math.sqrt(deviations / (nb - 1))
    return dict(max_I=max_i, max_x=max_x, max_y=max_y, mean=avg, rms=rms, rmsd=rmsd)


def header_fields(v):
    ps = v.pixel_size
    return {
        "SIZE1": v.fpixels, "SIZE2": v.spixels, "PIXEL_SIZE": ps * 1000.0, "DISTANCE": v.distance * 1000.0,
        "WAVELENGTH": v.lambda0 * 1e10, "BEAM_CENTER_X": v.Xbeam * 1000.0, "BEAM_CENTER_Y": v.Ybeam * 1000,
        "ADXV_CENTER_X": v.Fbeam * 1000.0, "ADXV_CENTER_Y": (v.detsize_s - v.Sbeam) * 1000,
        "MOSFLM_CENTER_X": (v.Sbeam - 0.5 * ps) * 1000.0, "MOSFLM_CENTER_Y": (v.Fbeam - 0.5 * ps) * 1000,
        "DENZO_X_BEAM": (v.Sbeam - 0.0 * ps) * 1000.0, "DENZO_Y_BEAM": (v.Fbeam - 0.0 * ps) * 1000,
        "DIALS_ORIGIN": v.dials_origin, "XDS_ORGX": v.ORGX, "XDS_ORGY": v.ORGY,
        "CLOSE_DISTANCE": v.close_distance * 1000.0, "PHI": v.phi0 * RTD, "OSC_START": v.phi0 * RTD,
        "OSC_RANGE": v.osc * RTD, "TWOTHETA": v.twotheta * RTD,
    }


def write_all(v, image32, stats, say, header=None, noise=None, panel_fields=None):
    """Write the float, integer, PGM and noise images named by the settings.

    `header`: the SMV header bytes to use (nonBragg's own); default nanoBragg's from `v`.
    `noise`: image32 -> (noise image, photons, overloads) replacing nanoBragg's Poisson noise.
    Several panels (stacked along slow in image32): the float file holds them one after another;
    the SMV, PGM and noise images are one file per panel (name_p00.img, ...), each with its
    panel's header (`panel_fields`), the -roi box applying in every panel."""
    say("writing %s as %d %d-byte floats" % (v.floatfile, image32.size, 4))
    others = {v.intfile} | ({v.pgmfile} if v.write_pgm else set()) | ({v.noisefile} if v.calculate_noise else set())
    if os.fspath(v.floatfile) in {os.fspath(name) for name in others}:
        write_float_image(v.floatfile, image32)  # written again below: in order, as the C does
        _write_rest(v, image32, stats, say, header, noise, panel_fields)
        return
    # the float file (the largest) is written on a thread while the integer images are made and
    # written: the disk and the CPU work at once (a 3072^2 image: ~0.06 s of ~0.17 s)
    with ThreadPoolExecutor(1) as pool:
        written = pool.submit(write_float_image, v.floatfile, image32)
        _write_rest(v, image32, stats, say, header, noise, panel_fields)
        written.result()


def _write_rest(v, image32, stats, say, header, noise, panel_fields):
    """write_all after the float file."""
    roi = tuple(v.roi)
    count = getattr(v, "panel_count", 1)
    say("max_I = %g  at %g %g" % (stats["max_I"], stats["max_x"], stats["max_y"]))
    say("mean= %g rms= %g rmsd= %g" % (stats["mean"], stats["rms"], stats["rmsd"]))
    scale = v.intfile_scale
    if scale <= 0.0:
        scale = 55000.0 / stats["max_I"] if stats["max_I"] > 0.0 else 1.0
    say("intfile_scale = %g" % scale)
    headers = [header] if header is not None else \
        [smv_header(f) for f in (panel_fields or [header_fields(v)])]
    parts = np.split(image32, count) if count > 1 else [image32]

    def each(name, images, what):
        for index, (part, head) in enumerate(zip(images, headers)):
            target = panel_file(name, index) if count > 1 else name
            say(f"writing {target} as {what}")
            yield target, part, head

    for target, part, head in each(v.intfile, parts, "2-byte integers"):
        write_raw_smv(target, head, int_image(part, scale, v.adc_offset, roi))
    if v.write_pgm:
        pgm_scale = v.pgm_scale if v.pgm_scale > 0.0 else auto_pgm_scale(scale, stats["rmsd"])
        say("pgm_scale = %g" % pgm_scale)
        for target, part, _ in each(v.pgmfile, parts, "1-byte integers"):
            write_pgm(target, part, pgm_scale, roi)
    if v.calculate_noise:
        noisy, photons, overloads = noise(image32) if noise is not None else _noise(v, image32, roi, count)
        say("%.0f photons on noise image (%d overloads)" % (photons, overloads))
        for target, part, head in each(v.noisefile, np.split(noisy, count), "2-byte integers"):
            write_raw_smv(target, head, part)


def _noise(v, image32, roi, count):
    """One noise draw over all panels in order; outside each panel's -roi box stays 0."""
    if count == 1:
        return rng.noise_image(image32, v.seed, v.adc_offset, roi, table=getattr(v, "rng_table", None))
    x0, x1 = roi[0], roi[1]
    noisy, photons, overloads = rng.noise_image(image32, v.seed, v.adc_offset, (x0, x1, 0, image32.shape[0] - 1),
                                                table=getattr(v, "rng_table", None))
    box = np.zeros((v.spixels, v.fpixels), dtype=bool)
    box[max(roi[2], 0):roi[3] + 1, max(x0, 0):x1 + 1] = True
    return np.where(np.tile(box, (count, 1)), noisy, 0).astype(noisy.dtype), photons, overloads


def panel_file(name, index):
    """intimage.img -> intimage_p00.img (one file per panel)."""
    root, ext = os.path.splitext(name)
    return f"{root}_p{index:02d}{ext}"
