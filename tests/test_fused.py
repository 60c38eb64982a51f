"""The compiled plain path (fused.py) against the eager engine, and a speed guard for it.

The compiled kernel is what large runs use (benchmarks W2-W4), so it is checked on small
detectors with use_compile forced: every optional factor it carries (HKL lookup, mosaic and phi,
sub-pixels, divergence and dispersion, weighted sources, detector layers, Kahn polarization,
point pixels, non-square crystal shapes, water background, dmin) must give the eager image.
Kernels are built into a temporary cache, so the test exercises the build, not a leftover.
"""
import os
import time

import numpy as np
import pytest
import torch

import nanobrag_torch as nb
from nanobrag_torch import fused, simulator

from heavy_still import heavy_still_args, write_hkl

CONFIGS = {
    "heavy_still": heavy_still_args("small.hkl", 20, 4),
    "polychromatic_thick_kahn": ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "1.0",
                                 "-N", "10", "-distance", "100", "-detpixels", "20", "-pixel", "5", "-dispersion", "5",
                                 "-dispsteps", "3", "-hdivrange", "1", "-vdivrange", "1", "-hdivsteps", "3",
                                 "-vdivsteps", "3", "-polar", "0.9", "-detector_thick", "100",
                                 "-detector_thicksteps", "3", "-oversample", "1"],
    "round_weighted_water_dmin": ["-cell", "60", "70", "80", "90", "100", "90", "-hkl", "small.hkl", "-default_F", "5",
                                  "-N", "4", "-round_xtal", "-sourcefile", "weighted.txt", "-distance", "80",
                                  "-detpixels", "20", "-pixel", "5", "-water", "50", "-dmin", "2.5", "-point_pixel",
                                  "-oversample", "1"],
}


def _write_inputs(folder):
    write_hkl(folder / "small.hkl", span=8)
    with open(folder / "weighted.txt", "w") as f:
        f.write("-10 0 0 1.0 1.0e-10\n-10 0.01 0 0.3 1.02e-10\n-10 0 0.01 0.6 0.98e-10\n")


@pytest.fixture(autouse=True)
def private_kernel_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NANOBRAGG_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "inductor"))
    monkeypatch.setitem(simulator._COMPILED, "ok", True)
    # kernels loaded earlier in this process (other test files) must not stand in for this cache's builds
    monkeypatch.setattr(fused, "_LOADED", {})


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    _write_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _image(args, compiled, dtype="float64"):
    sim = nb.from_args(args, dtype=dtype)
    sim.use_compile = compiled
    with torch.no_grad():
        image = sim.run()
    return image, sim


def _listing(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compiled_path_equals_eager(inputs, name):
    eager, _ = _image(CONFIGS[name], False)
    loaded = len(fused._LOADED)
    inductor = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    before = _listing(inductor)
    compiled, sim = _image(CONFIGS[name], True)
    assert sim.use_compile is True, "the compiled path failed and fell back to eager"
    assert sim.stats["compiled_kernel"] is True
    assert len(fused._LOADED) == loaded + 1, "no kernel was built for this configuration"
    # the build's intermediate files went to a folder of its own, since removed
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == inductor and _listing(inductor) == before
    # the cache holds packages, their lock files and the build log, nothing else
    assert [n for n in os.listdir(os.environ["NANOBRAGG_CACHE"])
            if not n.endswith((".pt2", ".lock")) and n != "builds.log"] == []
    assert not [n for n in os.listdir(os.environ["NANOBRAGG_CACHE"]) if ".build." in n or ".inductor." in n]
    assert eager.abs().max() > 0
    # same formulas; only the order of the per-pixel sum differs
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12 * float(eager.abs().max()))
    # the solid-angle statistic comes out of the kernel too
    assert sim.stats["omega_sum"] == pytest.approx(_image(CONFIGS[name], False)[1].stats["omega_sum"], rel=1e-12)


def test_compiled_float32_close_to_float64(inputs):
    reference, _ = _image(CONFIGS["heavy_still"], False)
    single, sim = _image(CONFIGS["heavy_still"], True, dtype="float32")
    assert single.dtype == torch.float32 and sim.use_compile is True
    r, s = reference.flatten(), single.double().flatten()
    assert torch.corrcoef(torch.stack((r, s)))[0, 1] > 0.99999


def test_kernel_inputs_are_not_baked_in(inputs):
    """A new distance or wavelength reuses the compiled kernel (they are inputs, not constants)."""
    _image(CONFIGS["heavy_still"], True)
    loaded = len(fused._LOADED)
    moved = [a if a != "100" or i != CONFIGS["heavy_still"].index("-distance") + 1 else "120"
             for i, a in enumerate(CONFIGS["heavy_still"])]
    moved[moved.index("-lambda") + 1] = "1.1"
    compiled, sim = _image(moved, True)
    eager, _ = _image(moved, False)
    assert len(fused._LOADED) == loaded
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12 * float(eager.abs().max()))


# Calibration (2-core AMD EPYC, torch 2.13 CPU, compiled engine of 2026-11-22): ratio 4.4-4.5 on one
# thread, in CPU time (the eager engine is ~10x slower).  The bound is 2x that: a kernel that loses
# its vectorization or falls back to eager fails; machine noise does not.
MAX_RATIO = 9
PIXELS = 256


def test_compiled_speed_relative_to_plain_tensor_op(inputs):
    args = heavy_still_args("small.hkl", PIXELS, 0.3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _, sim = _image(args, True)  # builds (or loads) the kernel
        assert sim.use_compile is True
        terms = PIXELS * PIXELS * sim.terms_per_pixel()
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            with torch.no_grad():
                sim.run()
            best = min(best, time.process_time() - t0)
        x = torch.linspace(0.0, 1000.0, terms, dtype=torch.float64)
        y = torch.empty_like(x)
        plain = float("inf")
        for _ in range(20):
            t0 = time.process_time()
            torch.sin(x, out=y)
            plain = min(plain, time.process_time() - t0)
    finally:
        torch.set_num_threads(threads)
    ratio = best / plain
    print(f"compiled render {best:.3f} s, {terms} sin() {plain * 1e3:.2f} ms, ratio {ratio:.1f}")
    assert ratio < MAX_RATIO, (f"the compiled path took {ratio:.1f}x the time of {terms} float64 sin() calls; "
                               f"the guard allows {MAX_RATIO}x: a speed regression?")


def test_torch_compile_path_equals_eager(inputs):
    """The torch.compile flavour (used on CUDA) of the same kernel, checked here on the CPU."""
    sim = nb.from_args(CONFIGS["polychromatic_thick_kahn"])
    with torch.no_grad():
        eager = sim.run().reshape(-1)
        i = sim.inputs()
        geo, incident, wl, wf, rot = i.geo, i.incident, i.wavelengths, i.weight_factor, i.rot
        slow = torch.arange(sim.detector.spixels).repeat_interleave(sim.detector.fpixels)
        fast = torch.arange(sim.detector.fpixels).repeat(sim.detector.spixels)
        kernel = fused.pixel_kernel(sim.detector, sim.crystal, sim.flags, wf, aot=False)
        values, omega, _ = kernel(fused.kernel_inputs(slow, fast, geo, sim.detector, incident, wl, wf, rot,
                                                      sim.crystal, sim.flags))
    torch.testing.assert_close(values, eager, rtol=1e-12, atol=1e-12 * float(eager.abs().max()))


def test_command_line_run_leaves_no_temporary_files(inputs, tmp_path):
    """A loaded kernel package is extracted to a temporary folder; the command line removes it
    even though it skips the interpreter's shutdown."""
    import subprocess
    import sys

    _image(CONFIGS["heavy_still"], True)  # the kernel the run below loads (building writes temporary files)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=str(fused.__file__).rsplit("/nanobrag_torch/", 1)[0])
    args = heavy_still_args("small.hkl", 512, 0.15) + ["-floatfile", "f.bin", "-nonoise", "-nopgm",
                          "-noprogress"]
    done = subprocess.run([sys.executable, "-m", "nanobrag_torch"] + args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "writing intimage.img" in done.stdout  # stdout was flushed before the fast exit
    assert (inputs / "f.bin").stat().st_size == 512 * 512 * 4
    assert os.path.isdir(os.environ["NANOBRAGG_CACHE"]) and os.listdir(os.environ["NANOBRAGG_CACHE"])
    assert list(scratch.iterdir()) == []


def test_kernel_key_names_the_cpu(inputs, monkeypatch):
    """Kernels are compiled for the building machine's instruction set: another CPU gets its own."""
    sim = nb.from_args(CONFIGS["heavy_still"])
    module = fused.PixelKernel(sim.detector, sim.crystal, sim.flags, False)
    key = module.key(torch.float64)
    assert module.key(torch.float64) == key
    monkeypatch.setitem(fused._SOURCE, "cpu", "another-cpu")
    assert module.key(torch.float64) != key


def _family(args):
    sim = nb.from_args(args)
    wf = sim.inputs().weight_factor
    return fused.PixelKernel(sim.detector, sim.crystal, sim.flags, wf is not None).key(sim.detector.dtype)


def test_kernel_key_names_only_what_changes_the_code(inputs):
    """Counts and sizes are kernel inputs; the dtype, crystal shape and optional factors select kernels."""
    base = CONFIGS["heavy_still"]
    key = _family(base)
    for extra in (["-N", "7"], ["-Na", "3"], ["-mosaic_dom", "3"], ["-phisteps", "2"], ["-oversample", "5"],
                  ["-detpixels", "33"], ["-roi", "2", "9", "3", "7"], ["-dispersion", "2", "-dispsteps", "3"],
                  ["-distance", "90"], ["-lambda", "1.3"], ["-default_F", "3"]):
        assert _family(base + extra) == key, extra
    for extra in (["-round_xtal"], ["-nopolar"], ["-polar", "0.9"], ["-dmin", "3"], ["-point_pixel"],
                  ["-detector_thick", "100"]):
        assert _family(base + extra) != key, extra
    sim = nb.from_args(base)
    module = fused.PixelKernel(sim.detector, sim.crystal, sim.flags, False)
    assert module.key(torch.float32) != module.key(torch.float64)


VARIANTS = [["-N", "6"], ["-Na", "1", "-Nb", "3"], ["-mosaic_dom", "3"], ["-phisteps", "1"], ["-oversample", "3"],
            ["-oversample", "1", "-mosaic_dom", "1", "-phisteps", "1"], ["-detpixels", "27"],
            ["-roi", "3", "11", "2", "16"]]


def test_one_kernel_serves_every_count_and_size(inputs):
    """After one heavy still, other crystal sizes, mosaic domains, phi steps, sub-pixels (1 included),
    detector sizes and ROIs render on the same kernel, with no build, equal to the eager engine."""
    _image(CONFIGS["heavy_still"], True)
    loaded = dict(fused._LOADED)
    files = sorted(os.listdir(os.environ["NANOBRAGG_CACHE"]))
    for extra in VARIANTS:
        args = CONFIGS["heavy_still"] + extra
        compiled, sim = _image(args, True)
        assert sim.stats["compiled_kernel"] is True and sim.use_compile is True, extra
        eager, _ = _image(args, False)
        assert eager.abs().max() > 0
        torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12 * float(eager.abs().max()))
    assert fused._LOADED == loaded
    assert sorted(os.listdir(os.environ["NANOBRAGG_CACHE"])) == files


def test_one_term_kernel_equals_eager(inputs, monkeypatch):
    """One term per pixel (a plain image) has a kernel of its own, vectorized over pixels; the
    simulator picks it once it is built and it gives the eager image."""
    args = CONFIGS["heavy_still"] + ["-oversample", "1", "-mosaic_dom", "1", "-phisteps", "1", "-point_pixel"]
    eager, sim = _image(args, False)
    assert sim.terms_per_pixel() == 1 and eager.abs().max() > 0
    one = fused.Kernel(sim.detector, sim.crystal, sim.flags, sim.inputs().weight_factor, one_term=True)
    assert one.key != fused.Kernel(sim.detector, sim.crystal, sim.flags, sim.inputs().weight_factor).key
    one.load()  # builds it
    used = []
    load = fused.Kernel.load
    monkeypatch.setattr(fused.Kernel, "load", lambda self: used.append(self.key) or load(self))
    compiled, sim = _image(args, True)
    assert sim.stats["compiled_kernel"] is True and used == [one.key]
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12 * float(eager.abs().max()))


def test_release_removes_extracted_packages_while_simulations_live(inputs, tmp_path, monkeypatch):
    """What runs at exit for library users: a Simulation still holding its kernel must not keep the
    package's temporary copy alive; the kernel still works afterwards (it loads again)."""
    _image(CONFIGS["heavy_still"], True)  # build (or find) the kernel
    fused.release()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    first, sim = _image(CONFIGS["heavy_still"], True)  # loads the package: extracted under TMPDIR
    assert sim.use_compile is True and list(scratch.iterdir())
    fused.release()
    assert list(scratch.iterdir()) == []
    with torch.no_grad():
        again = sim.run()
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    fused.release()


def _kernel_lines(err):
    """stderr's lines about compiled kernels (set-up notes, such as the phi = 0 one, aside)."""
    return [line for line in err.strip().splitlines() if "kernel" in line or "compiler" in line]


def test_failed_build_warns_once_and_renders_eagerly(inputs, monkeypatch, capsys):
    """Without a working compiler (or on a device whose compiler fails) the run still completes on
    the eager engine, and the command line says so in one line on stderr."""
    from nanobrag_torch import cli

    def failing_build(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: no working C++ compiler\nsecond line of detail")

    monkeypatch.setattr(fused.Kernel, "load", failing_build)
    monkeypatch.setattr(simulator, "KERNEL_MIN_WORK", 0)
    # a build looks quicker than rendering eagerly, so the first run builds
    monkeypatch.setenv("NANOBRAGG_BACKGROUND_BUILDS", "1")
    monkeypatch.setattr(fused, "expected_build_seconds", lambda: 0.0)
    args = CONFIGS["heavy_still"] + ["-floatfile", "f.bin", "-nonoise", "-nopgm", "-noprogress"]
    assert cli.main(args) == 0
    err = _kernel_lines(capsys.readouterr().err)
    assert err == ["nanoBragg: warning: compiled kernel unavailable (RuntimeError: InvalidCxxCompiler: no working C++ "
                   "compiler); rendering with the eager engine (slower; NANOBRAGG_COMPILE=0 skips the attempt)"]
    assert simulator._COMPILED["ok"] is False  # later simulations in this process do not retry
    monkeypatch.setitem(simulator._COMPILED, "ok", True)
    with pytest.warns(RuntimeWarning, match="compiled kernel unavailable"):
        image, sim = _image(CONFIGS["heavy_still"], True)
    assert sim.use_compile is False and sim.stats["compiled_kernel"] is False
    eager, _ = _image(CONFIGS["heavy_still"], False)
    torch.testing.assert_close(image, eager, rtol=0, atol=0)
    written = torch.from_numpy(np.fromfile(inputs / "f.bin", dtype="<f4")).reshape(image.shape)
    torch.testing.assert_close(written, eager.float(), rtol=0, atol=0)


def test_command_line_notes_a_kernel_build_once(inputs, monkeypatch, capsys):
    """A first run that would render eagerly for longer than a build takes builds its kernel first:
    the command line says so in one line on stderr; the next run loads the kernel and says nothing."""
    from nanobrag_torch import cli

    monkeypatch.setattr(simulator, "KERNEL_MIN_WORK", 0)
    # a build looks quicker than rendering eagerly, so the first run builds before rendering
    monkeypatch.setenv("NANOBRAGG_BACKGROUND_BUILDS", "1")
    monkeypatch.setattr(fused, "expected_build_seconds", lambda: 0.0)
    # -nopolar selects a kernel that no other test builds, so the first run here builds
    args = CONFIGS["heavy_still"] + ["-nopolar", "-floatfile", "f.bin", "-nonoise", "-nopgm", "-noprogress"]
    assert cli.main(args) == 0
    err = _kernel_lines(capsys.readouterr().err)
    cache = os.environ["NANOBRAGG_CACHE"]
    assert err == [f"nanoBragg: note: building a compiled kernel for this configuration (once; it is kept in {cache})"]
    assert cli.main(args) == 0
    assert _kernel_lines(capsys.readouterr().err) == []


def test_damaged_kernel_package_is_rebuilt(inputs, caplog):
    """A package that cannot be loaded (damaged on disk) is replaced by a new build instead of
    sending every later run to the slow eager path."""
    import logging

    fused.release()
    fused._LOADED.clear()
    first, _ = _image(CONFIGS["round_weighted_water_dmin"], True)  # built or found in this session's cache
    [key] = fused._LOADED
    package = os.path.join(os.environ["NANOBRAGG_CACHE"], key + ".pt2")
    size = os.path.getsize(package)
    fused.release()
    fused._LOADED.clear()
    with open(package, "r+b") as handle:
        handle.truncate(1000)
    caplog.set_level(logging.INFO, logger="nanobrag_torch")
    again, sim = _image(CONFIGS["round_weighted_water_dmin"], True)
    assert sim.stats["compiled_kernel"] is True
    assert any("could not be loaded" in r.getMessage() for r in caplog.records)
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    assert abs(os.path.getsize(package) - size) < size // 10  # a whole package again
    fused.release()
