"""Per-pixel factors cached across frames (factor_cache.py): a frame that changes only the crystal's
orientation renders the same numbers as a fresh simulation, eagerly bit for bit, compiled (the
FactorKernel family) to the eager engine's float64 rounding; invalid or oversized caches fall back."""
import math

import pytest
import torch

import nanobrag_torch as nb
from nanobrag_torch import fused, simulator
from nanobrag_torch.factor_cache import FactorCache

from heavy_still import heavy_still_args, write_hkl

PHIS = (0.0, 0.3, 1.7)  # degrees; the first frame has nanoBragg's phi = 0 quirk (one pixel eager)


@pytest.fixture
def inputs(tmp_path, tmp_path_factory, monkeypatch):
    write_hkl(tmp_path / "small.hkl", span=8)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NANOBRAGG_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "inductor"))
    monkeypatch.setitem(simulator._COMPILED, "ok", True)
    monkeypatch.setattr(fused, "_LOADED", {})
    return tmp_path


def _fresh(args, phi_deg, compiled=False):
    sim = nb.from_args(args)
    sim.use_compile = compiled
    sim.crystal.phi0 = math.radians(phi_deg)
    with torch.no_grad():
        return sim.run()


def _series(args, cache, compiled=False, phis=PHIS):
    """The frames of a rotation series on one simulation sharing `cache` (as datasets render them)."""
    sim = nb.from_args(args)
    sim.use_compile, sim.factor_cache = compiled, cache
    images = []
    for phi in phis:
        sim.crystal.phi0 = math.radians(phi)
        with torch.no_grad():
            images.append(sim.run())
    return images, sim


HEAVY = heavy_still_args("small.hkl", 20, 4)
PLAIN_THICK_KAHN = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "1.0", "-N", "10",
                    "-distance", "100", "-detpixels", "24", "-pixel", "5", "-polar", "0.9", "-detector_thick", "100",
                    "-detector_thicksteps", "3", "-oversample", "2", "-water", "50", "-phisteps", "2", "-osc", "1"]


@pytest.mark.parametrize("args", [HEAVY, PLAIN_THICK_KAHN, PLAIN_THICK_KAHN + ["-nopolar", "-point_pixel"]],
                         ids=["heavy", "thick_kahn_water", "nopolar_point"])
def test_cached_frames_equal_fresh_renders_bit_for_bit(inputs, args):
    cache = FactorCache()
    images, _ = _series(args, cache)
    assert cache.entries and cache.bytes > 0, "the factor path was not taken"
    for image, phi in zip(images, PHIS):
        fresh = _fresh(args, phi)
        assert fresh.abs().max() > 0
        assert torch.equal(image, fresh), phi
    assert not torch.equal(images[1], images[2])


def test_factors_are_computed_once_per_chunk(inputs, monkeypatch):
    import nanobrag_torch.factor_cache as module

    calls = []
    original = module.plain_factors
    monkeypatch.setattr(module, "plain_factors", lambda *a: calls.append(1) or original(*a))
    _series(HEAVY, FactorCache(), phis=(0.3, 0.5, 0.7, 0.9))
    assert len(calls) == 1  # a 20x20 detector is one chunk


def test_budget_and_invalid_cases_fall_back(inputs):
    small = FactorCache(budget=0)
    images, _ = _series(HEAVY, small, phis=(0.3,))
    assert small.entries == {} and torch.equal(images[0], _fresh(HEAVY, 0.3))
    dmin = FactorCache()
    images, _ = _series(HEAVY + ["-dmin", "3"], dmin, phis=(0.3,))
    assert dmin.entries == {} and torch.equal(images[0], _fresh(HEAVY + ["-dmin", "3"], 0.3))


def test_changed_detector_recomputes_the_factors(inputs):
    cache = FactorCache()
    _series(HEAVY, cache, phis=(0.3,))
    before = cache.signature
    moved = [a if a != "100" or HEAVY[i - 1] != "-distance" else "120" for i, a in enumerate(HEAVY)]
    images, _ = _series(moved, cache, phis=(0.3,))
    assert cache.signature is not before
    assert torch.equal(images[0], _fresh(moved, 0.3))


def test_compiled_factor_kernel_equals_eager(inputs):
    """The FactorKernel family (its own cache key) against the eager engine in float64."""
    sim = nb.from_args(HEAVY)
    wf = sim.inputs().weight_factor
    sizes = (1, 4, 50)  # one layer, 2x2 sub-pixels, 5 phi steps x 10 mosaic domains
    factors = fused.Kernel(sim.detector, sim.crystal, sim.flags, wf, factors=sizes)
    assert factors.key != fused.Kernel(sim.detector, sim.crystal, sim.flags, wf).key
    assert factors.key != fused.Kernel(sim.detector, sim.crystal, sim.flags, wf, factors=(1, 4, 49)).key
    images, sim = _series(HEAVY, FactorCache(), compiled=True)
    assert sim.use_compile is True and sim.stats["compiled_kernel"] is True
    assert factors.key in fused._LOADED
    for image, phi in zip(images, PHIS):
        eager = _fresh(HEAVY, phi)
        assert eager.abs().max() > 0
        torch.testing.assert_close(image, eager, rtol=1e-12, atol=1e-12 * float(eager.abs().max()))
