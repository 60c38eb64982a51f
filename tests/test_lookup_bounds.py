"""Structure-factor lookup at the edges of the HKL grid: one index past either end of each axis
takes default_F, the corners are the stored values. Checked for the eager engine's grid and for
the bordered grid the compiled kernel looks up."""
import itertools

import pytest
import torch

import nanobrag_torch as nb
from nanobrag_torch import engine, fused

DEFAULT_F = 7.0
# an asymmetric grid: h -2..1, k 0..2, l -3..-1, every stored value distinct and != default_F
H, K, L = range(-2, 2), range(0, 3), range(-3, 0)


def _crystal():
    values = {(h, k, l): 100.0 + 9 * h + 3 * k + l + 50 for h in H for k in K for l in L}
    return nb.Crystal.from_cell(50, 60, 70, default_F=DEFAULT_F, hkl=values), values


def _lookup(crystal, hkl):
    idx = torch.tensor(hkl, dtype=torch.float64)
    dflt = torch.tensor(crystal.default_F, dtype=torch.float64)
    return engine._nearest_F(crystal, idx[:, 0], idx[:, 1], idx[:, 2], dflt)


@pytest.fixture(params=["eager", "compiled"])
def grid(request):
    crystal, values = _crystal()
    assert crystal.hkl_min == (-2, 0, -3) and tuple(crystal.Fhkl.shape) == (4, 3, 3)
    return (crystal if request.param == "eager" else fused.bordered(crystal)), values


def test_corners_are_the_stored_values(grid):
    crystal, values = grid
    corners = list(itertools.product((H[0], H[-1]), (K[0], K[-1]), (L[0], L[-1])))
    got = _lookup(crystal, corners)
    assert got.tolist() == [values[c] for c in corners]


def test_one_past_each_end_of_each_axis_is_default_F(grid):
    crystal, values = grid
    inside = (H[1], K[1], L[1])
    outside = []
    for axis, span in enumerate((H, K, L)):
        for edge in (span[0] - 1, span[-1] + 1, span[0] - 5, span[-1] + 40):
            hkl = list(inside)
            hkl[axis] = edge
            outside.append(tuple(hkl))
    got = _lookup(crystal, outside + [inside])
    assert got[:-1].tolist() == [DEFAULT_F] * len(outside)
    assert float(got[-1]) == values[inside]
