"""Readers/writers for HKL, Fdump, MOSFLM matrix and source files."""
import shutil
import struct
import subprocess
import time

import numpy as np
import pytest

from nanobrag_torch.errors import InputFileError
from nanobrag_torch.io.hkl import HKLGrid, read_fdump, read_hkl, write_fdump
from nanobrag_torch.io.matrix import read_mosflm_matrix
from nanobrag_torch.io.sources import read_sources

from conftest import FIXTURES, needs_golden


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def raises_one_line(match, func, *args):
    with pytest.raises(InputFileError, match=match) as info:
        func(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


# ---------------------------------------------------------------- HKL text files

@needs_golden
def test_tri_hkl_ranges_and_values():
    grid = read_hkl(FIXTURES / "tri.hkl", 0.0)
    assert (grid.h_min, grid.h_max, grid.k_min, grid.k_max, grid.l_min, grid.l_max) == (-9, 9, -9, 9, -9, 9)
    assert grid.F.shape == (19, 19, 19) and grid.F.dtype == np.float64
    assert grid.count == 6859
    assert grid.F[0, 0, 0] == 39.307 and grid.F[0, 0, 1] == 175.091 and grid.F[0, 0, 2] == 150.799


@needs_golden
@pytest.mark.parametrize("name", ["phase.hkl", "sigma.hkl"])
def test_extra_columns_give_same_grid(name):
    ref = read_hkl(FIXTURES / "tri.hkl", 0.0)
    grid = read_hkl(FIXTURES / name, 0.0)
    assert np.array_equal(grid.F, ref.F) and grid.ranges == ref.ranges and grid.count == ref.count
    assert (grid.h_min, grid.k_min, grid.l_min) == (ref.h_min, ref.k_min, ref.l_min)


@needs_golden
def test_sparse_holes_get_default_F():
    grid = read_hkl(FIXTURES / "sparse.hkl", 10.0)
    assert grid.count == 1465 and grid.F.shape == (13, 13, 13)
    assert grid.F[0, 0, 0] == 231.266 and grid.F[0, 0, 2] == 10.0  # (-6,-6,-4) is absent
    assert np.count_nonzero(grid.F == 10.0) >= 13**3 - 1465


@needs_golden
@pytest.mark.parametrize("name", ["lyso.hkl", "interp.hkl"])
def test_large_hkl_reads_fast(name):
    start = time.perf_counter()
    grid = read_hkl(FIXTURES / name, 0.0)
    assert time.perf_counter() - start < 2.0
    assert grid.count == sum(1 for line in (FIXTURES / name).read_text().splitlines() if line.strip())


def test_hkl_comments_duplicates_and_extra_columns(tmp_path):
    path = write(tmp_path, "x.hkl", "# header\n\n 0 0 0 1.5 99 7\n1 0 -1 2.5  # note\n0 0 0 3.0\n")
    grid = read_hkl(path, 7.0)
    assert (grid.h_min, grid.h_max, grid.k_min, grid.k_max, grid.l_min, grid.l_max) == (0, 1, 0, 0, -1, 0)
    assert grid.count == 3
    assert grid.F.tolist() == [[[7.0, 3.0]], [[2.5, 7.0]]]  # later duplicate wins


@pytest.mark.parametrize("content, match", [
    ("0 0 0 1\nabc 1 2 3\n", r"x\.hkl line 2: non-numeric"),
    ("0 0 0 1\n1 2 3\n", r"x\.hkl line 2: expected 'h k l F'"),
    ("0 0 0 1\n\n0.5 0 0 1\n", r"x\.hkl line 3: non-integer index"),
    ("0 0 0 nan\n", r"x\.hkl line 1: non-finite F"),
    ("0 0 inf 1\n", r"x\.hkl line 1: non-integer index"),
    ("0 0 1e12 1\n", r"x\.hkl line 1: index out of range"),
    ("", r"x\.hkl: no reflections"),
    ("# only a comment\n\n", r"x\.hkl: no reflections"),
    ("-5000 0 0 1\n5000 0 -5000 1\n0 5000 5000 1\n", r"x\.hkl: index range 10001x5001x10001 .* too large"),
    (b"\x00\xff\x10garbage\n", r"x\.hkl line 1"),
])
def test_hkl_errors(tmp_path, content, match):
    raises_one_line(match, read_hkl, write(tmp_path, "x.hkl", content), 0.0)


def test_hkl_missing_file(tmp_path):
    raises_one_line(r"nope\.hkl: cannot read", read_hkl, tmp_path / "nope.hkl", 0.0)
    raises_one_line(r"cannot read", read_hkl, tmp_path, 0.0)


# ---------------------------------------------------------------- Fdump

def small_grid():
    F = np.arange(1, 3 * 4 * 2 + 1, dtype=np.float64).reshape(3, 4, 2) * 1.25
    return HKLGrid(F, -1, 1, 0, 3, -7, -6, 24)


def test_fdump_byte_layout(tmp_path):
    grid = small_grid()
    path = tmp_path / "Fdump.bin"
    write_fdump(path, grid)
    data = path.read_bytes()
    header = b"-1 1 0 3 -7 -6\n\f"
    assert data.startswith(header)
    assert len(data) == len(header) + 4 * 5 * 3 * 8
    body = np.frombuffer(data[len(header):], dtype=np.float64).reshape(4, 5, 3)
    assert np.array_equal(body[:3, :4, :2], grid.F)
    assert not body[3].any() and not body[:, 4].any() and not body[:, :, 2].any()  # zero padding planes
    back = read_fdump(path)
    assert np.array_equal(back.F, grid.F) and back.F.shape == (3, 4, 2)
    assert (back.h_min, back.h_max, back.k_min, back.k_max, back.l_min, back.l_max) == (-1, 1, 0, 3, -7, -6)
    assert back.count == 24
    assert [p.name for p in tmp_path.iterdir()] == ["Fdump.bin"]  # no temp file left behind


def test_fdump_first_value_looking_like_whitespace(tmp_path):
    # the C reader's header scan swallows such leading data bytes; ours must not
    grid = small_grid()
    grid.F[0, 0, 0] = struct.unpack("<d", b" " + struct.pack("<d", 39.307)[1:])[0]
    write_fdump(tmp_path / "Fdump.bin", grid)
    assert np.array_equal(read_fdump(tmp_path / "Fdump.bin").F, grid.F)


@needs_golden
@pytest.mark.parametrize("name, default_F", [("tri.hkl", 0.0), ("sparse.hkl", 3.0)])
def test_fdump_identical_to_c(tmp_path, c_bin, name, default_F):
    shutil.copy(FIXTURES / name, tmp_path / name)
    args = [c_bin, "-cell", "70", "80", "90", "75", "85", "95", "-hkl", name, "-default_F", str(default_F),
            "-N", "1", "-lambda", "1", "-distance", "100", "-detpixels", "4", "-nointerpolate", "-noprogress",
            "-nonoise", "-nopgm", "-floatfile", "f.bin", "-intfile", "i.img"]
    subprocess.run(args, cwd=tmp_path, capture_output=True, check=True, timeout=60)
    write_fdump(tmp_path / "mine.bin", read_hkl(tmp_path / name, default_F))
    assert (tmp_path / "mine.bin").read_bytes() == (tmp_path / "Fdump.bin").read_bytes()


def fdump_bytes(tmp_path):
    write_fdump(tmp_path / "good.bin", small_grid())
    return (tmp_path / "good.bin").read_bytes()


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d[:-8], "size is"),
    (lambda d: d[:40], "size is"),
    (lambda d: d + b"\0", "size is"),
    (lambda d: b"", "no header"),
    (lambda d: d[:16], "size is"),
    (lambda d: d.replace(b"\f", b" ", 1), "no header|bad header|size"),
    (lambda d: b"-1 1 0 3 -7\n\f" + d[16:], "bad header"),
    (lambda d: b"-1 1 0 3 -7 x\n\f" + d[16:], "bad header"),
    (lambda d: b"1 -1 0 3 -7 -6\n\f" + d[16:], "min > max"),
    (lambda d: b"-1 1 0 3 -7 -6 5\n\f" + d[16:], "bad header"),
    (lambda d: b"0 2000000000 0 2000000000 0 2000000000\n\f" + d[16:], "size is"),
    (lambda d: bytes(range(256)) * 4, "no header|bad header"),
    (lambda d: d[:16] + b"\xff" * 8 + d[24:], "non-finite"),
])
def test_fdump_corrupt(tmp_path, mutate, match):
    path = write(tmp_path, "Fdump.bin", mutate(fdump_bytes(tmp_path)))
    start = time.perf_counter()
    message = raises_one_line(match, read_fdump, path)
    assert message.startswith(f"corrupt {path}")
    assert time.perf_counter() - start < 1.0


def test_fdump_missing(tmp_path):
    raises_one_line("cannot read", read_fdump, tmp_path / "Fdump.bin")


# ---------------------------------------------------------------- MOSFLM matrix

@needs_golden
@pytest.mark.parametrize("name, first_row", [
    ("A.mat", [-0.02837711, -0.00305386, 0.02535816]),
    ("lyso.mat", [0.00577462, -0.01115065, -0.00303089]),
    ("mono.mat", [-0.02134529, 0.00175511, -0.00670021]),
])
def test_matrix_fixtures(name, first_row):
    m = read_mosflm_matrix(FIXTURES / name)
    assert m.shape == (3, 3) and m.dtype == np.float64
    assert m[0].tolist() == first_row


def test_matrix_layout_and_trailing_lines(tmp_path):
    path = write(tmp_path, "m.mat", "1 2 3\n4 5 7\n\t8 10 9 \n0 0 0\n junk words here\n")
    assert read_mosflm_matrix(path).tolist() == [[1, 2, 3], [4, 5, 7], [8, 10, 9]]
    path = write(tmp_path, "m.mat", "1 2 3 4 5 7 8 10 9\n")  # C's fscanf does not care about line breaks
    assert read_mosflm_matrix(path)[2].tolist() == [8, 10, 9]


@pytest.mark.parametrize("content, match", [
    ("", "expected 9 numbers, found 0"),
    ("1 2 3\n4 5 6\n7 8\n", "expected 9 numbers, found 8"),
    ("1 2 3\n4 x 6\n7 8 9\n", r"m\.mat line 2: non-numeric"),
    ("1 2 3\n4 5 6\n7 8 inf\n", "non-finite"),
    ("1 2 3\n4 5 6\n7 8 9\n", "singular"),
    ("0 0 0\n0 0 0\n0 0 0\n", "singular"),
    (b"\x89PNG\r\n\x1a\n", "non-numeric"),
])
def test_matrix_errors(tmp_path, content, match):
    raises_one_line(match, read_mosflm_matrix, write(tmp_path, "m.mat", content))


def test_matrix_missing(tmp_path):
    raises_one_line("cannot read", read_mosflm_matrix, tmp_path / "m.mat")


# ---------------------------------------------------------------- source lists

@needs_golden
def test_sources_fixtures():
    s = read_sources(FIXTURES / "sources3.txt")
    assert s.shape == (3, 5) and s[1].tolist() == [-10.0, 0.02, 0.0, 1.0, 6.1e-10]
    s = read_sources(FIXTURES / "sources_xyz.txt")
    assert s.shape == (4, 5) and np.isnan(s[:, 3:]).all() and s[2, :3].tolist() == [-10.0, 0.0, -0.015]
    s = read_sources(FIXTURES / "two_sources_weighted.txt")
    assert s.shape == (2, 5) and s[:, 3].tolist() == [1.0, 0.2]


def test_sources_separators_and_columns(tmp_path):
    path = write(tmp_path, "s.txt", "  # comment\n1,2;3:4!5 6 7\n\n\t-1\t2\n  ,  \n8 9 # trailing\n")
    s = read_sources(path)
    assert s.shape == (3, 5)
    assert s[0].tolist() == [1, 2, 3, 4, 5]
    assert s[1, :2].tolist() == [-1, 2] and np.isnan(s[1, 2:]).all()
    assert s[2, :2].tolist() == [8, 9]


@pytest.mark.parametrize("content, match", [
    ("", "no sources"),
    ("# just a comment\n\n", "no sources"),
    ("1 2 3\n1 two 3\n", r"s\.txt line 2: non-numeric"),
    ("1 2 3 inf\n", r"s\.txt line 1: infinite"),
])
def test_sources_errors(tmp_path, content, match):
    raises_one_line(match, read_sources, write(tmp_path, "s.txt", content))


def test_sources_missing(tmp_path):
    raises_one_line("cannot read", read_sources, tmp_path / "s.txt")
