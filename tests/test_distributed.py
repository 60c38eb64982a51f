"""Datasets on Dask workers (-workers N, -scheduler ADDRESS): the same pixels as one process,
whatever the cluster does. Every cluster is bound to 127.0.0.1, every wait is bounded, and every
process a test starts is killed at its end."""
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import h5py
import hdf5plugin  # noqa: F401  (the chunk files are bitshuffle-LZ4 compressed)
import numpy as np
import pytest

from nanobrag_torch import cli
from nanobrag_torch.io.smv import read_smv

BASE = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -lambda 1 -N 5 -distance 100 "
        "-detpixels 48 -pixel 0.4 -oversample 1 -phi 0 -osc 0.1 -phisteps 2 -mosaic 0.3 -mosaic_dom 5 "
        "-seed 7 -noprogress").split()
FRAMES = 8
RUN_TIMEOUT_S = 300  # a loaded 2-core machine starts Dask's processes slowly; a hang still ends


def series(out_args):
    return BASE + ["-frames", str(FRAMES)] + out_args


def nexus_pixels(path):
    with h5py.File(path, "r") as f:
        return f["/entry/data/data"][()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The in-process run: (NeXus pixels, SMV pixels, omega angles)."""
    folder = tmp_path_factory.mktemp("in_process")
    here = os.getcwd()
    os.chdir(folder)
    try:
        assert cli.run(series(["-nexus", "ref.nxs", "-smv", "ref"]), out=io.StringIO()) == 0
    finally:
        os.chdir(here)
    smv = np.stack([read_smv(folder / f"ref_{i + 1:05d}.img").data for i in range(FRAMES)])
    with h5py.File(folder / "ref.nxs", "r") as f:
        omega = f["/entry/sample/transformations/omega"][()]
    return nexus_pixels(folder / "ref.nxs"), smv, omega


def command(args):
    return [sys.executable, "-m", "nanobrag_torch"] + list(args)


def start(args, cwd):
    return subprocess.Popen(command(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(predicate, what, timeout=RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def read_line(proc, pattern):
    """The first output line matching `pattern` (the process runs in its own session, killed on failure)."""
    for line in proc.stdout:
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"the run ended (exit {proc.wait()}) without printing {pattern!r}")


def check_outputs(folder, reference, prefix="d"):
    """Pixels of the master NeXus (a virtual dataset over chunk files) and of every SMV frame
    equal the in-process run's; no temporary chunk file is left."""
    ref_nexus, ref_smv, ref_omega = reference
    master = folder / f"{prefix}.nxs"
    with h5py.File(master, "r") as f:
        assert f["/entry/data/data"].is_virtual
        np.testing.assert_array_equal(f["/entry/sample/transformations/omega"][()], ref_omega)
    pixels = nexus_pixels(master)
    assert pixels.shape == ref_nexus.shape and pixels.sum() > 0
    np.testing.assert_array_equal(pixels, ref_nexus)
    smv = np.stack([read_smv(folder / f"{prefix}_{i + 1:05d}.img").data for i in range(FRAMES)])
    np.testing.assert_array_equal(smv, ref_smv)
    assert len(list(folder.glob(f"{prefix}_data_*.h5"))) == FRAMES  # one chunk a frame at this size
    assert not list(folder.glob("*.part*"))


def retried(output):
    return int(re.search(r"chunks retried after a lost worker: (\d+)", output).group(1))


def test_two_workers_give_the_in_process_pixels(tmp_path, reference):
    done = subprocess.run(command(series(["-nexus", "d.nxs", "-smv", "d", "-workers", "2"])), cwd=tmp_path,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Dask: 2 worker process\(es\) on this machine", done.stdout)
    assert "Dask dashboard: http://127.0.0.1:" in done.stdout
    assert retried(done.stdout) == 0
    check_outputs(tmp_path, reference)


def test_a_killed_worker_costs_only_its_chunk(tmp_path, reference):
    """SIGKILL one worker process (as an OOM killer would) once the first chunk is written."""
    proc = start(series(["-nexus", "d.nxs", "-smv", "d", "-workers", "2"]), tmp_path)
    try:
        pids = [int(p) for p in read_line(proc, r"worker pids ([\d ]+)").group(1).split()]
        assert len(pids) == 2
        wait_for(lambda: list(tmp_path.glob("d_data_*.h5")), "the first chunk file")
        os.kill(pids[0], signal.SIGKILL)
        output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        stop(proc)
    assert proc.returncode == 0, output
    assert retried(output) >= 1  # its chunk (and any it had been given next) ran again elsewhere
    check_outputs(tmp_path, reference)


class DaskCluster:
    """`dask scheduler` and one `dask worker` as processes of their own, on 127.0.0.1."""

    def __init__(self, folder):
        self.file = folder / f"scheduler-{time.monotonic_ns()}.json"
        self.procs = []
        self.scheduler = self._start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                     "--no-dashboard", "--scheduler-file", str(self.file))
        wait_for(self.file.exists, "the scheduler file", timeout=120)
        wait_for(lambda: "address" in self.file.read_text(), "the scheduler address", timeout=30)
        self.address = json.loads(self.file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")
        self._start("distributed.cli.dask_worker", self.address, "--nthreads", "1", "--nworkers", "1",
                    "--host", "127.0.0.1", "--no-dashboard")

    def _start(self, module, *args):
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def close(self):
        for proc in self.procs:
            stop(proc)


def test_a_scheduler_of_ones_own_then_a_lost_one_and_resume(tmp_path, reference):
    """-scheduler tcp://127.0.0.1:PORT renders on a cluster started here; when that scheduler is
    killed mid-run the run ends with a clear message, and -resume on a new cluster finishes it."""
    cluster = DaskCluster(tmp_path)
    try:
        proc = start(series(["-nexus", "d.nxs", "-smv", "d", "-scheduler", cluster.address]), tmp_path)
        try:
            read_line(proc, r"Dask: 1 worker process\(es\) at tcp://127\.0\.0\.1:")
            wait_for(lambda: list(tmp_path.glob("d_data_*.h5")), "the first chunk file")
            stop(cluster.scheduler)
            output, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            stop(proc)
    finally:
        cluster.close()
    assert proc.returncode == 1, output
    message = output.strip().splitlines()[-1]
    assert "lost the Dask scheduler" in message and "-resume" in message
    written = len(list(tmp_path.glob("d_data_*.h5")))
    assert 1 <= written < FRAMES and not (tmp_path / "d.nxs").exists()

    cluster = DaskCluster(tmp_path)
    try:
        done = subprocess.run(command(series(["-nexus", "d.nxs", "-smv", "d", "-scheduler", cluster.address,
                                              "-resume"])), cwd=tmp_path, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, check=False)
    finally:
        cluster.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"wrote {FRAMES - written} frames of {FRAMES}" in done.stdout
    check_outputs(tmp_path, reference)


@pytest.mark.parametrize("extra, message", [
    (["-workers", "2", "-scheduler", "tcp://127.0.0.1:1"], "give one of them"),
    (["-workers", "0"], "-workers"),
    (["-scheduler", "127.0.0.1:8786"], "not a scheduler address"),
])
def test_bad_cluster_options(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main(series(["-smv", "x"]) + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("x*"))


def test_workers_without_dask_say_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if Dask were not installed
    assert cli.main(series(["-smv", "x", "-workers", "2"])) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'nanobrag_torch[distributed]'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("count", [1, 7, 256, 257, 1000, 100_000])
def test_chunks_cover_every_frame_once(count):
    from nanobrag_torch.datasets.distributed import chunk_ranges

    ranges = chunk_ranges(count)
    assert [n for n, _, _ in ranges] == list(range(len(ranges)))
    assert [f for _, a, b in ranges for f in range(a, b)] == list(range(count))
    assert max(b - a for _, a, b in ranges) <= 100 and len(ranges) <= max(256, count // 100 + 1)


def test_recorded_command_leaves_out_how_it_was_run():
    """-resume with another -workers count, or on a -scheduler, continues the same dataset."""
    from nanobrag_torch.datasets.distributed import frames_command

    argv = ["-frames", "4", "-workers", "2", "-nexus", "a.nxs", "-resume", "-scheduler", "tcp://h:1", "-overwrite"]
    assert frames_command(argv) == ["-frames", "4", "-nexus", "a.nxs"]


def test_workers_share_one_kernel_build(tmp_path):
    """Processes sharing the kernel cache build a missing kernel once: a second builder waits for
    the first (then finds the kernel built and loads it)."""
    import threading

    from nanobrag_torch.fused import build_lock

    path = str(tmp_path / "cache" / "kernel.pt2")
    order = []

    def second():
        with build_lock(path):
            order.append("second")

    with build_lock(path):
        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive()  # blocked while the first holds the lock
        order.append("first")
    waiter.join(30)
    assert order == ["first", "second"]
