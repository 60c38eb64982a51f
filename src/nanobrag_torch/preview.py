"""Write a PNG preview of a float image (log-scaled greyscale): python -m nanobrag_torch.preview IN F S OUT."""
import struct
import sys
import zlib

import numpy as np


def png_bytes(gray):
    """Minimal 8-bit greyscale PNG encoder (no extra dependency)."""
    h, w = gray.shape
    raw = b"".join(b"\x00" + gray[r].tobytes() for r in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def to_gray(image, invert=True):
    img = np.log1p(np.clip(np.asarray(image, dtype=np.float64), 0, None))
    top = np.percentile(img, 99.9) if img.size else 0.0
    top = top if top > 0 else (img.max() or 1.0)
    g = np.clip(img / top * 255.0, 0, 255).astype(np.uint8)
    return 255 - g if invert else g


def write_png(path, image):
    from .io.atomic import atomic_write_bytes
    atomic_write_bytes(path, png_bytes(to_gray(image)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4:
        print("usage: python -m nanobrag_torch.preview FLOAT.bin FPIXELS SPIXELS OUT.png", file=sys.stderr)
        return 2
    src, f, s, out = argv[0], int(argv[1]), int(argv[2]), argv[3]
    data = np.fromfile(src, dtype="<f4").reshape(s, f)
    write_png(out, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
