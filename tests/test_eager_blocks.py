"""The eager engine's speed-ups change no number: its lattice sum in cache-sized blocks of terms,
and chunks rendered on threads of their own, give the image of one pass on one thread bit for bit."""
import threading

import torch

import nanobrag_torch as nb
from nanobrag_torch import engine, simulator

from heavy_still import heavy_still_args, write_hkl


def _sim(tmp_path):
    write_hkl(tmp_path / "small.hkl", span=8)
    sim = nb.from_args(heavy_still_args(tmp_path / "small.hkl", 40, 4) + ["-phi", "0.1"])  # no phi = 0 rule
    sim.term_budget = 50 * sim.terms_per_pixel()  # eager chunks of 50 pixels: 32 of them
    return sim


def _eager(sim):
    inputs = sim.inputs()
    pixels = torch.arange(40 * 40)
    with torch.no_grad():
        return sim._render_eager(pixels // 40, pixels % 40, inputs, sim.new_state(inputs))


def test_blocks_and_threads_give_the_same_numbers(tmp_path, monkeypatch):
    sim = _sim(tmp_path)
    with simulator._torch_threads(1), monkeypatch.context() as m:
        m.setattr(engine, "EAGER_BLOCK", 1 << 40)  # every chunk's terms in one pass
        whole = _eager(sim)
    monkeypatch.setattr(engine, "EAGER_BLOCK", 1 << 12)
    assert engine.EAGER_BLOCK // (50 * 4) < 50  # 50 pixels x 4 sub-pixels: 20 of the 50 terms a block
    render, seen = simulator.engine_render_pixels, []

    def watched(*args):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return render(*args)

    monkeypatch.setattr(simulator, "engine_render_pixels", watched)
    with simulator._torch_threads(1):
        serial = _eager(sim)
    with simulator._torch_threads(2):
        threaded = _eager(sim)
    for got in (serial, threaded):
        assert torch.equal(got[0], whole[0]) and torch.equal(got[1], whole[1])
    names = {name for name, _ in seen[32:]}
    assert len(names) == 2 and "MainThread" not in names  # two workers, one torch thread each
    assert {threads for _, threads in seen} == {1}


def test_renders_off_the_main_thread_keep_torch_threads(tmp_path, monkeypatch):
    """torch's thread count is process-wide: a render on another thread (a Dask worker's) does not
    switch it to one for chunk threads of its own, which concurrent renders would undo."""
    sim = _sim(tmp_path)
    render, seen = simulator.engine_render_pixels, []
    monkeypatch.setattr(simulator, "engine_render_pixels",
                        lambda *a: seen.append((threading.current_thread().name, torch.get_num_threads()))
                        or render(*a))
    with simulator._torch_threads(2):
        worker = threading.Thread(target=_eager, args=(sim,), name="worker")
        worker.start()
        worker.join()
    assert len(seen) == 32 and set(seen) == {("worker", 2)}
