"""Raw float image: little-endian float32, fast index varying fastest, no header."""
import os

import numpy as np

from ..errors import InputFileError
from .atomic import atomic_open


def write_float_image(path, image):
    data = np.ascontiguousarray(image, dtype="<f4")
    with atomic_open(path, "wb") as handle:
        handle.write(memoryview(data).cast("B"))  # no second copy of the image


def read_float_image(path, fpixels, spixels):
    """(spixels, fpixels) float32 array from a raw file that must hold exactly that many pixels."""
    path = os.fspath(path)
    need = 4 * int(fpixels) * int(spixels)
    try:
        size = os.path.getsize(path)
        if size != need:
            raise InputFileError(
                f"{path}: {size} bytes, but {fpixels}x{spixels} float pixels need {need}")
        with open(path, "rb") as handle:
            raw = handle.read(need)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return np.frombuffer(raw, dtype="<f4").reshape(int(spixels), int(fpixels)).astype(np.float32)
