"""nb-preview: a PNG preview (log-scaled greyscale) of a float, SMV, CBF or NeXus image.

    nb-preview IMAGE [OUT.png] [--size FAST SLOW] [--frame N] [--no-invert]

The format is recognized from the file's first bytes (SMV header, CBF magic, HDF5 signature;
anything else is raw little-endian 4-byte floats, as -floatfile writes them). The size comes from
the header, or for raw floats from the file length when the image is square (else give --size).
OUT defaults to IMAGE.png. The older form `python -m nanobrag_torch.preview IN FAST SLOW OUT` works too.
"""
import argparse
import os
import struct
import sys
import zlib

import numpy as np

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


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


def write_png(path, image, invert=True):
    from .io.atomic import atomic_write_bytes
    atomic_write_bytes(path, png_bytes(to_gray(image, invert)))


class PreviewError(Exception):
    pass


def read_image(path, size=None, frame=0):
    """The image as a 2-D float array (slow, fast), whatever the format (see module doc)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise PreviewError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head.startswith(b"{") and b"HEADER_BYTES" in head:
        from .io.smv import read_smv
        smv = read_smv(path)
        return np.asarray(smv.data, dtype=np.float64).reshape(smv.height, smv.width)
    if head.startswith(b"###CBF"):
        import fabio
        return np.asarray(fabio.open(path).data, dtype=np.float64)
    if head.startswith(HDF5_MAGIC):
        return _nexus_frame(path, frame)
    return _raw_floats(path, size)


def _raw_floats(path, size):
    data = np.fromfile(path, dtype="<f4")
    if size is None:
        side = round(data.size ** 0.5)
        if side * side != data.size or not data.size:
            raise PreviewError(f"{path}: {data.size} floats do not make a square image; give --size FAST SLOW")
        size = (side, side)
    fast, slow = size
    if fast * slow != data.size:
        raise PreviewError(f"{path}: {data.size} floats, not {fast} x {slow}")
    return data.reshape(slow, fast)


def _nexus_frame(path, frame):
    """Frame `frame` of the NXdata signal (default /entry/data/data) of a NeXus/HDF5 file."""
    import h5py
    import hdf5plugin  # noqa: F401  (registers the compression filters NXmx data uses)

    with h5py.File(path, "r") as f:
        data = f.get("entry/data/data")
        if data is None:
            found = []
            f.visititems(lambda name, obj: found.append(obj) if isinstance(obj, h5py.Dataset) and obj.ndim >= 2
                         else None)
            if not found:
                raise PreviewError(f"{path}: no image data set in this HDF5 file")
            data = found[0]
        if data.ndim == 2:
            return np.asarray(data[()], dtype=np.float64)
        if not 0 <= frame < data.shape[0]:
            raise PreviewError(f"{path}: frame {frame} out of range (0..{data.shape[0] - 1})")
        return np.asarray(data[frame], dtype=np.float64).reshape(data.shape[-2], data.shape[-1])


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise PreviewError(f"usage: {message} (nb-preview --help)")


def _parse(argv):
    legacy = len(argv) == 4 and all(a.isdigit() for a in argv[1:3])
    if legacy:  # IN FAST SLOW OUT
        return argparse.Namespace(image=argv[0], out=argv[3], size=(int(argv[1]), int(argv[2])), frame=0,
                                  invert=True)
    p = _Parser(prog="nb-preview", description=__doc__.split("\n\n")[0],
                epilog="Formats: raw <f4 floats (-floatfile), SMV (-intfile, -noisefile), CBF, NeXus/HDF5.")
    p.add_argument("image", help="float, SMV, CBF or NeXus image")
    p.add_argument("out", nargs="?", help="PNG to write (default IMAGE.png)")
    p.add_argument("--size", nargs=2, type=int, metavar=("FAST", "SLOW"), help="size of a raw float image")
    p.add_argument("--frame", type=int, default=0, help="frame of a NeXus series (default 0)")
    p.add_argument("--no-invert", dest="invert", action="store_false", help="bright spots on black")
    return p.parse_args(argv)


def main(argv=None):
    from .errors import NanoBraggError

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        opts = _parse(argv)
        image = read_image(opts.image, opts.size, opts.frame)
        out = opts.out or os.fspath(opts.image) + ".png"
        write_png(out, image, opts.invert)
    except (PreviewError, NanoBraggError, OSError, ValueError) as exc:
        print(f"nb-preview: error: {exc}", file=sys.stderr)
        return 2 if str(exc).startswith("usage:") else 1
    print(f"{out}: {image.shape[1]} x {image.shape[0]} preview")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
