"""Simulation as a torch.nn.Module: registered parameters, state_dict, optimizers, .to(dtype)."""
import pytest
import torch

import nanobrag_torch as nb

ARGS = ("-cell 70 80 90 75 85 95 -misset 10 20 30 -default_F 100 -N 5 -lambda 1 -distance 100 -detpixels 24 "
        "-mosaic 0.3 -mosaic_dom 2 -oversample 1")


def test_simulation_is_a_module_whose_parameters_are_the_differentiable_ones():
    sim = nb.from_args(ARGS)
    assert isinstance(sim, torch.nn.Module)
    assert dict(sim.named_parameters()) == {}
    p = nb.parameters(sim, "cell", "distance", "mosaic_spread")
    named = dict(sim.named_parameters())
    assert set(named) == {"cell", "distance", "mosaic_spread"}
    assert all(named[k] is p[k] for k in named)
    assert set(sim.state_dict()) >= {"cell", "distance", "mosaic_spread"}
    # a value replaced by a tensor of the caller's own variables is no longer the module's parameter
    a = torch.tensor(70.0, dtype=torch.float64, requires_grad=True)
    p["cell"] = torch.cat((a[None], p["cell"].detach()[1:]))
    assert set(dict(sim.named_parameters())) == {"distance", "mosaic_spread"}
    nb.release(sim)
    assert dict(sim.named_parameters()) == {}


def test_state_dict_round_trip_and_optimizer_step():
    sim = nb.from_args(ARGS)
    nb.parameters(sim, "distance", "misset")
    saved = {k: v.clone() for k, v in sim.state_dict().items()}
    before = sim.run().detach()
    opt = torch.optim.SGD(sim.parameters(), lr=1e-3)
    sim().sum().backward()
    opt.step()
    moved = sim.run().detach()
    assert not torch.equal(moved, before)
    sim.load_state_dict(saved)
    torch.testing.assert_close(sim.run().detach(), before, rtol=0, atol=0)


def test_to_float32_renders_the_float64_image():
    sim = nb.from_args(ARGS)
    nb.parameters(sim, "distance")
    with torch.no_grad():
        img64 = sim.run()
        sim.to(torch.float32)
        img32 = sim.run()
    assert img32.dtype == torch.float32 and sim.detector.dtype == torch.float32
    assert sim.distance.dtype == torch.float32
    corr = torch.corrcoef(torch.stack((img64.flatten(), img32.double().flatten())))[0, 1]
    print(f"float32 vs float64 correlation {float(corr):.9f}")
    assert corr >= 0.9999
    with torch.no_grad():
        back = sim.to(torch.float64).run()
    assert back.dtype == torch.float64


def test_state_dict_holds_the_model_tensors_that_define_the_simulation():
    """A simulation loaded with another's state_dict renders the other's image (a different
    crystal orientation and mosaic here), and a strict load names a missing model tensor."""
    sim = nb.from_args(ARGS)
    state = sim.state_dict()
    assert {"crystal.real", "crystal.recip", "crystal.mosaic_umats", "beam.source_dirs",
            "beam.wavelengths"} <= set(state)
    other = nb.from_args(ARGS.replace("-misset 10 20 30", "-misset 0 0 0").replace("-mosaic 0.3", "-mosaic 0.6"))
    with torch.no_grad():
        assert not torch.allclose(other.run(), sim.run())
        other.load_state_dict(state)
        torch.testing.assert_close(other.run(), sim.run(), rtol=0, atol=0)
    del state["crystal.real"]
    with pytest.raises(RuntimeError, match="crystal.real"):
        nb.from_args(ARGS).load_state_dict(state)
