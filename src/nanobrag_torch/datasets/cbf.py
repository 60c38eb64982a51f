"""-cbf PREFIX: one miniCBF per frame (PREFIX_00001.cbf ...), byte-offset compressed.

The header follows the Pilatus miniCBF layout with `_array_data.header_convention "GENERIC_MINI"`
and the keys dxtbx's FormatCBFMini reads (Detector_distance, Beam_xy in pixels along fast/slow,
Wavelength, Pixel_size, Count_cutoff, Exposure_period, Start_angle, Angle_increment, the sensor
line). That format assumes a detector normal to the beam with fast = +x and slow = -y in DIALS's
frame, which is nanoBragg's default (MOSFLM) geometry; the NeXus output describes any geometry.
Pixels: the noise image (-noisefile), with -nonoise the scaled integer image (-intfile).
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import os
import shlex

import numpy as np
from fabio.compression import compByteOffset, decByteOffset

from ..io.atomic import atomic_write_bytes
from ..settings import RTD
from .meta import program_version
from .smv import PerFrameFiles, integer_image

CBF_MARKER = b"\x0c\x1a\x04\xd5"
PADDING = 4095


def _printable(text: str) -> str:
    """CIF header text is ASCII: other characters (control, non-ASCII in file names) become '?'."""
    return "".join(c if c.isprintable() and c.isascii() else "?" for c in text)


def _wrapped(key: str, text: str, width: int = 78) -> list:
    """'# key text' over as many lines as CIF's 80-character limit needs (each starting '# key')."""
    lines, line = [], ""
    for word in _printable(text).split(" "):
        if line and len(key) + len(line) + len(word) + 4 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [f"# {key} {chunk}" for chunk in lines + [line]]


def minicbf_header(result, command) -> str:
    """The `_array_data.header_contents` lines of a frame."""
    v, frame = result.settings, result.frame
    ps = v.pixel_size
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    lines = [
        "# Detector: nanoBragg simulation, S/N 0",
        f"# {stamp}",
        f"# Pixel_size {ps:g} m x {ps:g} m",
        f"# Silicon sensor, thickness {v.detector_thick:f} m",
        f"# Exposure_time {v.exposure:.7f} s",
        f"# Exposure_period {v.exposure:.7f} s",
        "# Tau = 0 s",
        "# Count_cutoff 65535 counts",
        f"# Wavelength {v.lambda0 * 1e10:.10g} A",
        f"# Detector_distance {v.distance:.10g} m",
        f"# Beam_xy ({v.Fbeam / ps:.6f}, {v.Sbeam / ps:.6f}) pixels",
        f"# Start_angle {frame.phi_deg:.6f} deg.",
        f"# Angle_increment {v.osc * RTD:.6f} deg.",
        f"# Phi {frame.phi_deg:.6f} deg.",
        "# Oscillation_axis PHI",
        f"# Program nanobrag_torch {program_version()}",
        *_wrapped("Command_line", shlex.join(["nanoBragg", *command])),
        *_wrapped("Frame_args", shlex.join(frame.args)),
        f"# Noise_seed {frame.seed}",
        f"# Misset_seed {-v.misset_seed}",
        f"# Mosaic_seed {-v.mosaic_seed}",
    ]
    return "\r\n".join(lines)


def _block_name(name: str) -> str:
    """A CIF data block name: ASCII without white space."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in name) or "image"


def minicbf_bytes(name: str, header: str, pixels: np.ndarray) -> bytes:
    """A whole miniCBF file: header, MIME block and byte-offset data (signed 32-bit)."""
    data = np.ascontiguousarray(pixels, dtype=np.int32)
    packed = compByteOffset(data)
    md5 = base64.b64encode(hashlib.md5(packed).digest()).decode("ascii")
    slow, fast = data.shape
    text = (f"###CBF: VERSION 1.5, nanobrag_torch {program_version()}\r\n\r\n"
            f"data_{_block_name(name)}\r\n\r\n"
            "_array_data.header_convention \"GENERIC_MINI\"\r\n"
            "_array_data.header_contents\r\n;\r\n" + header + "\r\n;\r\n\r\n"
            "_array_data.data\r\n;\r\n--CIF-BINARY-FORMAT-SECTION--\r\n"
            "Content-Type: application/octet-stream;\r\n"
            "     conversions=\"x-CBF_BYTE_OFFSET\"\r\n"
            "Content-Transfer-Encoding: BINARY\r\n"
            f"X-Binary-Size: {len(packed)}\r\n"
            "X-Binary-ID: 1\r\n"
            "X-Binary-Element-Type: \"signed 32-bit integer\"\r\n"
            "X-Binary-Element-Byte-Order: LITTLE_ENDIAN\r\n"
            f"Content-MD5: {md5}\r\n"
            f"X-Binary-Number-of-Elements: {data.size}\r\n"
            f"X-Binary-Size-Fastest-Dimension: {fast}\r\n"
            f"X-Binary-Size-Second-Dimension: {slow}\r\n"
            f"X-Binary-Size-Padding: {PADDING}\r\n\r\n")
    tail = b"\x00" * PADDING + b"\r\n--CIF-BINARY-FORMAT-SECTION----\r\n;\r\n\r\n"
    return text.encode("ascii") + CBF_MARKER + packed + tail


def read_minicbf(path: str) -> np.ndarray:
    """The pixels of a miniCBF written here (for the contact sheet; tests use fabio and pycbf)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    head, _, body = raw.partition(CBF_MARKER)
    fields = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n") if ": " in line)
    fast, slow = int(fields["X-Binary-Size-Fastest-Dimension"]), int(fields["X-Binary-Size-Second-Dimension"])
    packed = body[:int(fields["X-Binary-Size"])]
    return np.asarray(decByteOffset(packed, fast * slow), dtype=np.int32).reshape(slow, fast)


class CBFSeries(PerFrameFiles):
    """-cbf PREFIX: PREFIX_00001.cbf ... (see the module docstring)."""

    ext = "cbf"
    option = "-cbf"

    def write(self, result) -> None:
        path = self.name(result.frame.index)
        stem = os.path.splitext(os.path.basename(path))[0]
        atomic_write_bytes(path, minicbf_bytes(stem, minicbf_header(result, self.argv), integer_image(result)))

    def read_frame(self, index: int) -> np.ndarray:
        return read_minicbf(self.name(index))
