"""Property tests of the command line: any argument list ends with exit 0 or a documented error
(one line, exit 1 or 2), never a traceback or an "internal error", never a hang, and a failed
run writes nothing."""
import contextlib
import os
import signal
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanobrag_torch import cli, setup
from nanobrag_torch.errors import InputFileError
from nanobrag_torch.io.smv import read_smv
from nanobrag_torch.options import OPTIONS

ARITY = {"cell": 6, "misset": 3}
NAMES = sorted(OPTIONS)


def smv(width, height, pixel="0.1"):
    header = ("{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE=unsigned_short;\n"
              f"SIZE1={width};\nSIZE2={height};\nPIXEL_SIZE={pixel};\nDISTANCE=100;\nWAVELENGTH=1;\n"
              "BEAM_CENTER_X=0.2;\nBEAM_CENTER_Y=0.2;\nPHI=0;\nOSC_RANGE=0;\n}\f").encode()
    return header.ljust(512, b" ") + b"\1\0" * (width * height)


FIXTURES = {
    "good.hkl": b"0 0 0 10\n1 0 0 5\n-1 2 3 7\n",
    "bad.hkl": b"0 0 x 10\n",
    "A.mat": b"-0.0283 -0.0030 0.0253\n-0.0287 0.0102 -0.0140\n0.0105 -0.0321 -0.0104\n",
    "src.txt": b"-10 0 0 1 1e-10\n-10 0.01 0 1 1.1e-10\n",
    "stol.txt": b"0.1 2\n0.2 3\n",
    "in.img": smv(4, 4),
    "mask.img": smv(4, 4),
    "big.img": smv(8, 6, pixel="0.05"),
    "bad.img": b"{\nHEADER_BYTES=512;\nSIZE1=4;\n}",
}
FILES = sorted(FIXTURES) + ["missing.file", "adir", "nodir/out.bin", ".", "Fdump.bin"]
SPECIAL = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "1e-400", "0", "-0", "0.0", "1e3", "5.0",
           "1_0", "0x10", "", " ", "+", "-", ".", "e", "\u0663", "2147483647", "2147483648", "-2147483649",
           "1e-320", "1e300", "-1e300"]
WORDS = ["rand", "random", "sample", "beam", "float32", "float64", "cpu", "cuda", "cuda:1", "auto", "--", "-x",
         "---lambda", "-detpixels_foo", "-hkl", "-lambda", "-h"]

WIDE_NUMBERS = st.one_of(st.integers(-3, 40).map(str), st.integers(-2**40, 2**40).map(str),
                         st.floats(allow_nan=True, allow_infinity=True).map(repr), st.sampled_from(SPECIAL))
WIDE_VALUES = st.one_of(WIDE_NUMBERS, st.sampled_from(FILES + WORDS), st.text(max_size=6))
# small magnitudes only (integers up to 6): an unstubbed run must stay quick
SMALL_VALUES = st.one_of(st.integers(-2, 6).map(str), st.sampled_from(
    ["0", "-1", "0.5", "1", "2.5", "44.5", "89.9", "120.5", "nan", "inf", "-inf", "abc", ""] + FILES + WORDS))


def items(values):
    @st.composite
    def option(draw):
        name = draw(st.sampled_from(NAMES))
        arity = ARITY.get(name, len(OPTIONS[name]))
        # mostly the right number of values, sometimes too few or one too many
        count = arity if draw(st.integers(0, 7)) else draw(st.integers(0, arity + 1))
        return ["-" + name] + [draw(values) for _ in range(count)]

    stray = st.lists(values, min_size=1, max_size=2)
    return st.one_of(option(), option(), option(), option(), stray)


def argv_lists(values, max_items):
    return st.lists(items(values), max_size=max_items).map(lambda groups: [t for g in groups for t in g])


class Hung(BaseException):
    """Raised by the alarm: not an Exception, so cli.main cannot turn it into an error message."""


class Reached(BaseException):
    """Raised by stubs: the command line got through everything before the stubbed stage."""


@contextlib.contextmanager
def limit_seconds(seconds):
    def alarm(signum, frame):
        raise Hung(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def run_cli(argv, capsys, seconds):
    """cli.main in a fresh folder holding the fixtures; returns (status, stderr, new files)."""
    threads = torch.get_num_threads()
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        for name, data in FIXTURES.items():
            Path(folder, name).write_bytes(data)
        Path(folder, "adir").mkdir()
        before = listing(folder)
        os.chdir(folder)
        try:
            with limit_seconds(seconds):
                status = cli.main(argv)
        except Reached:
            status = "reached"
        finally:
            os.chdir(old)
            torch.set_num_threads(threads)  # -nthreads changes the process
        new = sorted(set(listing(folder)) - set(before))
    err = capsys.readouterr().err
    return status, err, new


def check_outcome(status, err, argv):
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    assert status in (0, 1, 2, "reached"), (argv, status)
    if not argv and status == 2:
        assert err.startswith("usage: ")  # no arguments at all: the usage text
    elif status in (1, 2):
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nanoBragg: error: "), (argv, err)


FAST = settings(max_examples=500, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


def test_parser_fuzz(capsys):
    """Option validation, -img/-mask headers, C's substring rules and output checks (build stubbed)."""
    def stop(v, *args, **kwargs):
        raise Reached

    with mock.patch.object(setup, "build", stop), mock.patch.dict(os.environ, {"NANOBRAGG_DEBUG": ""}):
        @FAST
        @given(argv_lists(WIDE_VALUES, 8))
        def run(argv):
            if "--debug" in argv or "-debug" in argv:
                return
            status, err, new = run_cli(argv, capsys, 30)
            check_outcome(status, err, argv)
            assert status == "reached" or not new, (argv, new)

        run()


def test_setup_fuzz(capsys):
    """The physical checks and step-count logic with extreme numbers: everything up to reading the
    structure factors (stubbed) refuses bad values cleanly and allocates nothing huge."""
    def stop(*args, **kwargs):
        raise Reached

    real_make_sources = setup.make_sources

    def bounded_sources(v, say):
        if v.sourcefile is None and v.hdivsteps * v.vdivsteps * v.dispsteps > 10_000:
            raise Reached  # past every check, but a long job (the grid is built source by source)
        return real_make_sources(v, say)

    base = ["-cell", "50", "60", "70", "90", "90", "90", "-default_F", "1", "-detpixels", "4", "-noprogress"]
    with mock.patch.object(setup, "load_structure_factors", stop), \
            mock.patch.object(setup, "make_sources", bounded_sources), \
            mock.patch.dict(os.environ, {"NANOBRAGG_DEBUG": ""}):
        @settings(FAST, max_examples=300)
        @given(argv_lists(WIDE_NUMBERS, 5))
        def run(argv):
            status, err, new = run_cli(base + argv, capsys, 30)
            check_outcome(status, err, argv)
            assert not new, (argv, new)

        run()


def test_end_to_end_fuzz(capsys):
    """Nothing stubbed: tiny detector, small values; every run finishes quickly, and either writes
    complete images or nothing at all."""
    tail = ["-cell", "50", "60", "70", "80", "90", "100", "-default_F", "3", "-detpixels", "4", "-oversample", "1",
            "-floatfile", "f.bin", "-intfile", "i.img", "-noprogress"]
    with mock.patch.dict(os.environ, {"NANOBRAGG_DEBUG": ""}):
        @settings(FAST, max_examples=100)
        @given(argv_lists(SMALL_VALUES, 3))
        def run(argv):
            if "--debug" in argv or "-debug" in argv:
                return
            status, err, new = run_cli(argv + tail, capsys, 60)
            check_outcome(status, err, argv)
            if status == 0 and "-h" not in argv:
                assert {"f.bin", "i.img"} <= set(new), (argv, new)
            if status != 0:
                assert not new, (argv, new)

        run()


def test_smv_reader_fuzz():
    """read_smv on mutated and random files: an SMVImage consistent with the file, or InputFileError."""
    seeds = [smv(4, 4), smv(3, 5), smv(1, 1)]
    mutations = st.tuples(st.sampled_from(seeds), st.lists(st.tuples(
        st.sampled_from(["truncate", "insert", "delete", "flip", "replace"]), st.integers(0, 700),
        st.binary(min_size=1, max_size=12)), min_size=1, max_size=4))
    keys = st.sampled_from(["HEADER_BYTES", "SIZE1", "SIZE2", "TYPE", "BYTE_ORDER", "PIXEL_SIZE"])
    numbers = st.sampled_from(["0", "-1", "4", "5", "512", "1e9", "nan", "inf", "4.5", "", "x", "99999999999"])

    def mutate(seed_ops):
        data, ops = bytearray(seed_ops[0]), seed_ops[1]
        for op, pos, blob in ops:
            pos = min(pos, len(data))
            if op == "truncate":
                del data[pos:]
            elif op == "insert":
                data[pos:pos] = blob
            elif op == "delete":
                del data[pos:pos + len(blob)]
            elif op == "flip" and data:
                data[min(pos, len(data) - 1)] ^= blob[0] | 1
            elif op == "replace":
                data[pos:pos + len(blob)] = blob
        return bytes(data)

    def rewrite(args):
        data, key, value = args
        text = data[:512].decode("latin-1")
        start = text.find(key + "=")
        if start < 0:
            return data
        end = text.find(";", start)
        return (text[:start + len(key) + 1] + value + text[end:]).encode("latin-1") + data[512:]

    contents = st.one_of(mutations.map(mutate), st.tuples(st.sampled_from(seeds), keys, numbers).map(rewrite),
                         st.binary(max_size=700))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.img")

        @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(contents)
        def run(data):
            Path(path).write_bytes(data)
            try:
                with limit_seconds(5):
                    image = read_smv(path)
            except InputFileError as exc:
                assert str(exc) and "\n" not in str(exc)
                return
            assert image.width >= 1 and image.height >= 1
            assert image.data.shape == (image.height, image.width)
            assert len(data) == image.header_bytes + 2 * image.width * image.height

        run()


@pytest.mark.parametrize("argv", [["-nthreads", "100000"], ["-oversample", "2147483647"],
                                  ["-osc", "1e300", "-phistep", "1e-300"], ["-lambda", "1e-300"],
                                  ["-hdivrange", "1", "-hdivstep", "1e-300"], ["-samplesize", "1e303"],
                                  ["-detector_abs", "1e-320"]])
def test_extremes_found_by_fuzzing(argv, capsys):
    """Values that once crashed (segfault, overflow) or tried to allocate terabytes."""
    base = ["-cell", "50", "60", "70", "90", "90", "90", "-default_F", "1", "-detpixels", "4", "-noprogress"]
    status, err, new = run_cli(base + argv, capsys, 30)
    assert status == 2, err
    check_outcome(status, err, argv)
    assert argv[0] in err or "sampling terms" in err, err
    assert not new


def test_pixel_too_small_for_the_detector(capsys):
    argv = ["-cell", "50", "60", "70", "90", "90", "90", "-default_F", "1", "-detsize", "100", "-pixel", "1e-310"]
    status, err, new = run_cli(argv, capsys, 30)
    assert status == 2 and not new
    check_outcome(status, err, argv)
    assert "-pixel" in err and "2^31" in err
