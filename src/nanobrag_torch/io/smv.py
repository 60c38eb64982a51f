"""SMV (ADSC) images: the header text the C program writes, reading with its keyword quirks,
and the float -> unsigned 16-bit conversion of the integer image."""
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputFileError
from .atomic import atomic_open

HEADER_BYTES = 512


def c_g(value):
    """printf("%g") as glibc prints it (Python agrees except for the sign of NaN)."""
    value = float(value)
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return "%g" % value


def smv_header(fields):
    """The header bytes for `fields` (already in header units: mm, Angstrom, degrees).

    Keys: SIZE1 SIZE2 PIXEL_SIZE DISTANCE WAVELENGTH BEAM_CENTER_X/Y ADXV_CENTER_X/Y
    MOSFLM_CENTER_X/Y DENZO_X_BEAM DENZO_Y_BEAM DIALS_ORIGIN (3 values) XDS_ORGX XDS_ORGY
    CLOSE_DISTANCE PHI OSC_START OSC_RANGE TWOTHETA."""
    g = {k: (v if k in ("SIZE1", "SIZE2", "DIALS_ORIGIN") else c_g(v)) for k, v in fields.items()}
    dials = ",".join(c_g(v) for v in fields["DIALS_ORIGIN"])
    text = (
        "{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
        f"SIZE1={int(fields['SIZE1'])};\nSIZE2={int(fields['SIZE2'])};\n"
        f"PIXEL_SIZE={g['PIXEL_SIZE']};\nDISTANCE={g['DISTANCE']};\n"
        f"WAVELENGTH={g['WAVELENGTH']};\n"
        f"BEAM_CENTER_X={g['BEAM_CENTER_X']};\nBEAM_CENTER_Y={g['BEAM_CENTER_Y']};\n"
        f"ADXV_CENTER_X={g['ADXV_CENTER_X']};\nADXV_CENTER_Y={g['ADXV_CENTER_Y']};\n"
        f"MOSFLM_CENTER_X={g['MOSFLM_CENTER_X']};\nMOSFLM_CENTER_Y={g['MOSFLM_CENTER_Y']};\n"
        f"DENZO_X_BEAM={g['DENZO_X_BEAM']};\nDENZO_Y_BEAM={g['DENZO_Y_BEAM']};\n"
        f"DIALS_ORIGIN={dials}\n"  # the C writes no ';' here
        f"XDS_ORGX={g['XDS_ORGX']};\nXDS_ORGY={g['XDS_ORGY']};\n"
        f"CLOSE_DISTANCE={g['CLOSE_DISTANCE']};\n"
        f"PHI={g['PHI']};\nOSC_START={g['OSC_START']};\nOSC_RANGE={g['OSC_RANGE']};\n"
        f"TWOTHETA={g['TWOTHETA']};\n"
        "DETECTOR_SN=000;\nBEAMLINE=fake;\n}\f"
    ).encode("ascii")
    # The C pads with spaces up to 512 bytes (and would not truncate a longer text).
    return text + b" " * max(0, HEADER_BYTES - len(text))


def write_smv(path, header_fields, image_u16):
    """Write header + little-endian uint16 pixels (slow, fast) atomically."""
    data = np.ascontiguousarray(image_u16, dtype="<u2")
    with atomic_open(path, "wb") as handle:
        handle.write(smv_header(header_fields))
        handle.write(data.tobytes())


def keyed_header(items, type_name="unsigned_short"):
    """A 512-byte header with the given (KEY, text) items, as nonBragg and noisify write theirs."""
    body = "".join(f"{key}={text};\n" for key, text in items)
    text = ("{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=%s;\n" % type_name + body
            + "DETECTOR_SN=000;\nBEAMLINE=fake;\n}\f").encode("ascii")
    return text + b" " * max(0, HEADER_BYTES - len(text))


def write_raw_smv(path, header, pixels):
    """Write header bytes + little-endian pixels (uint16 or uint32) atomically."""
    data = np.ascontiguousarray(pixels)
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    with atomic_open(path, "wb") as handle:
        handle.write(header)
        handle.write(data.tobytes())


_C_SPACE = " \t\n\v\f\r"
_NUMBER = re.compile(
    r"[+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?"
    r"|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    r"|(?i:inf(?:inity)?|nan(?:\([0-9A-Za-z_]*\))?))"
)


def c_atof(text):
    """C atof(): value of the longest numeric prefix after leading white space, else 0.0."""
    match = _NUMBER.match(text.lstrip(_C_SPACE))
    if not match:
        return 0.0
    token = match.group(0)
    sign = -1.0 if token.startswith("-") else 1.0
    body = token.lstrip("+-")
    if body[:2] in ("0x", "0X"):
        if "p" not in body.lower():
            body += "p0"
        return sign * float.fromhex(body)
    if body.lower().startswith("nan"):
        return sign * float("nan")
    return sign * float(body)


@dataclass
class SMVImage:
    header: str
    header_bytes: int
    width: int
    height: int
    data: np.ndarray  # uint16, (height, width), native byte order

    def value(self, keyword):
        """C ValueOf(): the number after the '=' that follows the LAST occurrence of `keyword`
        anywhere in the header (substring match, so DISTANCE also hits CLOSE_DISTANCE);
        None if the keyword never occurs, 0.0 if no '=' or number follows."""
        return header_value(self.header, keyword)


def header_value(header, keyword):
    pos = header.rfind(keyword)
    if pos < 0:
        return None
    eq = header.find("=", pos + len(keyword))
    if eq < 0:
        return 0.0
    return c_atof(header[eq + 1:])


def _fail(path, why):
    raise InputFileError(f"{path}: {why}")


def read_smv(path):
    """Read an SMV image, validating it; errors are one-line InputFileError naming the file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(HEADER_BYTES)
            if not head.startswith(b"{") or b"HEADER_BYTES" not in head:
                _fail(path, "not an SMV image (no '{ ... HEADER_BYTES=' header)")
            text = _c_string(head)
            hb = header_value(text, "HEADER_BYTES")
            if hb is None or not math.isfinite(hb) or hb != int(hb) or hb <= 0:
                _fail(path, "HEADER_BYTES is not a positive integer")
            hb = int(hb)
            if hb > size:
                _fail(path, f"file is shorter ({size} bytes) than its HEADER_BYTES={hb}")
            handle.seek(0)
            text = _c_string(handle.read(hb))
            width = _dimension(path, text, "SIZE1")
            height = _dimension(path, text, "SIZE2")
            kind = _last_token(text, "TYPE=")
            if kind is not None and kind != "unsigned_short":
                _fail(path, f"TYPE={kind} is not supported (only unsigned_short)")
            expected = hb + 2 * width * height
            if size < expected:
                _fail(path, f"truncated: {size} bytes, header + {width}x{height} pixels need {expected}")
            if size > expected:
                _fail(path, f"{size - expected} bytes after the {width}x{height} pixels: "
                            "SIZE1/SIZE2 disagree with the file size")
            raw = handle.read(2 * width * height)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    order = _last_token(text, "BYTE_ORDER=")
    # As the C: anything but little_endian means big-endian data.
    dtype = "<u2" if order is None or order.startswith("little_end") else ">u2"
    data = np.frombuffer(raw, dtype=dtype).reshape(height, width).astype(np.uint16)
    return SMVImage(text, hb, width, height, data)


def _c_string(raw):
    """Header bytes as the C sees them: a NUL-terminated string."""
    return raw.split(b"\0", 1)[0].decode("latin-1")


def _last_token(text, key):
    pos = text.rfind(key)
    if pos < 0:
        return None
    return re.split(r"[;\s]", text[pos + len(key):], maxsplit=1)[0]


def _dimension(path, text, key):
    value = header_value(text, key)
    if value is None:
        _fail(path, f"header has no {key}")
    if not math.isfinite(value) or value != int(value) or value < 1:
        _fail(path, f"{key} is not a positive integer")
    return int(value)


def int_image(float_image, scale, adc, roi):
    """The C integer image: floorf(clip(pixel*scale + adc, 0, 65535) + 0.5) inside the ROI.

    The sum is in double; the C `floorf` first rounds test+0.5 to float.  roi is
    (xmin, xmax, ymin, ymax) inclusive; outside it pixels stay 0."""
    img = np.asarray(float_image, dtype=np.float32)
    out = np.empty(img.shape, dtype=np.uint16)
    # a block of rows at a time: the double-precision temporaries stay small whatever the detector
    rows = max(1, (1 << 18) // max(1, img.shape[-1])) if img.ndim > 1 else max(1, img.shape[0])
    for r in range(0, img.shape[0], rows):
        test = img[r:r + rows].astype(np.float64)
        test *= float(scale)
        test += float(adc)
        np.minimum(test, 65535.0, out=test)  # NaN passes through as in the C
        np.maximum(test, 0.0, out=test)
        test += 0.5
        rounded = test.astype(np.float32)
        np.floor(rounded, out=rounded)
        # now 0..65535 or NaN, which the C's cast turns into 0 (as _c_cast does)
        rounded[np.isnan(rounded)] = 0.0
        out[r:r + rows] = rounded.astype(np.uint16)
    return _roi_only(out, roi)


def _c_cast(values, mask):
    """C conversion of doubles to an unsigned narrow type on x86-64: via int32, keep low bits;
    NaN and out-of-int32-range values give 0."""
    ok = (values > -2147483648.0) & (values < 2147483648.0)
    as_int = np.where(ok, values, 0.0).astype(np.int64)
    return as_int & mask


def _roi_only(image, roi):
    x0, x1, y0, y1 = (int(v) for v in roi)
    if x0 <= 0 and y0 <= 0 and x1 >= image.shape[-1] - 1 and y1 >= image.shape[0] - 1:
        return image  # the whole image: nothing to clear
    out = np.zeros_like(image)
    s0, f0 = max(y0, 0), max(x0, 0)
    if y1 >= s0 and x1 >= f0:
        out[s0:y1 + 1, f0:x1 + 1] = image[s0:y1 + 1, f0:x1 + 1]
    return out
