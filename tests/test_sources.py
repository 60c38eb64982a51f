"""The generated source grid (divergence x dispersion) against rotations and counts worked out by hand."""
import math

import numpy as np
import pytest

from nanobrag_torch.sources import SOURCE_DISTANCE, divergence_grid

BEAM, POLAR, VERT = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0)


def grid(hrange, hsteps, vrange, vsteps, dispersion=0.0, dsteps=1, round_div=False):
    hstep = hrange / (hsteps - 1) if hsteps > 1 else 0.0
    vstep = vrange / (vsteps - 1) if vsteps > 1 else 0.0
    dstep = dispersion / (dsteps - 1) if dsteps > 1 else 0.0
    return divergence_grid(BEAM, POLAR, VERT, 1e-10, hrange, hstep, hsteps, vrange, vstep, vsteps,
                           dispersion, dstep, dsteps, round_div)


def rotation(axis, angle):
    """Right-handed rotation matrix about a unit axis (matrix form, independent of the code's Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def test_order_is_h_outer_v_inner_and_wavelength_innermost():
    g = grid(2e-3, 3, 1e-3, 2, dispersion=0.1, dsteps=4)
    assert g.divsteps == 6 and len(g.positions) == 24
    expected_ticks = [(h, v) for h in (-1e-3, 0.0, 1e-3) for v in (-5e-4, 5e-4)]
    assert np.allclose(g.divergence_ticks, expected_ticks, rtol=0, atol=1e-18)
    lambdas = 1e-10 * (1 + np.array([-0.05, -0.05 + 0.1 / 3, 0.05 - 0.1 / 3, 0.05]))
    assert np.allclose(g.wavelengths, np.tile(lambdas, 6), rtol=1e-15)
    # every wavelength of a tick shares that tick's position
    assert np.array_equal(g.positions, np.repeat(g.positions[::4], 4, axis=0))
    assert np.allclose(g.weights, 1 / 24, rtol=1e-15)


def test_positions_are_the_beam_turned_by_vdiv_about_polar_then_hdiv_about_vert():
    g = grid(0.02, 5, 0.03, 4)
    start = -SOURCE_DISTANCE * np.array(BEAM)
    for (h, v), pos in zip(g.divergence_ticks, g.positions):
        expected = rotation(VERT, h) @ (rotation(POLAR, v) @ start)
        assert np.allclose(pos, expected, rtol=0, atol=1e-14)
        assert math.isclose(np.linalg.norm(pos), SOURCE_DISTANCE, rel_tol=1e-15)


@pytest.mark.parametrize("steps, kept", [(5, 13), (3, 5), (7, 29)])
def test_round_div_keeps_the_points_inside_the_ellipse(steps, kept):
    # on an odd grid of half-width w steps the test is (i^2 + j^2) / w^2 <= 1.1
    g = grid(1e-3, steps, 1e-3, steps, round_div=True)
    w = (steps - 1) / 2
    by_hand = sum(1 for i in range(steps) for j in range(steps) if ((i - w) ** 2 + (j - w) ** 2) / w ** 2 <= 1.1)
    assert g.divsteps == by_hand == kept
    for h, v in g.divergence_ticks:
        assert (h / 5e-4) ** 2 + (v / 5e-4) ** 2 <= 1.1 + 1e-12


def test_round_div_with_a_zero_range_trims_nothing():
    # nanoBragg divides by the zero range (NaN), and NaN never exceeds the bound
    g = grid(0.0, 1, 1e-3, 5, round_div=True)
    assert g.divsteps == 5


def test_a_large_grid_is_built_whole():
    g = grid(1e-2, 150, 1e-2, 150, dispersion=0.02, dsteps=3)
    assert g.positions.shape == (150 * 150 * 3, 3) and g.divsteps == 22500
    assert np.allclose(np.linalg.norm(g.positions, axis=1), SOURCE_DISTANCE, rtol=1e-15)
