"""The compiled-kernel cache shared by processes: one build for many, crashed builders, no compiler,
and a first run that renders eagerly while the kernel is built in the background.

Each test uses a kernel cache of its own (an empty one is the situation under test)."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import nanobrag_torch as nb
from nanobrag_torch import fused

from heavy_still import heavy_still_args, write_hkl

# 80 x 80 pixels x 200 terms: above the size at which a run looks for a kernel, small enough that
# rendering eagerly is quicker than a build (so a first run renders eagerly and builds in the background)
ARGS = heavy_still_args("small.hkl", 80, 4)
OUTS = ["-floatfile", "f.bin", "-nonoise", "-nopgm", "-noprogress"]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    write_hkl(tmp_path / "small.hkl", span=8)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NANOBRAGG_CACHE", str(tmp_path / "kernels"))
    return tmp_path


def _cli(folder, name, extra_env=None):
    """Start the command line in `folder`/`name` (its own output folder)."""
    work = folder / name
    work.mkdir()
    (work / "small.hkl").symlink_to(folder / "small.hkl")
    env = dict(os.environ, NANOBRAGG_BACKGROUND_BUILDS="1", **(extra_env or {}))
    return work, subprocess.Popen([sys.executable, "-m", "nanobrag_torch"] + ARGS + OUTS, cwd=work, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(work, proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    image = np.fromfile(work / "f.bin", dtype="<f4")
    return image, err.strip().splitlines()


def _eager():
    sim = nb.from_args(ARGS)
    sim.use_compile = False
    with torch.no_grad():
        return sim.run().float().numpy().reshape(-1)


def _notes(lines):
    """The lines about compiled kernels (set-up notes, such as the phi = 0 one, aside)."""
    return [line for line in lines if line.startswith("nanoBragg:") and ("kernel" in line or "compiler" in line)]


def test_no_compiler_renders_eagerly_with_one_note(folder):
    work, proc = _cli(folder, "run", {"CXX": str(folder / "no-such-compiler")})
    image, err = _finish(work, proc)
    assert _notes(err) == [f"nanoBragg: note: no C++ compiler found ({folder / 'no-such-compiler'}; set CXX to one "
                           "to compile kernels); rendering with the eager engine"]
    np.testing.assert_array_equal(image, _eager())
    assert not os.path.exists(folder / "kernels") or not any(n.endswith(".pt2") for n in os.listdir(folder / "kernels"))


def _kernel():
    sim = nb.from_args(ARGS)
    wf = sim.inputs().weight_factor
    return fused.Kernel(sim.detector, sim.crystal, sim.flags, wf)


def _wait(condition, seconds):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def test_processes_share_one_build_and_survive_a_killed_builder(folder):
    """A builder killed mid-build leaves no package and no lock that blocks; then three runs started
    together on the empty cache render eagerly while one background process builds the kernel
    once; the next run loads it and says nothing."""
    kernel = _kernel()
    cache = folder / "kernels"
    builder = kernel.build_in_background()
    _wait(lambda: kernel.busy() or builder.poll() is not None, 120)
    _wait(lambda: any(".inductor." in n for n in os.listdir(cache)) or builder.poll() is not None, 120)
    builder.kill()
    builder.wait()
    assert not os.path.exists(kernel.path) and not kernel.busy()

    # a (made-up) earlier build that took very long: rendering eagerly is always the quicker choice,
    # however busy the machine is
    with open(cache / "builds.log", "w") as handle:
        handle.write("an-earlier-kernel 100000.0\n")
    runs = [_cli(folder, f"run{i}") for i in range(3)]
    eager = _eager()
    for work, proc in runs:
        image, err = _finish(work, proc)
        np.testing.assert_array_equal(image, eager)
        assert len(_notes(err)) == 1 and "rendering with the eager engine" in _notes(err)[0], err
    _wait(lambda: os.path.exists(kernel.path) and not kernel.busy(), 900)
    with open(cache / "builds.log") as handle:
        assert [line.split()[0] for line in handle] == ["an-earlier-kernel", kernel.key]  # built once
    # the killed builder's partial files were removed by the one that built
    assert sorted(os.listdir(cache)) == sorted(["builds.log", kernel.key + ".lock", kernel.key + ".pt2"])

    work, proc = _cli(folder, "after")
    image, err = _finish(work, proc)
    assert _notes(err) == []
    np.testing.assert_allclose(image, eager, rtol=1e-6, atol=1e-6 * float(eager.max()))
    sim = nb.from_args(ARGS)
    with torch.no_grad():
        compiled = sim.run()
    assert sim.stats["compiled_kernel"] is True
    np.testing.assert_allclose(compiled.float().numpy().reshape(-1), eager, rtol=1e-6, atol=1e-6 * float(eager.max()))


def test_first_run_builds_only_after_its_render(folder, monkeypatch):
    """A first run's background builder takes the kernel's lock at once (a second run sees the
    build under way, a benchmark waiting on the lock waits for it) but builds only once the render
    is done: beside it, it would take one of the render's cores."""
    from nanobrag_torch import simulator

    monkeypatch.setenv("NANOBRAGG_BACKGROUND_BUILDS", "1")
    monkeypatch.setattr(fused, "expected_build_seconds", lambda: 1e9)  # rendering eagerly is quicker
    monkeypatch.setattr(fused, "_LOADED", {})  # not the kernel an earlier test loaded in this process
    builders, seen = [], []
    start = fused.Kernel.build_in_background
    monkeypatch.setattr(fused.Kernel, "build_in_background", lambda self, **kw: builders.append(start(self, **kw))
                        or builders[-1])
    eager = simulator.Simulation._render_eager

    def watched(self, *args):
        # while rendering: the lock is held, the builder still waits (its spec not read yet)
        seen.append((getattr(self, "_build_running", None), _kernel().busy(), _specs(folder),
                     builders[0].poll() if builders else "none"))
        return eager(self, *args)

    monkeypatch.setattr(simulator.Simulation, "_render_eager", watched)
    sim = nb.from_args(ARGS)
    try:
        with torch.no_grad():
            image = sim.run()
        during = [s for s in seen if s[3] != "none"]  # (before it: the phi = 0 first pixel and the probe)
        assert len(builders) == 1 and during and sim.stats["compiled_kernel"] is False
        assert all(s == (False, True, 1, None) for s in during), seen
        # after the render the builder reads its spec and starts building
        _wait(lambda: _specs(folder) == 0 or builders[0].poll() is not None, 120)
        assert builders[0].poll() is None and _kernel().busy()
    finally:
        for builder in builders:
            builder.kill()
            builder.wait()
    assert not _kernel().busy()
    np.testing.assert_array_equal(image.float().numpy().reshape(-1), _eager())


def _specs(folder):
    return sum(name.endswith(".spec") for name in os.listdir(folder / "kernels"))
