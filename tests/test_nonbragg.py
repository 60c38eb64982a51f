"""nonBragg: table interpolation, gradients, sample bookkeeping and bad input."""
import math

import numpy as np
import pytest
import torch

from nanobrag_torch import amorphous, nonbragg
from nanobrag_torch.models import Detector


def test_interpolation_is_exact_for_a_cubic():
    """Four-point Lagrange interpolation reproduces a cubic inside the table."""
    x = np.linspace(0.0, 0.5, 40)
    f = lambda s: 2.0 - 3.0 * s + 5.0 * s ** 2 - 7.0 * s ** 3
    table = amorphous.StolTable.from_rows(np.stack([x, f(x)], 1), mult=1.0)
    q = torch.tensor([0.013, 0.2501, 0.37, 0.45])
    assert torch.allclose(table.interpolate(q.double()), f(q.double()), rtol=1e-12, atol=1e-12)


def test_interpolation_beyond_the_table_continues_the_last_segment():
    """Past the table the two far padding points (1e98, 1e99) make the C's cubic the line
    through the last two points."""
    x = np.array([0.0, 0.1, 0.2, 0.3])
    table = amorphous.StolTable.from_rows(np.stack([x, [1.0, 2.0, 3.0, 7.0]], 1), mult=1.0)
    q = torch.tensor([0.5, 5.0], dtype=torch.float64)
    assert torch.allclose(table.interpolate(q), 7.0 + (q - 0.3) * 40.0, rtol=1e-9)


def test_molecule_count_water():
    """1 mm^3 of water: 1e-9 m^3 * 1e6 g/m^3 / 18 g/mol * N_A."""
    n, _ = amorphous.molecule_count(1e-3, 1e-3, 1e-3, 1.0e6, 18.0)
    assert n == pytest.approx(1e-3 / 18.0 * 6.02214179e23, rel=1e-12)


def _small_detector(distance):
    return Detector(fpixels=6, spixels=5, pixel_size=1e-4, fdet=(0.0, 0.0, 1.0), sdet=(0.0, -1.0, 0.0),
                    odet=(1.0, 0.0, 0.0), beam=(1.0, 0.0, 0.0), twotheta_axis=(0.0, 1.0, 0.0),
                    distance=distance, Fbeam=2e-4, Sbeam=3e-4, oversample=2)


def test_background_gradients():
    """d(image)/d(distance, F table) by autograd matches finite differences (gradcheck)."""
    x = np.linspace(0.0, 0.5, 30)
    rows = np.stack([x, 2.5 + np.sin(6 * x)], 1)

    def image(distance, fvalues):
        table = amorphous.StolTable.from_rows(rows)
        table = amorphous.StolTable(table.stol, torch.cat([fvalues[:1], fvalues[:1], fvalues,
                                                            fvalues[-1:], fvalues[-1:]]))
        det = _small_detector(distance)
        src = np.array([[-10.0, 0.0, 0.0]])
        img, _ = amorphous.render_background(det, src, np.ones(1), np.array([1e-10]),
                                             amorphous.AmorphousSample(table, 1e15), 1e22)
        return img

    d = torch.tensor(0.002, dtype=torch.float64, requires_grad=True)
    f = torch.tensor(rows[:, 1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(image, (d, f), eps=1e-7, atol=1e-6, rtol=1e-4)


def test_bad_input_one_line_and_no_files(tmp_path, capsys):
    (tmp_path / "w.stol").write_text("0 1\n0.1 oops\n")
    out = tmp_path / "f.bin"
    code = nonbragg.main(["-stol", str(tmp_path / "w.stol"), "-detpixels", "8", "-floatfile", str(out),
                          "-intfile", str(tmp_path / "i.img"), "-noisefile", str(tmp_path / "n.img"),
                          "-pgmfile", str(tmp_path / "p.pgm"), "-seed", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "w.stol line 2" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.stol"]


@pytest.mark.parametrize("argv, word", [(["-detpixels", "8"], "-stol"), (["-stol", "x", "-bogus"], "bogus"),
                                        (["-stol", "x", "-pixel", "0"], "pixel"),
                                        (["-stol", "x", "-pivot", "up"], "pivot")])
def test_usage_errors(argv, word, capsys):
    assert nonbragg.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert word in err and len(err.splitlines()) == 1


def test_pgm_is_complete(tmp_path):
    (tmp_path / "u.stol").write_text("0 1\n0.5 1\n1 1\n")
    pgm = tmp_path / "p.pgm"
    assert nonbragg.main(["-stol", str(tmp_path / "u.stol"), "-detpixels_x", "7", "-detpixels_y", "5",
                          "-floatfile", str(tmp_path / "f.bin"), "-intfile", str(tmp_path / "i.img"),
                          "-pgmfile", str(pgm), "-nonoise", "-noprogress"]) == 0
    data = pgm.read_bytes()
    head = data.split(b"255\n", 1)[0] + b"255\n"
    assert head.startswith(b"P5\n7 5\n") and len(data) == len(head) + 7 * 5
    img = np.fromfile(tmp_path / "f.bin", dtype="<f4")
    assert img.size == 35 and math.isfinite(float(img.sum())) and img.min() > 0


def test_compiled_loop_equals_the_torch_path():
    """The numba loop nonBragg's command line uses and the differentiable torch path: same image."""
    x = np.linspace(0.0, 0.6, 50)
    table = amorphous.StolTable.from_rows(np.stack([x, 2.0 + np.cos(7 * x) - 1.5 * x], 1))
    det = Detector(fpixels=9, spixels=7, pixel_size=3e-3, fdet=(0.0, 0.0, 1.0), sdet=(0.0, -1.0, 0.0),
                   odet=(1.0, 0.0, 0.0), beam=(1.0, 0.0, 0.0), twotheta_axis=(0.0, 1.0, 0.0), distance=0.05,
                   Fbeam=1e-2, Sbeam=2e-2, rotx=0.1, twotheta=0.3, oversample=2, pivot="sample", Fclose=1e-2,
                   Sclose=1e-2)
    src = np.array([[-10.0, 0.0, 0.0], [-10.0, 0.01, -0.02]])
    args = (det, src, np.array([1.0, 0.5]), np.array([1e-10, 1.1e-10]), amorphous.AmorphousSample(table, 1e15), 1e22)
    kw = dict(kahn=0.7, polar_axis=(0.0, 0.0, 1.0), roi=((0, 5), (1, 7)))  # rows 0..5, columns 1..7
    with torch.no_grad():
        fast, om_fast = amorphous.render_background(*args, **kw)
    assert amorphous.compiled_path_applies(det, [], 0.7)
    fluence = torch.tensor(1e22, dtype=torch.float64, requires_grad=True)
    slow, om_slow = amorphous.render_background(*args[:-1], fluence, **kw)
    assert torch.allclose(fast, slow.detach(), rtol=1e-12, atol=0) and fast[:, 0].abs().sum() == 0
    assert abs(om_fast - float(om_slow)) <= 1e-12 * om_fast


@pytest.mark.parametrize("extra", [["-oversample", "3", "-point_pixel"],
                                   "-polar 0.5 -divergence 0.4 -divsteps 3 -roi 2 40 3 30".split()])
def test_row_vectorized_loop_is_the_per_pixel_loop_bit_for_bit(tmp_path, monkeypatch, extra):
    """For an ascending table the render runs along each row (vectorized square roots and
    divisions): the same float image, byte for byte, as one pixel at a time."""
    from nanobrag_torch import amorphous_kernel

    x = np.linspace(0.0, 0.6, 300)
    np.savetxt(tmp_path / "t.stol", np.stack([x, 2.5 + np.sin(7 * x)], 1))
    monkeypatch.chdir(tmp_path)
    args = ["-stol", "t.stol", "-lambda", "1", "-distance", "60", "-detpixels", "48", "-thick", "0.01", "-nonoise",
            "-nopgm", "-noprogress", "-floatfile", "f.bin"] + extra
    real, images = amorphous_kernel.compiled, []
    for rows in (False, True):
        monkeypatch.setattr(amorphous_kernel, "compiled", lambda sorted_table=False, r=rows: real(r and sorted_table))
        assert nonbragg.main(args) == 0
        images.append((tmp_path / "f.bin").read_bytes())
    assert images[0] == images[1] and len(images[0]) == 48 * 48 * 4
