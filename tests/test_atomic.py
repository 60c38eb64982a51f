"""Output files never destroy what they replace: FIFOs and devices are written in place, symlinks
are written through to their target, an existing file keeps its mode, folders are refused."""
import os
import stat
import threading

import pytest

from nanobrag_torch import cli
from nanobrag_torch.errors import InputFileError
from nanobrag_torch.io.atomic import atomic_open, atomic_write_bytes

from conftest import call_in

TINY_RUN = ["-cell", "50", "50", "50", "90", "90", "90", "-default_F", "10", "-detpixels", "8", "-noprogress",
            "-nonoise", "-nopgm"]
FLOAT_BYTES = 8 * 8 * 4


def _reader(path, sink):
    with open(path, "rb") as fifo:
        sink.append(fifo.read())


def _read_fifo_while(path, action):
    got = []
    reader = threading.Thread(target=_reader, args=(path, got), daemon=True)
    reader.start()
    result = action()
    reader.join(timeout=30)
    assert not reader.is_alive(), "the FIFO's reader never got end of file"
    return result, got[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_stays_a_fifo_and_its_reader_gets_the_bytes(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    _, data = _read_fifo_while(fifo, lambda: atomic_write_bytes(fifo, b"hello fifo"))
    assert data == b"hello fifo"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]  # no temporary file left behind


def test_symlink_stays_a_link_and_its_target_gets_the_data(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.bin"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    link = tmp_path / "link.bin"
    link.symlink_to(os.path.join("real", "data.bin"))
    atomic_write_bytes(link, b"new data")
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "data.bin")
    assert target.read_bytes() == b"new data"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path / "real")) == ["data.bin"]


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.bin"
    link.symlink_to("made.bin")
    atomic_write_bytes(link, b"x")
    assert link.is_symlink() and (tmp_path / "made.bin").read_bytes() == b"x"


def test_read_only_file_keeps_its_mode_or_is_refused(tmp_path):
    path = tmp_path / "ro.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o444)
    try:
        atomic_write_bytes(path, b"new")
    except InputFileError as exc:  # not root: refused, untouched
        assert "ro.bin" in str(exc) and "read-only" in str(exc)
        assert path.read_bytes() == b"old"
    else:  # root may write it: the content changes, the mode does not
        assert path.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444


def test_existing_file_keeps_its_mode(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_folder_is_refused(tmp_path):
    with pytest.raises(InputFileError, match="folder"):
        atomic_write_bytes(tmp_path, b"x")


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write(b"partial")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def _run(folder, argv):
    return call_in(folder, cli.main, argv)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_command_line_writes_through_fifo_and_symlink(tmp_path, capsys):
    os.mkfifo(tmp_path / "float.fifo")
    (tmp_path / "int_target.img").write_bytes(b"old")
    (tmp_path / "int.img").symlink_to("int_target.img")
    argv = TINY_RUN + ["-floatfile", "float.fifo", "-intfile", "int.img"]
    status, data = _read_fifo_while(tmp_path / "float.fifo", lambda: _run(tmp_path, argv))
    assert status == 0, capsys.readouterr().err
    assert len(data) == FLOAT_BYTES
    assert stat.S_ISFIFO(os.lstat(tmp_path / "float.fifo").st_mode)
    assert (tmp_path / "int.img").is_symlink()
    assert (tmp_path / "int_target.img").read_bytes()[:15] == b"{\nHEADER_BYTES="


def test_command_line_refuses_a_folder_output(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert _run(tmp_path, TINY_RUN + ["-floatfile", "out"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nanoBragg: error: out: ") and "folder" in err
