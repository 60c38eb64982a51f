"""The IterableDataset / iterator for machine learning: labels, reproducibility, several workers."""
import io
import math

import numpy as np
import pytest
import torch

from nanobrag_torch import cli
from nanobrag_torch.datasets.ml import ShotDataset, iter_shots
from nanobrag_torch.io.smv import read_smv

ARGS = ("-cell 70 80 90 90 90 90 -default_F 100 -lambda 1 -N 4 -distance 100 -detpixels 20 -pixel 0.8 "
        "-oversample 1 -seed 5 -misset_seed 2 -noprogress").split()
SHOTS = "[crystal]\nN = [3, 5]\nmosaic_deg = [0.1, 0.2]\nmosaic_domains = 2\n[spectrum]\nsamples = 2\n"


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shots.toml").write_text(SHOTS)
    return tmp_path


def test_iterator_labels_match_the_shot(work):
    items = list(iter_shots(ARGS, 3, shots="shots.toml", indices=[2, 0], maps=True))
    assert [it["index"] for it in items] == [2, 0]
    assert not list(work.glob("Fdump*"))  # a library iterator leaves no files behind
    for it in items:
        assert it["image"].shape == (20, 20) and it["image"].dtype == np.float32
        u = it["orientation"]
        np.testing.assert_allclose(u @ u.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(it["cell"], [70, 80, 90, 90, 90, 90], rtol=1e-9)
        assert 3 <= it["N"][0] <= 5 and it["N"][0] == it["N"][1] == it["N"][2]
        np.testing.assert_allclose(it["size_um"], it["N"] * [70, 80, 90] * 1e-4, rtol=1e-9)
        assert 0.1 <= it["mosaic_deg"] <= 0.2 and it["mosaic_domains"] == 2
        assert it["wavelengths_A"].shape == (2,) and np.allclose(it["weights"], 0.5)
        # the rendered real vectors are the cell rotated by the orientation label
        np.testing.assert_allclose(it["real_vectors"] @ it["real_vectors"].T,
                                   np.diag([70.0 ** 2, 80.0 ** 2, 90.0 ** 2]), atol=1e-8)
        # resolution at the detector edge: d = lambda / (2 sin(theta)) from the geometry
        d_corner = it["resolution"][0, 0]
        # MOSFLM beam centre (16 + 0.8)/2 + 0.4 = 8.8 mm from the corner; the corner pixel's centre at 0.4 mm
        r = math.hypot(8.8 - 0.4, 8.8 - 0.4)
        assert d_corner == pytest.approx(1 / (2 * math.sin(math.atan(r / 100) / 2)), rel=1e-4)
        assert it["hkl"].shape == (20, 20, 3) and it["hkl"].dtype == np.int32
        assert np.all(it["hkl"][10:12, 10:12] == 0) and np.abs(it["hkl"]).max() > 0  # hkl 000 at the beam
    # shot 0 of the iterator is -frame 0 of the same stills command
    assert cli.run(ARGS + ["-stills", "3", "-shots", "shots.toml", "-frame", "0", "-noisefile", "n.img",
                           "-nopgm", "-floatfile", "f.bin", "-intfile", "i.img"], out=io.StringIO()) == 0
    np.testing.assert_array_equal(items[1]["image"], read_smv("n.img").data.astype(np.float32))


def test_dataloader_workers_give_the_single_process_shots(work):
    data = ShotDataset(ARGS, 4, shots="shots.toml", noise=False)
    single = {int(it["index"]): it for it in data}
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=2)
    seen = {int(it["index"]): it for it in loader}
    assert sorted(seen) == [0, 1, 2, 3]
    for k, it in seen.items():
        assert torch.equal(it["image"], single[k]["image"]) and torch.equal(it["orientation"], single[k]["orientation"])
    assert not torch.equal(seen[0]["image"], seen[1]["image"])
