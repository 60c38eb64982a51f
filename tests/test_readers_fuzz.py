"""Property tests: mutated or random input files give a result or an InputFileError, quickly."""
import os
import re
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanobrag_torch.errors import InputFileError
from nanobrag_torch.io import hkl as hkl_module
from nanobrag_torch.io.hkl import HKLGrid, read_fdump, read_hkl, write_fdump
from nanobrag_torch.io.matrix import read_mosflm_matrix
from nanobrag_torch.io.sources import read_sources

from conftest import FIXTURES

FUZZ = settings(max_examples=500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def seeds(names, fallback, max_bytes=1500):
    """Fixture heads (whole lines) where the golden suite is present, plus inline samples."""
    out = [s.encode() for s in fallback]
    for name in names:
        path = FIXTURES / name
        if path.is_file():
            head = path.read_bytes()[:max_bytes]
            out.append(head[: head.rfind(b"\n") + 1] or head)
    return out


HKL_SEEDS = seeds(["tri.hkl", "phase.hkl", "sigma.hkl", "sparse.hkl"],
                  ["  -2 -1 0  39.307\n 0 0 0 12.5 -42.9 2.1\n# c\n\n 3 1 -1 7\n"])
MAT_SEEDS = seeds(["A.mat", "lyso.mat", "mono.mat"],
                  ["-0.0283 -0.0030 0.0253\n-0.0287 0.0102 -0.0140\n 0.0105 -0.0321 -0.0104\n 0 0 0\n"])
SRC_SEEDS = seeds(["sources3.txt", "sources_xyz.txt", "two_sources_weighted.txt"],
                  ["# X Y Z w lambda\n-10.0 0.0 0.0 1.0 6.2e-10\n-10,0.02;0:1!6.1e-10\n-10 0 -0.03\n"])

WEIRD_TOKENS = [b"nan", b"inf", b"-inf", b"1e999", b"-", b"+", b".", b"1.5", b"99999", b"-99999", b"2147483648",
                b"1e308", b"", b"#", b"x", b"\0", b"0x10", b"1_0", b",", b"\t", b"\f", b"\r", b"\n", b"\xc3\xa9",
                b"\xff", b"  ", b"-0", b"1e-320", b"!", b"3 4 5 6 7 8"]


@st.composite
def mutated(draw, seed_list):
    data = bytearray(draw(st.sampled_from(seed_list)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "insert", "delete", "token", "flip", "dupline"]))
        pos = draw(st.integers(0, len(data)))
        if op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "flip" and data:
            data[min(pos, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "dupline":
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\n", pos)
            data[start:start] = data[start:end + 1 if end >= 0 else len(data)]
        elif op == "token":
            tokens = list(re.finditer(rb"\S+", bytes(data)))
            if tokens:
                m = tokens[draw(st.integers(0, len(tokens) - 1))]
                data[m.start():m.end()] = draw(st.sampled_from(WEIRD_TOKENS))
    return bytes(data)


def contents(seed_list):
    text = st.text(alphabet="0123456789 -+.eE#\n\t,;:!xn", max_size=200).map(str.encode)
    return st.one_of(mutated(seed_list), st.binary(max_size=300), text)


def attempt(reader, path, data, *args):
    """Write `data`, call the reader; return its result, or None for an InputFileError."""
    with open(path, "wb") as handle:
        handle.write(data)
    start = time.perf_counter()
    try:
        result = reader(path, *args)
    except InputFileError as exc:
        assert "\n" not in str(exc) and str(exc)
        result = None
    assert time.perf_counter() - start < 2.0
    return result


def check_grid(grid):
    assert grid.F.shape == grid.ranges and grid.F.dtype == np.float64
    assert min(grid.ranges) >= 1 and np.isfinite(grid.F).all()


def test_hkl_fuzz():
    # a smaller cell limit keeps mutated indices (e.g. 99999) from allocating hundreds of MB per example
    with tempfile.TemporaryDirectory() as folder, mock.patch.object(hkl_module, "MAX_CELLS", 10**6):
        path = os.path.join(folder, "in.hkl")

        @FUZZ
        @given(contents(HKL_SEEDS), st.sampled_from([0.0, 3.5]))
        def run(data, default_F):
            grid = attempt(read_hkl, path, data, default_F)
            if grid is not None:
                check_grid(grid)
                assert grid.count >= 1 and grid.F.size <= 10**6

        run()


def test_fdump_fuzz():
    grids = [HKLGrid(np.arange(24, dtype=np.float64).reshape(2, 3, 4) + 0.5, -1, 0, 2, 4, -3, 0, 24)]
    if (FIXTURES / "sparse.hkl").is_file():
        grids.append(read_hkl(FIXTURES / "sparse.hkl", 1.0))
    with tempfile.TemporaryDirectory() as folder:
        seed_list = []
        for i, grid in enumerate(grids):
            write_fdump(os.path.join(folder, f"seed{i}.bin"), grid)
            seed_list.append(Path(folder, f"seed{i}.bin").read_bytes())
        headers = st.tuples(*[st.integers(-2**40, 2**40) | st.integers(-3, 3)] * 6).map(
            lambda t: " ".join(map(str, t)).encode() + b"\n\f")
        forged = st.tuples(headers, st.binary(max_size=600)).map(b"".join)
        path = os.path.join(folder, "Fdump.bin")

        @FUZZ
        @given(st.one_of(mutated(seed_list), forged, st.binary(max_size=300)))
        def run(data):
            grid = attempt(read_fdump, path, data)
            if grid is not None:
                check_grid(grid)
                assert grid.count == grid.F.size

        run()


def test_matrix_fuzz():
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "in.mat")

        @FUZZ
        @given(contents(MAT_SEEDS))
        def run(data):
            matrix = attempt(read_mosflm_matrix, path, data)
            if matrix is not None:
                assert matrix.shape == (3, 3) and np.isfinite(matrix).all() and np.linalg.det(matrix) != 0

        run()


def test_sources_fuzz():
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "sources.txt")

        @FUZZ
        @given(contents(SRC_SEEDS))
        def run(data):
            table = attempt(read_sources, path, data)
            if table is not None:
                assert table.ndim == 2 and table.shape[1] == 5 and table.shape[0] >= 1
                assert not np.isinf(table).any()

        run()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20), st.integers(-20, 20),
                          st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=50))
def test_hkl_and_fdump_roundtrip(entries):
    expected = {}
    for h, k, l, F in entries:
        expected[(h, k, l)] = F  # later duplicates win
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "in.hkl")
        with open(path, "w") as handle:
            handle.writelines(f"{h} {k} {l} {F!r}\n" for h, k, l, F in entries)
        grid = read_hkl(path, -1.0)
        assert grid.count == len(entries)
        for (h, k, l), F in expected.items():
            assert grid.F[h - grid.h_min, k - grid.k_min, l - grid.l_min] == F
        assert np.count_nonzero(grid.F == -1.0) >= grid.F.size - len(expected)
        write_fdump(os.path.join(folder, "Fdump.bin"), grid)
        back = read_fdump(os.path.join(folder, "Fdump.bin"))
        assert np.array_equal(back.F, grid.F) and back.ranges == grid.ranges
        assert (back.h_min, back.k_min, back.l_min) == (grid.h_min, grid.k_min, grid.l_min)
