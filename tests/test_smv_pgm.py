"""SMV/PGM/float writers and the SMV reader, checked against fabio and the golden C outputs."""
import gzip
import json
import os

import numpy as np
import pytest

from nanobrag_torch.errors import InputFileError
from nanobrag_torch.io import floatimage, pgm, smv

from conftest import GOLDEN

FIELDS = dict(SIZE1=256, SIZE2=256, PIXEL_SIZE=0.1, DISTANCE=100, WAVELENGTH=6.2,
              BEAM_CENTER_X=12.85, BEAM_CENTER_Y=12.85, ADXV_CENTER_X=12.9, ADXV_CENTER_Y=12.7,
              MOSFLM_CENTER_X=12.85, MOSFLM_CENTER_Y=12.85, DENZO_X_BEAM=12.9, DENZO_Y_BEAM=12.9,
              DIALS_ORIGIN=(-12.9, 12.9, -100), XDS_ORGX=129.5, XDS_ORGY=129.5,
              CLOSE_DISTANCE=100, PHI=0, OSC_START=0, OSC_RANGE=0, TWOTHETA=0)


def golden_dir():
    return str(GOLDEN)


def need_golden():
    if not os.path.isfile(os.path.join(golden_dir(), "cases.json")):
        pytest.skip(f"golden suite not found at {golden_dir()} (set NB_GOLDEN_DIR)")
    return golden_dir()


def gz(*parts):
    return gzip.open(os.path.join(golden_dir(), *parts)).read()


def test_header_layout():
    head = smv.smv_header(FIELDS)
    assert len(head) == 512
    assert head.startswith(b"{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\n")
    assert b"DIALS_ORIGIN=-12.9,12.9,-100\nXDS_ORGX=129.5;" in head
    assert b"BEAMLINE=fake;\n}\f " in head and head.endswith(b" ")


def test_header_identical_to_golden():
    need_golden()
    assert smv.smv_header(FIELDS) == gz("noise_seed", "noise.img.gz")[:512]
    assert smv.smv_header(FIELDS) == gz("noise_seed", "int.img.gz")[:512]


def test_write_read_roundtrip_with_fabio(tmp_path):
    import fabio  # a declared dependency: its absence must fail, not skip

    fields = dict(FIELDS, SIZE1=7, SIZE2=5, PIXEL_SIZE=0.172, DISTANCE=231.27466, WAVELENGTH=0.9768,
                  BEAM_CENTER_X=22.1, BEAM_CENTER_Y=11.25)
    data = (np.arange(35, dtype=np.uint16).reshape(5, 7) * 1000 + 7)
    path = tmp_path / "x.img"
    smv.write_smv(path, fields, data)
    assert path.stat().st_size == 512 + 2 * 35
    img = fabio.open(str(path))
    assert np.array_equal(img.data, data)
    h = img.header
    assert int(h["SIZE1"]) == 7 and int(h["SIZE2"]) == 5
    for key, value in [("DISTANCE", 231.275), ("PIXEL_SIZE", 0.172), ("WAVELENGTH", 0.9768),
                       ("BEAM_CENTER_X", 22.1), ("BEAM_CENTER_Y", 11.25)]:
        assert float(h[key]) == value
    mine = smv.read_smv(path)
    assert np.array_equal(mine.data, data) and (mine.width, mine.height) == (7, 5)
    # C ValueOf quirks: last substring occurrence wins.
    assert mine.value("DISTANCE") == 100.0  # from CLOSE_DISTANCE, the last match
    assert mine.value("ORGX") == 129.5
    assert mine.value("DIALS_ORIGIN") == -12.9
    assert mine.value("NOT_THERE") is None


def test_read_big_endian_fixture():
    need_golden()
    little = smv.read_smv(os.path.join(golden_dir(), "fixtures", "mask.img"))
    big = smv.read_smv(os.path.join(golden_dir(), "fixtures", "mask_big_endian.img"))
    assert np.array_equal(little.data, big.data) and big.data.shape == (120, 160)


def test_c_atof():
    assert smv.c_atof("  12.5mm") == 12.5
    assert smv.c_atof("-3e2;") == -300.0
    assert smv.c_atof("abc") == 0.0
    assert smv.c_atof(".5") == 0.5
    assert smv.c_atof("1e") == 1.0


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    (b"hello world", "not an SMV"),
    (b"{\nHEADER_BYTES=abc;\n}", "HEADER_BYTES"),
    (b"{\nHEADER_BYTES=64;\nSIZE2=2;\n}".ljust(64, b" "), "SIZE1"),
    (b"{\nHEADER_BYTES=64;\nSIZE1=2;SIZE2=2;TYPE=float;\n}".ljust(64, b" ") + bytes(8), "TYPE"),
    (b"{\nHEADER_BYTES=64;\nSIZE1=2;SIZE2=2;\n}".ljust(64, b" ") + bytes(6), "truncated"),
    (b"{\nHEADER_BYTES=64;\nSIZE1=2;SIZE2=2;\n}".ljust(64, b" ") + bytes(10), "after"),
    (b"{\nHEADER_BYTES=64;\nSIZE1=2000000000;SIZE2=2000000000;\n}".ljust(64, b" "), "truncated"),
    (b"{\nHEADER_BYTES=4096;\n}", "shorter"),
])
def test_read_errors(tmp_path, content, message):
    path = tmp_path / "bad.img"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputFileError) as err:
        smv.read_smv(path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


def _cases():
    path = os.path.join(golden_dir(), "cases.json")
    if not os.path.isfile(path):
        return []
    return [c for c in json.load(open(path))["cases"]
            if c["id"] in ("cubic_basic", "scale_adc_pgm", "roi", "noise_seed", "water", "mask",
                           "detsize", "nonsquare", "triclinic_misset")]


def _opt(args, name, n=1, default=None):
    if name in args:
        i = args.index(name)
        return args[i + 1:i + 1 + n] if n > 1 else args[i + 1]
    return default


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["id"])
def test_int_image_identical_to_golden(case):
    ref = gz(case["id"], "int.img.gz")
    head = ref[:512].decode("latin-1")
    w, h = int(smv.header_value(head, "SIZE1")), int(smv.header_value(head, "SIZE2"))
    img = np.frombuffer(gz(case["id"], "float.bin.gz"), "<f4").reshape(h, w)
    args = case["args"]
    roi = [int(v) for v in _opt(args, "-roi", 4, [0, w, 0, h])]
    scale = _opt(args, "-scale")
    # stdout's intfile_scale is %g-rounded, so recompute it the way the C does.
    scale = float(scale) if scale else (55000.0 / float(img.max()) if img.max() > 0 else 1.0)
    out = smv.int_image(img, scale, float(_opt(args, "-adc", default=40.0)), roi)
    assert out.tobytes() == ref[512:]
    if "image.pgm" in case["outputs"]:
        assert pgm.pgm_bytes(img, float(_opt(args, "-pgmscale")), roi) == gz(case["id"], "image.pgm.gz")


def test_int_image_rounding_quirks():
    img = np.array([[-5.0, 1.49999, 2.4999999, 1e9, np.nan]], dtype=np.float32)
    out = smv.int_image(img, 1.0, 0.0, (0, 4, 0, 0))
    # floorf((float)(2.4999999+0.5)) == 3: the sum is rounded to float before floor.
    assert out.tolist() == [[0, 1, 3, 65535, 0]]


def test_pgm_and_auto_scale(tmp_path):
    img = np.array([[0.0, 10.0, 1000.0], [2.5, -1.0, 5.0]], dtype=np.float32)
    data = pgm.pgm_bytes(img, 2.0, (0, 1, 0, 1))
    assert data == b"P5\n3 2\n# pixels scaled by 2\n255\n" + bytes([0, 20, 0, 5, 254, 0])
    pgm.write_pgm(tmp_path / "a.pgm", img, 2.0, (0, 2, 0, 1))
    assert (tmp_path / "a.pgm").read_bytes().endswith(bytes([0, 20, 255, 5, 254, 10]))
    assert pgm.auto_pgm_scale(355.6, 12.5) == 250.0 / (5.0 * 12.5)
    assert pgm.auto_pgm_scale(355.6, 0.0) == 355.6


def test_float_image_roundtrip(tmp_path):
    img = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    path = tmp_path / "f.bin"
    floatimage.write_float_image(path, img)
    assert path.read_bytes() == img.astype("<f4").tobytes()
    assert np.array_equal(floatimage.read_float_image(path, 4, 3), img)
    with pytest.raises(InputFileError):
        floatimage.read_float_image(path, 5, 3)


def test_float_file_written_beside_the_integer_image_and_in_order_when_they_share_a_name(tmp_path, capsys):
    """The float file goes to disk on a thread while the integer image is made; named like the
    integer image it is written first and replaced by it, as nanoBragg.c's sequence leaves it."""
    from conftest import cli_in

    small = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "1", "-N", "2",
             "-distance", "100", "-detpixels", "16", "-nonoise", "-nopgm", "-noprogress"]
    status, _ = cli_in(tmp_path, small + ["-floatfile", "a.bin", "-intfile", "a.img"], capsys)
    assert status == 0
    floats = np.fromfile(tmp_path / "a.bin", dtype="<f4")
    assert floats.size == 16 * 16 and floats.max() > 0
    status, _ = cli_in(tmp_path, small + ["-floatfile", "same.img", "-intfile", "same.img"], capsys)
    assert status == 0
    assert (tmp_path / "same.img").read_bytes() == (tmp_path / "a.img").read_bytes()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
