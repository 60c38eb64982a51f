"""Serial stills: uniform orientations from -misset_seed, per-shot variation from -shots, shots == -frame K."""
import io
import math

import h5py
import numpy as np
import pytest
import torch

from nanobrag_torch import cli
from nanobrag_torch.datasets.meta import lab_to_mcstas
from nanobrag_torch.datasets.plan import FramePlan, still_misset_deg, uniform_rotation
from nanobrag_torch.geometry.vectors import rotate_xyz
from nanobrag_torch.io.smv import read_smv

BASE = ("-cell 70 80 90 75 85 95 -default_F 100 -lambda 1 -N 4 -distance 100 -detpixels 32 -pixel 0.6 "
        "-oversample 1 -seed 7 -misset_seed 3 -noprogress").split()
SHOTS = """seed = 5
[crystal]
N = [3, 6]
mosaic_deg = [0.0, 0.3]
mosaic_domains = 3

[beam]
fluence = [1e23, 1e24]
[spectrum]
samples = 3
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shots.toml").write_text(SHOTS)
    return tmp_path


def run(args):
    assert cli.run(list(args), out=io.StringIO()) == 0


def test_orientations_are_uniform_on_so3_and_reproducible():
    mats = np.stack([uniform_rotation(11, i) for i in range(4000)])
    assert np.allclose(np.einsum("nij,nkj->nik", mats, mats), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(mats), 1.0)
    # Haar measure: E[R] = 0, E[R_ij^2] = 1/3, P(angle < 90 deg) = (pi/2 - 1)/pi
    assert np.abs(mats.mean(axis=0)).max() < 5 * math.sqrt(1 / 3 / 4000)
    assert np.abs((mats ** 2).mean(axis=0) - 1 / 3).max() < 0.03
    angles = np.arccos(np.clip((np.trace(mats, axis1=1, axis2=2) - 1) / 2, -1, 1))
    assert np.mean(angles < math.pi / 2) == pytest.approx((math.pi / 2 - 1) / math.pi, abs=0.03)
    assert np.array_equal(uniform_rotation(11, 7), mats[7]) and not np.allclose(uniform_rotation(12, 7), mats[7])


def test_misset_angles_give_the_drawn_rotation():
    """The -misset angles a shot is rendered with rotate the crystal by exactly its drawn rotation."""
    for i in range(20):
        angles = torch.tensor([math.radians(a) for a in still_misset_deg(3, i)], dtype=torch.float64)
        turned = rotate_xyz(torch.eye(3, dtype=torch.float64), *angles).numpy().T  # columns: images of x, y, z
        np.testing.assert_allclose(turned, uniform_rotation(3, i), atol=1e-12)


def test_stills_with_shots_equal_single_runs(work):
    run(BASE + ["-stills", "3", "-shots", "shots.toml", "-nexus", "st.nxs", "-smv", "st"])
    with h5py.File("st.nxs", "r") as f:
        data = f["/entry/data/data"][()]
        ub = f["/entry/sample/ub_matrix"][()]
        wl = f["/entry/instrument/beam/incident_wavelength"][()]
        weights = f["/entry/instrument/beam/incident_wavelength_weights"][()]
        fluence = f["/entry/instrument/beam/total_flux_fluence"][()]
        args = [a.decode() for a in f["/entry/nanobrag/frame_args"][()]]
    for k in (0, 2):
        run(BASE + ["-stills", "3", "-shots", "shots.toml", "-frame", str(k), "-noisefile", "k.img",
                    "-nopgm", "-floatfile", "k.bin", "-intfile", "i.img"])
        np.testing.assert_array_equal(data[k], read_smv("k.img").data)
        np.testing.assert_array_equal(read_smv(f"st_{k + 1:05d}.img").data, data[k])
    # same lattice, different orientations: UB^T UB (the metric) is shared, UB is not
    metric = np.einsum("nji,njk->nik", ub, ub)
    np.testing.assert_allclose(metric, metric[[0, 0, 0]], rtol=1e-10, atol=1e-16)
    assert not np.allclose(ub[0], ub[1])
    # each UB is the drawn rotation of the same lattice: UB_k UB_0^-1 = M U_k U_0^T M^T (M: lab -> McStas)
    m = lab_to_mcstas([1.0, 0.0, 0.0])
    for k in (1, 2):
        relative = m.T @ ub[k] @ np.linalg.inv(ub[0]) @ m
        np.testing.assert_allclose(relative, uniform_rotation(3, k) @ uniform_rotation(3, 0).T, atol=1e-9)
    assert wl.shape == (3, 3) and np.allclose(weights, 1 / 3)
    assert np.all(np.abs(wl - 1.0) < 0.02) and not np.allclose(wl[0], wl[1])
    assert np.all((fluence >= 1e23) & (fluence <= 1e24)) and len(set(fluence)) == 3
    for text in args:
        n = int(text.split("-N ")[1].split()[0])
        mosaic = float(text.split("-mosaic ")[1].split()[0])
        assert 3 <= n <= 6 and 0 <= mosaic <= 0.3 and "-mosaic_dom 3" in text


@pytest.mark.parametrize("text, message", [
    ("[crystal]\nN = [3, 6]\nsize = 2\n", "line 3: unknown key 'crystal.size'"),
    ("seed = 1\n\n[beem]\nfluence = 1e20\n", "line 3: unknown key 'beem'"),
    ("[crystal]\nmosaic_deg = [0.3, 0.1]\n", "line 2: bad value for 'crystal.mosaic_deg'"),
    ("[spectrum]\nkind = \"flat\"\n", "line 2: spectrum kind"),
    ("[crystal\n", "shots.toml"),
])
def test_bad_shots_files_name_key_and_line(work, capsys, text, message):
    (work / "shots.toml").write_text(text)
    assert cli.main(BASE + ["-stills", "2", "-shots", "shots.toml", "-smv", "x"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not list(work.glob("x*"))


def test_plan_frames_depend_on_index_only():
    plan = FramePlan("stills", 50, seed=10, misset_seed=4)
    assert plan.frame(37) == FramePlan("stills", 50, seed=10, misset_seed=4).frame(37)
    assert plan.frame(37).seed == 47 and plan.frame(37).args[:4] != plan.frame(36).args[:4]


def test_spectra_from_a_file(work, capsys):
    """kind = "file": each shot's spectrum from 'shot lambda_A weight' lines, as equal-weight quantiles."""
    rows = [f"{shot} {wl:.4f} {w}" for shot in (1, 2) for wl, w in ((0.99, 1), (1.0, 6 if shot == 1 else 1),
                                                                       (1.01, 1 if shot == 1 else 6))]
    (work / "spectra.txt").write_text("# shot lambda weight\n" + "\n".join(rows) + "\n")
    (work / "shots.toml").write_text('[spectrum]\nkind = "file"\nfile = "spectra.txt"\nsamples = 4\n')
    run(BASE + ["-stills", "2", "-shots", "shots.toml", "-nexus", "sp.nxs"])
    with h5py.File("sp.nxs", "r") as f:
        wl = f["/entry/instrument/beam/incident_wavelength"][()]
    assert wl.shape == (2, 4) and np.all((wl >= 0.99) & (wl <= 1.01))
    assert wl[0].mean() < wl[1].mean()  # shot 2's spectrum leans to the long side
    assert cli.main(BASE + ["-stills", "3", "-shots", "shots.toml", "-smv", "x"]) == 1  # no spectrum for shot 3
    assert "no spectrum for shot 3" in capsys.readouterr().err and not list(work.glob("x*"))


def test_counts_written_as_whole_floats_are_read_as_atoi_does(work):
    """-stills 2.0 / -frame 1.0 pass option validation (C's atoi reads them as 2 and 1), so the
    dataset code must read them the same way instead of failing with an internal error."""
    run(BASE + ["-stills", "2.0", "-frame", "1.0", "-nonoise", "-floatfile", "a.bin"])
    run(BASE + ["-stills", "2", "-frame", "1", "-nonoise", "-floatfile", "b.bin"])
    assert (work / "a.bin").read_bytes() == (work / "b.bin").read_bytes()


@pytest.mark.parametrize("shots, renders", [(False, 1), (True, 3)])
def test_stills_share_the_background_while_detector_and_beam_stay(work, monkeypatch, shots, renders):
    """A still's orientation leaves the amorphous background as it is: made once for the series,
    again only for a shot with its own spectrum or fluence; every frame equals its single run."""
    from nanobrag_torch import background_noise

    x = np.linspace(0, 0.6, 40)
    np.savetxt(work / "t.stol", np.stack([x, 2.5 + np.cos(9 * x)], 1))
    extra = ["-background", "t.stol", "-background_thick", "0.05"] + (["-shots", "shots.toml"] if shots else [])
    real, made = background_noise.background_image, []
    monkeypatch.setattr(background_noise, "background_image", lambda *a, **k: made.append(1) or real(*a, **k))
    run(BASE + extra + ["-stills", "3", "-smv", "bg"])
    assert len(made) == renders
    for k in (0, 2):
        run(BASE + extra + ["-stills", "3", "-frame", str(k), "-noisefile", "k.img", "-nopgm", "-floatfile", "k.bin",
                            "-intfile", "i.img"])
        np.testing.assert_array_equal(read_smv(f"bg_{k + 1:05d}.img").data, read_smv("k.img").data)
