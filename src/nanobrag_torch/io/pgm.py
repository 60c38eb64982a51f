"""8-bit PGM preview image, byte for byte as the C program writes it."""
import numpy as np

from .atomic import atomic_open
from .smv import _c_cast, _roi_only, c_g


def auto_pgm_scale(intfile_scale, rmsd):
    """The C's scale when -pgmscale is not given: 250/(5 rmsd), else the int-image scale."""
    return 250.0 / (5.0 * rmsd) if rmsd > 0.0 else intfile_scale


def pgm_bytes(float_image, pgm_scale, roi):
    """P5 header + (unsigned char)min(pixel*scale, 255) per pixel; 0 outside the inclusive ROI."""
    img = np.asarray(float_image, dtype=np.float32)
    test = img.astype(np.float64) * float(pgm_scale)
    test = np.where(test > 255.0, 255.0, test)
    pixels = _roi_only(_c_cast(test, 0xFF).astype(np.uint8), roi)
    spixels, fpixels = img.shape
    header = "P5\n%d %d\n# pixels scaled by %s\n255\n" % (fpixels, spixels, c_g(pgm_scale))
    return header.encode("ascii") + pixels.tobytes()


def write_pgm(path, float_image, pgm_scale, roi):
    data = pgm_bytes(float_image, pgm_scale, roi)
    with atomic_open(path, "wb") as handle:
        handle.write(data)
