"""A PNG contact sheet beside every dataset output: first, middle and last frames, log-scaled."""
from __future__ import annotations

import numpy as np

from ..preview import png_bytes, to_gray

SIDE = 256  # pixels per tile (frames are reduced by block maxima so spots stay visible)


def _tile(image: np.ndarray) -> np.ndarray:
    step = max(1, int(np.ceil(max(image.shape) / SIDE)))
    s, f = image.shape
    padded = np.zeros((-(-s // step) * step, -(-f // step) * step), dtype=np.float64)
    padded[:s, :f] = image
    return padded.reshape(padded.shape[0] // step, step, padded.shape[1] // step, step).max(axis=(1, 3))


def contact_sheet(images) -> bytes:
    """PNG bytes of the images side by side (each log-scaled on its own, dark spots on white)."""
    tiles = [to_gray(_tile(np.asarray(img, dtype=np.float64))) for img in images]
    height = max(t.shape[0] for t in tiles)
    gap = np.full((height, 4), 128, dtype=np.uint8)
    row = []
    for t in tiles:
        pad = np.full((height, t.shape[1]), 255, dtype=np.uint8)
        pad[:t.shape[0]] = t
        row += [pad, gap]
    return png_bytes(np.ascontiguousarray(np.concatenate(row[:-1], axis=1)))


def sheet_frames(count: int) -> list:
    return sorted({0, (count - 1) // 2, count - 1})


def write_contact_sheet(sinks, plan) -> None:
    """Each output writes its own sheet (OUTPUT.png) from its frames as stored."""
    from ..io.atomic import atomic_write_bytes

    for sink in sinks:
        images = [sink.read_frame(i) for i in sheet_frames(plan.count)]
        atomic_write_bytes(sink.sheet_name(), contact_sheet(images))
