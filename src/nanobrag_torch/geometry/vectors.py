"""Small 3-vector helpers on tensors whose last axis has length 3 (gradient-safe)."""
import torch


def dot(a, b):
    # explicit left-to-right sum: the same rounding as nanoBragg's dot product
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def cross(a, b):
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack((ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx), -1)


def norm(v):
    """Length of v, with a finite gradient at v = 0 (the gradient there is taken as 0)."""
    sq = dot(v, v)
    safe = torch.where(sq > 0, sq, torch.ones_like(sq))
    return torch.where(sq > 0, torch.sqrt(safe), torch.zeros_like(sq))


def unitize(v):
    """(unit vector, length); a zero vector stays zero, as in nanoBragg."""
    length = norm(v)
    safe = torch.where(length > 0, length, torch.ones_like(length))
    return torch.where((length > 0).unsqueeze(-1), v / safe.unsqueeze(-1), torch.zeros_like(v)), length


def rotate_axis(v, axis, angle):
    """Rotate v about the unit vector `axis` by `angle` (right-handed, Rodrigues)."""
    angle = torch.as_tensor(angle, dtype=v.dtype, device=v.device)
    c, s = torch.cos(angle), torch.sin(angle)
    if c.dim():
        c, s = c.unsqueeze(-1), s.unsqueeze(-1)
    return rotate_cos_sin(v, axis, c, s)


def rotate_cos_sin(v, axis, c, s):
    """rotate_axis given the angle's cosine and sine (each shaped like v without, or with a
    length-1, last axis), for callers that must take them from the C library's cos and sin."""
    along = dot(axis, v).unsqueeze(-1) * (1 - c)
    ax, ay, az = axis.unbind(-1)
    vx, vy, vz = v.unbind(-1)
    # component order as in nanoBragg so that signs of zeros (printed as -0) agree too
    turn = torch.stack((-az * vy + ay * vz, az * vx - ax * vz, -ay * vx + ax * vy), -1)
    return axis * along + v * c + turn * s


def rotate_xyz(v, rx, ry, rz):
    """Rotate about x, then y, then z (nanoBragg's misset / detector-rotation order)."""
    x, y, z = v.unbind(-1)
    cx, sx = torch.cos(rx), torch.sin(rx)
    y, z = y * cx - z * sx, y * sx + z * cx
    cy, sy = torch.cos(ry), torch.sin(ry)
    x, z = x * cy + z * sy, -x * sy + z * cy
    cz, sz = torch.cos(rz), torch.sin(rz)
    x, y = x * cz - y * sz, x * sz + y * cz
    return torch.stack((x, y, z), -1)
