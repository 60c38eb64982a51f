"""NeXus (NXmx) and miniCBF series read back with the community's readers: nxmx, h5py, fabio, pycbf."""
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fabio
import h5py
import numpy as np
import nxmx
import pycbf
import pytest

from nanobrag_torch import cli
from nanobrag_torch.io.smv import read_smv

BASE = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -lambda 1.2 -N 5 -distance 100 "
        "-detpixels_f 40 -detpixels_s 36 -pixel 0.5 -oversample 1 -phi 5 -osc 0.25 -phisteps 2 -seed 3 "
        "-detector_thick 320 -noprogress").split()
FRAMES = ["-frames", "3"]


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(args):
    out = io.StringIO()
    assert cli.run(list(args), out=out) == 0
    return out.getvalue()


def single_frame(k, extra=()):
    """-frame K: the ordinary single run of frame K (float image, noise image)."""
    run(BASE + list(extra) + FRAMES + ["-frame", str(k), "-floatfile", "k.bin", "-noisefile", "k.img", "-nopgm"])
    noise = read_smv("k.img").data if "-nonoise" not in extra else None
    return np.fromfile("k.bin", dtype="<f4").reshape(36, 40), noise


def test_nexus_series_reads_back_with_nxmx(work):
    report = run(BASE + FRAMES + ["-nexus", "s.nxs"])
    # the cell the simulation used, as its set-up report prints it (nanoBragg's misset quirk moves the angles)
    cell = [float(x) for x in report.split("Unit Cell:")[1].split("\n")[0].split()]
    with h5py.File("s.nxs", "r") as f:
        entry = nxmx.NXmx(f).entries[0]
        assert entry.definition == "NXmx"
        det = entry.instruments[0].detectors[0]
        assert det.distance.to("mm").magnitude == pytest.approx(100.0)
        assert det.sensor_material == "Si" and det.sensor_thickness.to("um").magnitude == pytest.approx(320)
        assert det.saturation_value == 65535
        module = det.modules[0]
        assert list(module.data_size) == [36, 40]
        origin = nxmx.get_cumulative_transformation(nxmx.get_dependency_chain(module.module_offset))[0, :3, 3]
        fast = module.fast_pixel_direction
        slow = module.slow_pixel_direction
        fast_mm = np.asarray(fast.vector) * fast[()].to("mm").magnitude[0]
        slow_mm = np.asarray(slow.vector) * slow[()].to("mm").magnitude[0]
        # nanoBragg's default (MOSFLM) geometry is DIALS's +x fast, -y slow: in McStas -x, -y
        np.testing.assert_allclose(fast_mm, [-0.5, 0, 0], atol=1e-12)
        np.testing.assert_allclose(slow_mm, [0, -0.5, 0], atol=1e-12)
        # the direct beam (McStas z axis) meets the detector at the beam centre, 100 mm away
        a, b = np.linalg.lstsq(np.stack([fast_mm[:2], slow_mm[:2]], 1), -origin[:2], rcond=None)[0]
        assert (a, b) == pytest.approx((det.beam_center_x.magnitude, det.beam_center_y.magnitude))
        assert origin[2] == pytest.approx(100.0)
        assert (a, b) == pytest.approx(((40 * 0.5 + 0.5) / 2 / 0.5 + 0.5, (36 * 0.5 + 0.5) / 2 / 0.5 + 0.5))
        beam = entry.instruments[0].beams[0]
        assert beam.incident_wavelength.to("angstrom").magnitude == pytest.approx(1.2)
        omega = entry.samples[0].depends_on
        assert omega.transformation_type == "rotation"
        np.testing.assert_allclose(omega[()].to("deg").magnitude, [5.0, 5.25, 5.5])
        np.testing.assert_allclose(omega.increment_set.to("deg").magnitude, [0.25] * 3)
        np.testing.assert_allclose(omega.vector, [-1, 0, 0])  # nanoBragg's spindle +z lab: DIALS +x
        cells = f["/entry/sample/unit_cell"][()]
        np.testing.assert_allclose(cells, [cell] * 3, rtol=1e-5)
        data = f["/entry/data/data"]
        assert data.shape == (3, 36, 40) and data.dtype == np.uint16 and data.chunks == (1, 36, 40)
        assert "32008" in data._filters  # bitshuffle (LZ4)
        assert f["/entry/program_name"].attrs["configuration"].startswith("nanoBragg -cell 70")
        assert list(f["/entry/nanobrag/frame_seeds"][()]) == [3, 4, 5]
        assert bool(f["/entry/nanobrag"].attrs["complete"])
        frames = data[()]
    for k in (0, 2):
        np.testing.assert_array_equal(frames[k], single_frame(k)[1])
    assert (work / "s.nxs.png").read_bytes().startswith(b"\x89PNG")


def test_nexus_nonoise_holds_float_photons(work):
    run(BASE + ["-nonoise"] + FRAMES + ["-nexus", "f.nxs"])
    with h5py.File("f.nxs", "r") as f:
        data = f["/entry/data/data"]
        assert data.dtype == np.float32
        np.testing.assert_array_equal(data[1], single_frame(1, ["-nonoise"])[0])


def test_cbf_series_reads_back_with_fabio_and_pycbf(work):
    run(BASE + FRAMES + ["-cbf", "c"])
    img = fabio.open("c_00002.cbf")
    np.testing.assert_array_equal(img.data, single_frame(1)[1])
    assert img.header["_array_data.header_convention"] == "GENERIC_MINI"
    text = img.header["_array_data.header_contents"]
    keys = {line.split()[1]: line.split()[2:] for line in text.splitlines() if line.startswith("# ")}
    assert keys["Wavelength"][0] == "1.2" and keys["Detector_distance"][0] == "0.1"
    assert keys["Start_angle"][0] == "5.250000" and keys["Angle_increment"][0] == "0.250000"
    assert keys["Pixel_size"][:4] == ["0.0005", "m", "x", "0.0005"] and keys["Count_cutoff"][0] == "65535"
    assert keys["Beam_xy"] == ["(21.000000,", "19.000000)", "pixels"]  # as in the NeXus test
    assert keys["Silicon"][2] == "0.000320" and keys["Noise_seed"] == ["4"]
    handle = pycbf.cbf_handle_struct()
    handle.read_file(b"c_00002.cbf", pycbf.MSG_DIGEST)
    handle.select_datablock(0)
    handle.find_category(b"array_data")
    handle.find_column(b"data")
    params = handle.get_integerarrayparameters_wdims_fs()
    assert params[0] == pycbf.CBF_BYTE_OFFSET and params[9:11] == [40, 36]
    raw = handle.get_integerarray_as_string()
    pixels = np.frombuffer(raw if isinstance(raw, bytes) else raw.encode("latin-1"), dtype="<i4").reshape(36, 40)
    np.testing.assert_array_equal(pixels, img.data)
    assert (work / "c.cbf.png").read_bytes().startswith(b"\x89PNG")


SRC = str(Path(__file__).resolve().parents[1] / "src")
SMALL = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -lambda 1 -N 5 -distance 100 -detpixels 24 "
         "-pixel 0.5 -oversample 1 -phi 0 -osc 0.2 -seed 9 -noprogress").split()


def test_sigterm_then_resume_gives_the_uninterrupted_data(work):
    """SIGTERM mid-run leaves valid files holding the finished frames; -resume completes them."""
    args = SMALL + ["-frames", "30", "-nexus", "s.nxs", "-cbf", "c"]
    env = dict(os.environ, PYTHONPATH=SRC, HDF5_USE_FILE_LOCKING="FALSE")
    proc = subprocess.Popen([sys.executable, "-m", "nanobrag_torch", *args], cwd=work, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (work / "c_00003.cbf").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    lines = [ln for ln in err.strip().splitlines() if "note:" not in ln]  # set-up notes may come first
    assert len(lines) == 1 and "-resume" in lines[0] and "Traceback" not in err
    with h5py.File(work / "s.nxs", "r") as f:
        done = f["/entry/data/data"].shape[0]
        assert 3 <= done < 30 and not f["/entry/nanobrag"].attrs["complete"]
        assert len(f["/entry/sample/transformations/omega"]) == done
    assert not list(work.glob(".*part"))  # no half-written frame files
    assert cli.main(args) == 2  # outputs exist: neither overwritten nor continued without -resume
    run(args + ["-resume"])
    run(SMALL + ["-frames", "30", "-nexus", "ref.nxs", "-cbf", "ref"])
    with h5py.File(work / "s.nxs", "r") as f, h5py.File(work / "ref.nxs", "r") as ref:
        np.testing.assert_array_equal(f["/entry/data/data"][()], ref["/entry/data/data"][()])
        np.testing.assert_array_equal(f["/entry/sample/transformations/omega"][()],
                                      ref["/entry/sample/transformations/omega"][()])
        assert f["/entry/nanobrag"].attrs["complete"]
    for k in (1, 29):
        np.testing.assert_array_equal(fabio.open(f"c_{k:05d}.cbf").data, fabio.open(f"ref_{k:05d}.cbf").data)


def test_resume_refuses_a_different_command(work, capsys):
    run(SMALL + ["-frames", "2", "-nexus", "s.nxs"])
    assert cli.main(SMALL + ["-frames", "2", "-nexus", "s.nxs", "-resume", "-distance", "120"]) == 2
    assert "different command" in capsys.readouterr().err


def test_cbf_names_outside_ascii(work):
    """A prefix with white space and non-ASCII letters still gives CBF files pycbf and fabio read."""
    run(SMALL + ["-frames", "1", "-cbf", "é x"])
    assert fabio.open("é x_00001.cbf").data.shape == (24, 24)
    handle = pycbf.cbf_handle_struct()
    handle.read_file("é x_00001.cbf".encode(), pycbf.MSG_DIGEST)
    handle.select_datablock(0)
    assert handle.datablock_name() == b"__x_00001"
