"""The crystal model: lattice vectors, size and shape, structure factors, phi rotation, mosaic domains."""
import math
from dataclasses import dataclass, field, replace

import torch

from ..geometry.vectors import rotate_axis
from ..lattice import lattice_vectors


@dataclass
class Crystal:
    """Lattice, size, shape, structure factors and the rotation sampling (phi, mosaic)."""

    real: torch.Tensor = None  # (3, 3) rows a, b, c in metres at phi = 0
    recip: torch.Tensor = None  # (3, 3) rows a*, b*, c* in 1/Angstrom (used by the non-square shapes)
    Na: object = 1.0
    Nb: object = 1.0
    Nc: object = 1.0
    shape: str = "square"
    fudge: object = 1.0
    Fhkl: torch.Tensor = None  # (h_range, k_range, l_range) grid, or None
    hkl_min: tuple = (0, 0, 0)
    hkl_count: int = 0
    # Fhkl carries a one-cell border of default_F (hkl_min then indexes the border), so lookups
    # clamp onto it instead of testing each index; the compiled path builds such a grid
    hkl_bordered: bool = False
    default_F: object = 0.0
    interpolate: bool = False
    phi0: object = 0.0
    phistep: object = 0.0
    phisteps: int = 1
    spindle: object = (0.0, 0.0, 1.0)
    mosaic_spread: object = 0.0
    mosaic_umats: torch.Tensor = None  # (domains, 3, 3)
    extra: dict = field(default_factory=dict)
    # the lattice's definition (what real/recip were computed from), kept so that they can be
    # recomputed from differentiable values: cell (a, b, c in Angstrom, angles in radians),
    # mat (rows a*, b*, c* in 1/Angstrom: a MOSFLM matrix divided by its wavelength), misset (radians)
    cell: object = None
    mat: object = None
    misset: object = None

    @classmethod
    def from_cell(cls, a, b, c, alpha=90.0, beta=90.0, gamma=90.0, misset=None, **kw):
        """Crystal from a unit cell (Angstrom, degrees) and optional misset angles (degrees, x y z).

        Other keywords: see `Crystal.build`."""
        cell = [_f64(x) for x in (a, b, c)] + [torch.deg2rad(_f64(x)) for x in (alpha, beta, gamma)]
        return cls.build(cell=torch.stack(cell), misset=misset, **kw)

    @classmethod
    def from_matrix(cls, matrix, wavelength_A=None, misset=None, **kw):
        """Crystal from a MOSFLM orientation matrix: a file name or the (3, 3) matrix as written in
        the file (columns a*, b*, c* times the wavelength), divided by `wavelength_A`; with
        wavelength_A=None, `matrix` is taken as rows a*, b*, c* in 1/Angstrom."""
        if isinstance(matrix, (str, bytes)) or hasattr(matrix, "__fspath__"):
            from ..io.matrix import read_mosflm_matrix
            matrix = read_mosflm_matrix(matrix)
        mat = _f64(matrix)
        if wavelength_A is not None:
            mat = mat.T / wavelength_A
        return cls.build(mat=mat, misset=misset, **kw)

    @classmethod
    def build(cls, cell=None, mat=None, misset=None, N=1, hkl=None, default_F=0.0, shape="square", fudge=1.0,
              interpolate=False, phi_deg=0.0, osc_deg=0.0, phisteps=1, spindle=(0.0, 0.0, 1.0),
              mosaic_deg=0.0, mosaic_domains=1, mosaic_seed=-12345678, dtype=torch.float64, device="cpu"):
        """Crystal from a lattice definition with nanoBragg's meaning of each setting.

        N: cells along a, b, c (one number or three); hkl: an HKL file name, a {(h, k, l): F}
        dict or a pair (indices (n, 3), F (n,)); phi_deg/osc_deg/phisteps: rotation about
        `spindle` (phi step = osc / phisteps); mosaic_deg/mosaic_domains/mosaic_seed: nanoBragg's
        mosaic domains. Missing reflections take default_F."""
        na, nb, nc = (N, N, N) if not isinstance(N, (tuple, list)) else N
        misset = None if misset is None else torch.deg2rad(_f64(misset))
        grid = None if hkl is None else _hkl_grid(hkl, default_F)
        t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)
        umats = None
        if mosaic_deg > 0 and mosaic_domains > 1:
            from ..rng import mosaic_umats
            umats = t(mosaic_umats(math.radians(mosaic_deg), mosaic_domains, mosaic_seed))
        crystal = cls(Na=na, Nb=nb, Nc=nc, shape=shape, fudge=fudge,
                      Fhkl=None if grid is None else t(grid.F),
                      hkl_min=(0, 0, 0) if grid is None else (grid.h_min, grid.k_min, grid.l_min),
                      hkl_count=0 if grid is None else grid.count, default_F=default_F,
                      interpolate=bool(interpolate and grid is not None), phi0=math.radians(phi_deg),
                      phistep=math.radians(osc_deg) / max(phisteps, 1), phisteps=max(int(phisteps), 1),
                      spindle=tuple(float(x) for x in spindle), mosaic_spread=math.radians(mosaic_deg),
                      mosaic_umats=umats, cell=cell, mat=mat, misset=misset)
        crystal.real, crystal.recip = crystal.lattice(dtype, device)
        return crystal

    def lattice(self, dtype=None, device=None):
        """(real vectors in metres, reciprocal vectors in 1/Angstrom) recomputed from cell/mat/misset.

        Computed in float64 (as the command line does) and then converted, so that the values
        equal the stored ones bit for bit when nothing has changed."""
        if self.cell is None and self.mat is None:
            raise ValueError("this crystal has no cell or matrix definition to recompute its lattice from")
        dtype = dtype or self.real.dtype
        device = device or self.real.device
        f64 = lambda x: None if x is None else _f64(x, device)
        cell = None if self.cell is None else f64(self.cell).unbind(0)
        misset = None if self.misset is None else f64(self.misset).unbind(0)
        real, recip, _ = lattice_vectors(cell=cell, reciprocal=f64(self.mat), misset=misset)
        return (real * 1e-10).to(dtype), recip.to(dtype)

    def to(self, dtype, device):
        """This crystal with its tensors converted (itself when they already match)."""
        tensors = {k: getattr(self, k) for k in ("real", "recip", "Fhkl", "mosaic_umats")}
        if all(v is None or (v.dtype == dtype and v.device == torch.device(device)) for v in tensors.values()):
            return self
        return replace(self, **{k: None if v is None else v.to(dtype=dtype, device=device) for k, v in tensors.items()})

    @property
    def domains(self):
        return 1 if self.mosaic_umats is None else self.mosaic_umats.shape[0]

    def rotated_vectors(self):
        """Real vectors for every (phi step, mosaic domain): shape (phisteps, domains, 3, 3)."""
        real = self.real
        dt, dev = real.dtype, real.device
        steps = torch.arange(self.phisteps, dtype=dt, device=dev)
        phistep = torch.as_tensor(self.phistep, dtype=dt, device=dev)
        phi = torch.as_tensor(self.phi0, dtype=dt, device=dev) + phistep * steps
        axis = torch.as_tensor(self.spindle, dtype=dt, device=dev)
        rot = rotate_axis(real[None, :, :], axis, phi[:, None])  # (phisteps, 3, 3)
        if self.mosaic_umats is None or not _positive(self.mosaic_spread):
            return rot[:, None, :, :]
        u = self.mosaic_umats.to(dtype=dt, device=dev)
        return torch.einsum("mij,pvj->pmvi", u, rot)

    def starts_at_phi_zero(self):
        """Several phi steps starting at exactly phi = 0: where nanoBragg.c's phi = 0 quirk applies
        (its value decides, also when phi0 is a differentiable tensor)."""
        phi0 = self.phi0.detach() if torch.is_tensor(self.phi0) else self.phi0
        return self.phisteps > 1 and float(phi0) == 0.0


def _positive(x):
    if torch.is_tensor(x):
        return x.requires_grad or bool(x > 0)
    return x > 0


def _f64(x, device=None):
    if torch.is_tensor(x):
        return x.to(dtype=torch.float64, device=device if device is not None else x.device)
    return torch.tensor(x, dtype=torch.float64, device=device)


def _hkl_grid(hkl, default_F):
    """HKLGrid from a file name, a {(h, k, l): F} dict or (indices (n, 3), F (n,))."""
    import numpy as np

    from ..io import hkl as hkl_io
    if isinstance(hkl, (str, bytes)) or hasattr(hkl, "__fspath__"):
        return hkl_io.read_hkl(hkl, default_F)
    if isinstance(hkl, dict):
        idx, values = list(hkl.keys()), list(hkl.values())
    else:
        idx, values = hkl
    idx = np.asarray(idx, dtype=np.int64).reshape(-1, 3)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    lo, hi = idx.min(axis=0), idx.max(axis=0)
    shape = tuple(int(v) for v in hi - lo + 1)
    F = np.full(shape, float(default_F))
    F[tuple((idx - lo).T)] = values
    return hkl_io.HKLGrid(F, int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]), int(lo[2]), int(hi[2]), len(values))


