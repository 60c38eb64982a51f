"""Golden cases replayed through the command line with the compiled kernel forced (every golden
case is below the size at which it is chosen automatically), judged against the golden files
like the eager replays: HKL lookup with default_F, mosaic domains, phi steps, oversampling."""
import pytest
from test_golden_parity import assert_float_parity, replay

from nanobrag_torch import simulator

from conftest import golden_cases, needs_golden

CASES = ["sparse_hkl", "mosaic_seed", "phi_osc", "oversample2"]


@pytest.fixture(autouse=True)
def forced_compiled_path(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NANOBRAGG_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "inductor"))
    monkeypatch.setitem(simulator._COMPILED, "ok", True)
    paths = []
    original = simulator.Simulation.run

    def run(self, *args, **kwargs):
        self.use_compile = True  # the compiled kernel whatever the run's size
        image = original(self, *args, **kwargs)
        paths.append(self.stats["compiled_kernel"])
        return image
    monkeypatch.setattr(simulator.Simulation, "run", run)
    return paths


@needs_golden
@pytest.mark.slow
@pytest.mark.parametrize("case_id", CASES)
def test_golden_case_on_the_compiled_kernel(case_id, tmp_path, monkeypatch, forced_compiled_path):
    case = golden_cases()[case_id]
    replay(case, tmp_path, monkeypatch)
    assert forced_compiled_path[-1] is True, "the render did not run on the compiled kernel"
    assert_float_parity(tmp_path / "float.bin", case_id)
