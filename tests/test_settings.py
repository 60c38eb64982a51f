"""Typed, frozen settings: each stage (parsed Settings, set-up's Resolved) is a frozen dataclass
made once; a change is a new object, and a stage holds only the fields it declares."""
import dataclasses
import io
import types

import numpy as np
import pytest

import nanobrag_torch as nb
from nanobrag_torch import cli, setup
from nanobrag_torch.resolve import Resolved
from nanobrag_torch.settings import Settings, freeze, parse

ARGS = ["-cell", "70", "80", "90", "75", "85", "95", "-default_F", "100", "-lambda", "1", "-N", "3",
        "-detpixels", "8", "-pixel", "0.4", "-mosaic", "0.5", "-phisteps", "2", "-osc", "1", "-seed", "5"]


def quiet(_):
    pass


def declared_only(stage):
    """The object's attributes are exactly its class's declared fields, none of them a list."""
    names = {f.name for f in dataclasses.fields(stage)}
    assert set(vars(stage)) == names
    assert not [n for n in names if isinstance(getattr(stage, n), list)]


def test_parse_returns_frozen_declared_settings():
    s = parse(ARGS)
    assert type(s) is Settings
    declared_only(s)
    assert (s.Na, s.Nb, s.Nc) == (3, 3, 3) and s.cell[:3] == (70.0, 80.0, 90.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.distance = 0.2
    assert parse(ARGS) == dataclasses.replace(s)  # same argv, equal settings (NaN fields identical)


def test_settings_fields_are_annotated_and_each_stage_extends_the_last():
    for cls in (Settings, Resolved):
        assert all(f.type for f in dataclasses.fields(cls))
    assert {f.name for f in dataclasses.fields(Settings)} < {f.name for f in dataclasses.fields(Resolved)}
    assert Resolved.__dataclass_params__.frozen and Settings.__dataclass_params__.frozen


def test_a_stage_refuses_undeclared_fields():
    work = types.SimpleNamespace(**{f.name: getattr(Settings(), f.name) for f in dataclasses.fields(Settings)})
    work.not_a_setting = 1
    with pytest.raises(TypeError, match="not_a_setting"):
        freeze(Settings, work)


def test_build_leaves_its_settings_unchanged_and_returns_a_frozen_resolved_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    v = cli.load_settings(ARGS, quiet)
    before = repr(v)
    sim = setup.build(v)
    assert repr(v) == before
    run = sim.settings
    assert type(run) is Resolved
    declared_only(run)
    # set-up's choices are in the new stage, not in the parsed one
    assert (v.mosaic_domains, run.mosaic_domains) == (-1, 10)
    assert (v.oversample, v.phistep) == (-1, -1.0) and run.oversample >= 1 and run.phistep > 0
    assert run.steps == run.nsources * run.mosaic_domains * run.phisteps * run.oversample ** 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.oversample = 3
    # arrays (shuffle table, cell vectors, structure factors) are left out of == and repr
    assert run == dataclasses.replace(run) and run != dataclasses.replace(run, oversample=run.oversample + 1)
    assert "rng_table" not in repr(run)


def test_a_changed_setting_is_a_new_object_and_builds_its_own_simulation(tmp_path, monkeypatch):
    """What datasets do per frame (phi, seed, misset): replace, never patch."""
    monkeypatch.chdir(tmp_path)
    v = cli.load_settings(ARGS, quiet)
    turned = dataclasses.replace(v, phi0=np.radians(10.0))
    assert v.phi0 == 0.0 and turned.phi0 == pytest.approx(np.radians(10.0))
    a, b = (nb.simulate(setup.build(s)) for s in (v, turned))
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())


def test_from_args_keeps_the_resolved_settings():
    sim = nb.from_args(ARGS, dtype="float32")
    assert type(sim.settings) is Resolved and sim.settings.dtype == "float32"


def test_build_prints_nothing_its_report_is_returned_for_the_command_line_to_print(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ARGS + ["-nonoise", "-nopgm", "-noprogress"]
    sim = setup.build(cli.load_settings(args, quiet))
    assert capsys.readouterr().out == ""
    report = sim.report
    assert report[0].startswith("nanoBragg nanocrystal diffraction simulator")
    assert "  10 mosaic domains over mosaic spread of 0.5 degrees" in report
    assert "  2 phi steps from 0 to 1 degrees" in report
    # the command line prints exactly these lines, in order, before rendering
    out = io.StringIO()
    assert cli.run(args, out=out) == 0
    assert out.getvalue().startswith("\n".join(report) + "\n")


def test_a_set_up_error_carries_the_report_made_until_then(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(nb.errors.NanoBraggError) as info:
        setup.build(cli.load_settings(ARGS + ["-hkl", "missing.hkl"], quiet))
    assert info.value.report and info.value.report[0].startswith("nanoBragg nanocrystal")


@pytest.mark.parametrize("program, argv", [
    ("nonbragg", ["-stol", "water.stol", "-detpixels", "8", "-seed", "3", "-Xbeam", "0.4"]),
    ("noisify", ["-floatfile", "float.bin", "-detpixels", "8", "-seed", "3"])])
def test_companion_programs_parse_into_frozen_declared_settings(program, argv):
    import importlib

    module = importlib.import_module(f"nanobrag_torch.{program}")
    v = module.parse(argv)
    declared_only(v)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.seed = 1
    assert v.seed == -3 and (v.fpixels if program == "nonbragg" else v.xpixels) == 8


def test_header_and_experiment_preloads_are_new_settings_that_options_override():
    from nanobrag_torch.experiment import with_experiment
    from nanobrag_torch.io.expt import Experiment
    from nanobrag_torch.settings import with_header

    class Header:
        width, height = 30, 20
        values = {"PIXEL_SIZE": 0.2, "DISTANCE": 150.0, "BEAM_CENTER_Y": 1.0}

        def value(self, key):
            return self.values.get(key)

    base = Settings()
    mask = with_header(base, Header(), is_mask=True)
    assert (base.fpixels, base.pixel_size) == (0, 0.1e-3)  # unchanged
    assert (mask.fpixels, mask.spixels, mask.pixel_size, mask.distance) == (30, 20, 0.2e-3, 0.15)
    assert mask.Ybeam == pytest.approx(20 * 0.2e-3 - 1e-3)  # a mask's Y is measured from the other edge
    assert with_header(base, Header(), is_mask=False).Ybeam == pytest.approx(1e-3)
    exp = Experiment(beam=[0.0, 0.0, 1.0], wavelength=1.5e-10, spindle=[1.0, 0.0, 0.0], images=1)
    moved = with_experiment(mask, exp)
    assert (moved.convention, moved.beam, moved.lambda0) == ("CUSTOM", (0.0, 0.0, 1.0), 1.5e-10)
    assert mask.convention == "MOSFLM" and moved.fpixels == 30
    declared_only(moved)
    assert parse(["-distance", "80"], moved).distance == pytest.approx(0.08)  # the options still win
