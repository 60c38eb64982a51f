"""Crystal lattice mathematics: unit cell or MOSFLM matrix -> real and reciprocal vectors, mosaic rotations.

Follows nanoBragg: a default orientation is built from the cell (a* along x), the misset
rotation is applied to the reciprocal vectors, then real and reciprocal vectors are regenerated
from each other so that the user's cell lengths and volume are enforced exactly.
"""
import math

import torch

from .geometry.vectors import cross, dot, norm, rotate_axis, rotate_xyz

DBL_MIN = 2.2250738585072014e-308


def _rescale(v, length):
    old = norm(v)
    old = torch.where(old <= 0, torch.ones_like(old), old)
    return (length / old).unsqueeze(-1) * v if torch.is_tensor(length) and length.dim() else length / old * v


def reciprocal_from_cell(a, b, c, alpha, beta, gamma):
    """Default-orientation reciprocal vectors (rows a*, b*, c*; 1/Angstrom) and the cell volume."""
    aavg = (alpha + beta + gamma) / 2
    skew = torch.sin(aavg) * torch.sin(aavg - alpha) * torch.sin(aavg - beta) * torch.sin(aavg - gamma)
    skew = torch.abs(skew)
    volume = 2.0 * a * b * c * torch.sqrt(torch.where(skew > 0, skew, torch.ones_like(skew)))
    volume = torch.where((skew > 0) & (volume > 0), volume, torch.full_like(volume, DBL_MIN))
    vstar = 1.0 / volume
    as_len = torch.abs(b * c * torch.sin(alpha) * vstar)
    bs_len = torch.abs(c * a * torch.sin(beta) * vstar)
    cs_len = torch.abs(a * b * torch.sin(gamma) * vstar)
    sin_gs = torch.clamp(c * vstar / as_len / bs_len, max=1.0)
    cos_as = (torch.cos(beta) * torch.cos(gamma) - torch.cos(alpha)) / (torch.sin(beta) * torch.sin(gamma))
    cos_bs = (torch.cos(gamma) * torch.cos(alpha) - torch.cos(beta)) / (torch.sin(gamma) * torch.sin(alpha))
    cos_gs = (torch.cos(alpha) * torch.cos(beta) - torch.cos(gamma)) / (torch.sin(alpha) * torch.sin(beta))
    one = torch.ones_like(cos_as)
    cos_as = torch.where(cos_as * cos_as > 1, one, cos_as)
    cos_bs = torch.where(cos_bs * cos_bs > 1, one, cos_bs)
    cos_gs = torch.where(cos_gs * cos_gs > 1, one, cos_gs)
    zero = torch.zeros_like(as_len)
    astar = torch.stack((as_len, zero, zero))
    bstar = torch.stack((bs_len * cos_gs, bs_len * sin_gs, zero))
    cstar = torch.stack((cs_len * cos_bs, cs_len * (cos_as - cos_bs * cos_gs) / sin_gs,
                         cs_len * volume / (a * b * c * sin_gs)))
    return torch.stack((astar, bstar, cstar)), volume


def lattice_vectors(cell=None, reciprocal=None, misset=None):
    """Real (Angstrom) and reciprocal (1/Angstrom) vectors as rows, plus the cell volume.

    cell: (a, b, c, alpha, beta, gamma) tensors, angles in radians; reciprocal: (3, 3) rows
    a*, b*, c* that override the cell's orientation (MOSFLM matrix / wavelength)."""
    volume_cell = None
    if cell is not None:
        rstar, volume_cell = reciprocal_from_cell(*cell)
    if reciprocal is not None:
        rstar = reciprocal
    if misset is not None:
        rstar = rotate_xyz(rstar, misset[0], misset[1], misset[2])
    astar, bstar, cstar = rstar.unbind(0)
    bxc, cxa, axb = cross(bstar, cstar), cross(cstar, astar), cross(astar, bstar)
    vstar = dot(astar, bxc)
    if cell is not None:
        bxc = _rescale(bxc, cell[0] / volume_cell)
        cxa = _rescale(cxa, cell[1] / volume_cell)
        axb = _rescale(axb, cell[2] / volume_cell)
        vstar = 1.0 / volume_cell
    volume = 1.0 / vstar
    a, b, c = bxc * volume, cxa * volume, axb * volume
    astar, bstar, cstar = cross(b, c) * vstar, cross(c, a) * vstar, cross(a, b) * vstar
    return torch.stack((a, b, c)), torch.stack((astar, bstar, cstar)), volume


def cell_parameters(real, recip, volume):
    """(a, b, c, alpha, beta, gamma) of real and reciprocal cells, angles in degrees (for reports)."""
    def params(v, w, vol):
        la, lb, lc = (float(norm(x)) for x in v)
        lsa, lsb, lsc = (float(norm(x)) for x in w)
        sins = (lsa * vol / lb / lc, lsb * vol / la / lc, lsc * vol / la / lb)
        coss = (float(dot(v[1], v[2])) / lb / lc, float(dot(v[0], v[2])) / la / lc, float(dot(v[0], v[1])) / la / lb)
        angles = []
        for s, co in zip(sins, coss):
            s = max(-1.0, min(1.0, s))
            co = 1.0 if co * co > 1 else co
            angles.append(math.degrees(math.atan2(s, co)))
        return (la, lb, lc, *angles)

    vol = float(volume)
    return params(real, recip, vol), params(recip, real, 1.0 / vol)


def mosaic_axis_angles(umats):
    """Rotation axis (D, 3) and angle (D,) of each mosaic domain rotation (float64 numpy)."""
    import numpy as np

    u = np.asarray(umats, dtype=np.float64)
    # sin(angle) * axis from the antisymmetric part; atan2 keeps small angles accurate
    w = np.stack((u[:, 2, 1] - u[:, 1, 2], u[:, 0, 2] - u[:, 2, 0], u[:, 1, 0] - u[:, 0, 1]), -1) / 2.0
    s = np.linalg.norm(w, axis=-1)
    c = (np.trace(u, axis1=1, axis2=2) - 1.0) / 2.0
    angle = np.arctan2(s, c)
    axis = np.where(s[:, None] > 0, w / np.where(s > 0, s, 1.0)[:, None], np.array([0.0, 0.0, 1.0]))
    return axis, angle


def axis_angle_umats(axes, angles):
    """(D, 3, 3) rotation matrices about unit `axes` (D, 3) by `angles` (D,) (right-handed)."""
    eye = torch.eye(3, dtype=axes.dtype, device=axes.device)
    # row j of rotate_axis(eye) is R e_j, i.e. column j of R
    return rotate_axis(eye[None, :, :], axes[:, None, :], angles[:, None]).transpose(-1, -2)
