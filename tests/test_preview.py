"""nb-preview: float, SMV, CBF and NeXus images to PNG, size inferred, --help."""
import struct
import subprocess
import sys
import zlib

import h5py
import numpy as np
import pytest

from nanobrag_torch import preview
from nanobrag_torch.datasets.cbf import minicbf_bytes

FAST, SLOW = 12, 8


def image(square=False):
    slow, fast = (FAST, FAST) if square else (SLOW, FAST)
    img = np.zeros((slow, fast))
    img[3, 5] = 1000.0  # one bright pixel
    return img


def read_png(path):
    """(width, height, pixels) of an 8-bit greyscale PNG written without filters."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8:start - 4])[0]
    raw = np.frombuffer(zlib.decompress(data[start:start + length]), np.uint8).reshape(height, width + 1)
    return width, height, raw[:, 1:]


def check(path, shape):
    width, height, pixels = read_png(path)
    assert (height, width) == shape
    assert np.unravel_index(np.argmin(pixels), pixels.shape) == (3, 5)  # the spot is darkest (inverted)


def test_raw_floats_square_size_inferred(tmp_path):
    image(square=True).astype("<f4").tofile(tmp_path / "f.bin")
    assert preview.main([str(tmp_path / "f.bin")]) == 0
    check(tmp_path / "f.bin.png", (FAST, FAST))


def test_raw_floats_need_size_unless_square(tmp_path, capsys):
    image().astype("<f4").tofile(tmp_path / "f.bin")
    assert preview.main([str(tmp_path / "f.bin")]) == 1
    assert "--size FAST SLOW" in capsys.readouterr().err
    assert preview.main([str(tmp_path / "f.bin"), str(tmp_path / "o.png"), "--size", str(FAST), str(SLOW)]) == 0
    check(tmp_path / "o.png", (SLOW, FAST))
    assert preview.main([str(tmp_path / "f.bin"), str(FAST), str(SLOW), str(tmp_path / "legacy.png")]) == 0
    check(tmp_path / "legacy.png", (SLOW, FAST))


def test_smv(tmp_path):
    header = ("{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
              f"SIZE1={FAST};\nSIZE2={SLOW};\nPIXEL_SIZE=0.1;\n}}\f").encode()
    (tmp_path / "i.img").write_bytes(header.ljust(512, b" ") + image().astype("<u2").tobytes())
    assert preview.main([str(tmp_path / "i.img"), str(tmp_path / "i.png")]) == 0
    check(tmp_path / "i.png", (SLOW, FAST))


def test_cbf(tmp_path):
    (tmp_path / "i.cbf").write_bytes(minicbf_bytes("i", "# Detector: test\r\n", image()))
    assert preview.main([str(tmp_path / "i.cbf"), str(tmp_path / "i.png")]) == 0
    check(tmp_path / "i.png", (SLOW, FAST))


def test_nexus_frame(tmp_path):
    frames = np.stack([np.zeros((SLOW, FAST)), image()])
    with h5py.File(tmp_path / "s.nxs", "w") as f:
        f.create_dataset("entry/data/data", data=frames.astype(np.int32))
    assert preview.main([str(tmp_path / "s.nxs"), str(tmp_path / "s.png"), "--frame", "1"]) == 0
    check(tmp_path / "s.png", (SLOW, FAST))
    assert preview.main([str(tmp_path / "s.nxs"), str(tmp_path / "s.png"), "--frame", "5"]) == 1


def test_help_and_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        preview.main(["--help"])
    assert exc.value.code == 0 and "nb-preview" in capsys.readouterr().out
    assert preview.main([]) == 2


def test_console_script_help():
    script = [sys.executable, "-c", "import sys; from nanobrag_torch.preview import main; sys.exit(main())", "--help"]
    proc = subprocess.run(script, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "--size FAST SLOW" in proc.stdout
