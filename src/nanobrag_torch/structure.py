"""Structure factors of an atomic model by direct summation over atoms, in torch (differentiable).

F(h) = sum over atoms j and symmetry operators (R, t) of
       occ_j (f0_j(s) + f'_j + i f''_j) exp(-B_j s^2 / 4) exp(2 pi i h . (R x_j + t)),
with x_j the fractional coordinates, s = 1/d, f0 the International Tables (1992) four-Gaussian
form factors (gemmi's table, so that F equals gemmi's StructureFactorCalculatorX). Isotropic B only;
no bulk solvent.

Only one reflection per symmetry orbit is computed (h R for every rotation R, and -h unless the
model is anomalous): the amplitudes of the orbit are equal. Reflections go through in chunks
(bounded memory); with autograd each chunk is recomputed in the backward pass, so memory does not grow with the
number of reflections either.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

HC_EV_A = 12398.42  # h c in eV Angstrom, as nanoBragg's -energy
TERM_BUDGET = 1 << 18  # (reflection x atom) terms per chunk: a few MB per intermediate
ROW_BUDGET = 1 << 20  # (row x atom) terms per block of rows (the products run over whole rows)


@dataclass
class Symmetry:
    """A space group as its operators on fractional coordinates: x' = R x + t."""

    name: str
    rot: np.ndarray  # (m, 3, 3) float64
    tran: np.ndarray  # (m, 3) float64

    @classmethod
    def from_name(cls, name: str) -> Symmetry:
        import gemmi

        sg = gemmi.find_spacegroup_by_name(name) if name and name.strip() else None
        if sg is None:
            raise ValueError(f"unknown space group {name!r}")
        return cls.from_gemmi(sg)

    @classmethod
    def from_gemmi(cls, sg) -> Symmetry:
        import gemmi

        ops = list(sg.operations())
        rot = np.array([op.rot for op in ops], dtype=np.float64) / gemmi.Op.DEN
        tran = np.array([op.tran for op in ops], dtype=np.float64) / gemmi.Op.DEN
        return cls(sg.hm, rot, tran)

    def rotations(self) -> np.ndarray:
        """The distinct rotation parts (integer matrices), the identity first."""
        rots = np.unique(np.rint(self.rot).astype(np.int64), axis=0)
        identity = (rots == np.eye(3, dtype=np.int64)).all(axis=(1, 2))
        return np.concatenate((rots[identity], rots[~identity]))


def cell_matrices(cell) -> tuple[np.ndarray, np.ndarray]:
    """(orthogonalization, fractionalization) matrices of a cell (a, b, c in Angstrom, angles in
    degrees) in the PDB convention (a along x, b in the xy plane), as gemmi uses."""
    a, b, c = (float(x) for x in cell[:3])
    al, be, ga = (math.radians(float(x)) for x in cell[3:])
    ca, cb, cg, sg = math.cos(al), math.cos(be), math.cos(ga), math.sin(ga)
    vol = a * b * c * math.sqrt(max(1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg, 0.0))
    orth = np.array([[a, b * cg, c * cb],
                     [0.0, b * sg, c * (ca - cb * cg) / sg],
                     [0.0, 0.0, vol / (a * b * sg)]])
    return orth, np.linalg.inv(orth)


def form_factor_coefficients(symbols) -> np.ndarray:
    """(n, 9) IT92 coefficients a1..a4, b1..b4, c of neutral atoms (gemmi's table)."""
    import gemmi

    return np.array([gemmi.Element(s).it92.get_coefs() for s in symbols], dtype=np.float64)


def anomalous_terms(symbols, wavelength_A: float) -> tuple[np.ndarray, np.ndarray]:
    """(f', f'') of each element at this wavelength (Cromer-Liberman, as computed by gemmi)."""
    import gemmi

    energy = HC_EV_A / float(wavelength_A)
    pairs = [gemmi.cromer_liberman(gemmi.Element(s).atomic_number, energy) for s in symbols]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


@dataclass
class AtomicModel:
    """Atoms of the asymmetric unit with their cell and space group.

    xyz: (n, 3) Cartesian Angstrom (the cell's PDB orthogonalization); B: (n,) Angstrom^2;
    occ: (n,); element: (n,) index into `symbols`. fprime/fdprime: (elements,) anomalous
    corrections (zero unless `with_anomalous` was used)."""

    xyz: torch.Tensor
    B: torch.Tensor
    occ: torch.Tensor
    element: torch.Tensor
    symbols: list
    cell: tuple
    symmetry: Symmetry
    fprime: torch.Tensor = None
    fdprime: torch.Tensor = None
    names: list = field(default_factory=list)  # atom labels for messages
    # the last F computed, shared by the stills of one render pass (see `cached_structure_factors`)
    _cache: tuple = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_atoms(cls, elements, xyz, B, occ=None, cell=(1.0, 1.0, 1.0, 90.0, 90.0, 90.0),
                   spacegroup: str = "P 1", names=None) -> AtomicModel:
        """A model from element symbols, Cartesian coordinates (Angstrom), B factors (Angstrom^2)
        and occupancies (default 1)."""
        symbols = sorted(set(elements), key=list(elements).index)
        index = torch.tensor([symbols.index(e) for e in elements], dtype=torch.long)
        f64 = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=torch.float64).clone()
        occ = np.ones(len(elements)) if occ is None else occ
        return cls(f64(xyz).reshape(-1, 3), f64(B).reshape(-1), f64(occ).reshape(-1), index, symbols,
                   tuple(float(x) for x in cell), Symmetry.from_name(spacegroup), names=list(names or []))

    def with_anomalous(self, wavelength_A: float) -> AtomicModel:
        """The same model with f' and f'' of every element at this wavelength."""
        fp, fpp = anomalous_terms(self.symbols, wavelength_A)
        t = lambda x: torch.as_tensor(x, dtype=torch.float64)
        return replace(self, fprime=t(fp), fdprime=t(fpp))

    @property
    def anomalous(self) -> bool:
        return self.fdprime is not None and bool((self.fdprime != 0).any())

    def structure_factors(self, hkl, amplitudes: bool = True) -> torch.Tensor:
        """F for (n, 3) Miller indices: amplitudes (float64) or complex values (complex128)."""
        return structure_factors(self, hkl, amplitudes)

    def cached_structure_factors(self, reps: np.ndarray) -> torch.Tensor:
        """Amplitudes at `reps`, reused while the atoms (the same tensors, unchanged) and the grad
        mode stay the same: several stills of one model then share one computation and one
        graph. A backward pass through the result forgets it, so a freed graph is never reused."""
        tensors = (self.xyz, self.B, self.occ, self.fprime, self.fdprime)
        state = (torch.is_grad_enabled(), [None if t is None else t._version for t in tensors])
        c = self._cache
        if c is not None and c[0] == state and all(a is b for a, b in zip(c[1], tensors)) \
                and (c[2] is reps or (c[2].shape == reps.shape and np.array_equal(c[2], reps))):
            return c[3]
        F = structure_factors(self, reps)
        if F.requires_grad:
            F.register_hook(self._forget)
        self._cache = (state, tensors, reps, F)
        return F

    def _forget(self, grad):
        self._cache = None


def form_factors(coefs: np.ndarray, fprime: np.ndarray, stol2: np.ndarray) -> np.ndarray:
    """(n, elements) f0 + f' at sin^2(theta)/lambda^2 = stol2 (n,), evaluated as gemmi evaluates its
    single-precision IT92 table (float32 arithmetic, terms added in order), so that F matches
    gemmi's to rounding; the tabulated fits themselves are good to ~1e-3."""
    f32 = np.float32
    x = stol2.astype(f32)[:, None]
    c = coefs.astype(f32)
    f = np.broadcast_to(c[:, 8], (len(x), len(c))).copy()
    for i in range(4):
        e = np.exp((-c[:, 4 + i] * x).astype(np.float64)).astype(f32)  # ~ a correctly rounded expf
        f = f + c[:, i] * e
    return (f + np.asarray(fprime, dtype=np.float64).astype(f32)).astype(np.float64)


def _chunk_sf(hkl, stol2, frac, B, weights, f, fdprime):
    """(real, imaginary) F of one chunk of reflections: f (c, elements) holds f0 + f', weights
    (atoms, elements) the occupancies."""
    phase = (2 * math.pi) * (hkl @ frac.T)
    dw = torch.exp(-stol2[:, None] * B[None, :])
    cos_sum = (torch.cos(phase) * dw) @ weights
    sin_sum = (torch.sin(phase) * dw) @ weights
    real = (f * cos_sum - fdprime[None] * sin_sum).sum(-1)
    imag = (f * sin_sum + fdprime[None] * cos_sum).sum(-1)
    return real, imag


def _expanded_atoms(model):
    """Fractional coordinates, B and per-element occupancy weights of every symmetry image."""
    frac_m = cell_matrices(model.cell)[1]
    dev = model.xyz.device
    t = lambda x: torch.as_tensor(x, dtype=torch.float64, device=dev)
    frac = model.xyz.to(torch.float64) @ t(frac_m).T  # (n, 3)
    rot, tran = t(model.symmetry.rot), t(model.symmetry.tran)
    images = (torch.einsum("mij,nj->mni", rot, frac) + tran[:, None, :]).reshape(-1, 3)
    m = rot.shape[0]
    onehot = torch.nn.functional.one_hot(model.element.to(dev), len(model.symbols)).to(torch.float64)
    weights = (onehot * model.occ.to(torch.float64)[:, None]).repeat(m, 1)
    return images, model.B.to(torch.float64).repeat(m), weights, model.element.to(dev).repeat(m)


def structure_factors(model: AtomicModel, hkl, amplitudes: bool = True) -> torch.Tensor:
    """F of `model` at (n, 3) Miller indices: amplitudes (float64) or complex values (complex128)."""
    dev = model.xyz.device
    hkl_np = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    hkl = torch.as_tensor(hkl_np, dtype=torch.float64, device=dev)
    images, B, weights, element = _expanded_atoms(model)
    recip_np = cell_matrices(model.cell)[1]  # rows a*, b*, c*
    s = hkl @ torch.as_tensor(recip_np, dtype=torch.float64, device=dev)
    stol2 = (s * s).sum(-1) / 4.0
    n_el = len(model.symbols)
    fp = np.zeros(n_el) if model.fprime is None else model.fprime.detach().cpu().numpy()
    f = torch.as_tensor(form_factors(form_factor_coefficients(model.symbols), fp, stol2.cpu().numpy()), device=dev)
    fpp = torch.zeros(n_el, dtype=torch.float64, device=dev) if model.fdprime is None else \
        model.fdprime.to(dev, torch.float64)
    grad = torch.is_grad_enabled() and any(x.requires_grad for x in (model.xyz, model.B, model.occ, fpp))
    run = _Recomputed.apply if grad else (lambda fn, *args: fn(*args))
    axis = _row_axis(recip_np)
    if axis is None or len(hkl_np) == 0:
        step = max(1, TERM_BUDGET // max(1, images.shape[0]))
        chunks = ((slice(i, i + step), *run(_chunk_sf, hkl[i:i + step], stol2[i:i + step], images, B, weights,
                                            f[i:i + step], fpp)) for i in range(0, hkl.shape[0], step))
    else:
        chunks = _rows_sf(hkl_np, axis, recip_np, images, B, weights, element, f, fpp, run)
    real, imag = _assemble(len(hkl_np), chunks, grad, hkl)
    if not amplitudes:
        return torch.complex(real, imag)
    return safe_amplitude(real, imag)


class _Recomputed(torch.autograd.Function):
    """fn(*args) without keeping its intermediate values: backward evaluates it again, so memory
    stays at one chunk (torch.utils.checkpoint would do too, but its first use imports ~800
    modules)."""

    @staticmethod
    def forward(ctx, fn, *args):
        ctx.fn, ctx.layout = fn, [torch.is_tensor(a) for a in args]
        ctx.others = [None if torch.is_tensor(a) else a for a in args]
        ctx.save_for_backward(*[a for a in args if torch.is_tensor(a)])
        return fn(*args)

    @staticmethod
    def backward(ctx, *grads):
        saved, needs = iter(ctx.saved_tensors), ctx.needs_input_grad[1:]
        args = [next(saved).detach().requires_grad_(need) if is_tensor else other
                for is_tensor, other, need in zip(ctx.layout, ctx.others, needs)]
        with torch.enable_grad():
            outputs = ctx.fn(*args)
        wanted = [a for a, need in zip(args, needs) if need]
        got = iter(torch.autograd.grad(outputs, wanted, grads, allow_unused=True))
        return (None, *[next(got) if need else None for need in needs])


def _row_axis(recip: np.ndarray):
    """A reciprocal axis perpendicular to the other two (the fast path's rows run along it)."""
    norms = np.linalg.norm(recip, axis=1)
    for i in (2, 1, 0):
        if all(abs(recip[i] @ recip[j]) <= 1e-12 * norms[i] * norms[j] for j in range(3) if j != i):
            return i
    return None


def _rows_sf(hkl, axis, recip, images, B, weights, element, f, fdprime, run):
    """(positions, real, imaginary) of F by blocks of rows along a reciprocal axis perpendicular to
    the other two.

    Along such a row s^2 = A(h, k) + l^2 |c*|^2, so each atom's term factorizes into a part that
    depends on the row, W = exp(-B A / 4 + 2 pi i (h x + k y)), and one that depends on l alone,
    G = exp(-B l^2 |c*|^2 / 4 + 2 pi i l z): the sum over atoms of each element is the complex
    matrix product W G, evaluated for whole rows (a box around the reflections asked for)."""
    perm = [j for j in range(3) if j != axis] + [axis]
    hp = hkl[:, perm]
    rows, row_of = np.unique(hp[:, :2], axis=0, return_inverse=True)
    row_of = row_of.reshape(-1)
    lmin = int(hp[:, 2].min())
    n_l = int(hp[:, 2].max()) - lmin + 1
    dev = images.device
    t = lambda x: torch.as_tensor(x, device=dev)
    xyz = images[:, perm]
    rowvec = rows @ recip[perm[:2]]
    row_s2 = t((rowvec * rowvec).sum(-1))
    ls = t(np.arange(lmin, lmin + n_l, dtype=np.float64))
    c2 = float(recip[axis] @ recip[axis])
    G = torch.exp(torch.complex(-B[:, None] * (c2 / 4.0) * ls[None] ** 2, (2 * math.pi) * xyz[:, 2:3] * ls[None]))
    groups = [torch.nonzero(element == e).reshape(-1) for e in range(weights.shape[1])]
    step = max(1, ROW_BUDGET // max(1, images.shape[0]))
    order = np.argsort(row_of, kind="stable")
    bounds = np.searchsorted(row_of[order], np.arange(0, len(rows) + step, step))
    for c, r0 in enumerate(range(0, len(rows), step)):
        pick = t(order[bounds[c]:bounds[c + 1]])
        local = t(row_of[pick.cpu().numpy()] - r0) * n_l + t(hp[pick.cpu().numpy(), 2] - lmin)
        yield (pick, *run(_row_chunk, t(rows[r0:r0 + step].astype(np.float64)), row_s2[r0:r0 + step], xyz, B,
                          weights, G, local, f[pick], fdprime, groups))


def _assemble(n, chunks, grad, like):
    """(real, imaginary) of n reflections from (positions, real, imaginary) chunks. Without autograd
    the chunks are copied into preallocated results as they come (keeping every small chunk result
    alive among the big temporaries fragments the heap: resident memory grew ~2 MB per chunk)."""
    if grad:
        where, real, imag = zip(*chunks)
        index = torch.cat([torch.arange(n, device=like.device)[w] for w in where])
        zeros = like.new_zeros(n)
        return zeros.index_put((index,), torch.cat(real)), zeros.index_put((index,), torch.cat(imag))
    real, imag = like.new_zeros(n), like.new_zeros(n)
    for where, re, im in chunks:
        real[where], imag[where] = re, im
    return real, imag


def _row_chunk(rows, row_s2, xyz, B, weights, G, local, f, fdprime, groups):
    """F of the reflections at flat positions `local` of a block of rows (rows x l)."""
    W = torch.exp(torch.complex(-row_s2[:, None] * B[None] / 4.0, (2 * math.pi) * (rows @ xyz[:, :2].T)))
    per_element = []
    for e, idx in enumerate(groups):  # a handful of elements, each one matrix product
        block = (W[:, idx] * weights[idx, e].to(W.dtype)) @ G[idx]
        per_element.append(block.reshape(-1)[local])
    P = torch.stack(per_element, -1)  # (reflections, elements)
    real = (f * P.real - fdprime * P.imag).sum(-1)
    imag = (f * P.imag + fdprime * P.real).sum(-1)
    return real, imag


def safe_amplitude(real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
    """|F| with a finite gradient (zero) where F is exactly 0 (systematic absences)."""
    sq = real * real + imag * imag
    nonzero = sq > 0
    return torch.where(nonzero, torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq))), torch.zeros_like(sq))


# ---- reflections and symmetry orbits ------------------------------------------------------------

def reflections_within(cell, dmin_A: float) -> np.ndarray:
    """(n, 3) all Miller indices with 0 < 1/d <= 1/dmin (int64), h, k, l ascending."""
    orth, frac_m = cell_matrices(cell)
    smax = 1.0 / float(dmin_A)
    lim = [math.floor(np.linalg.norm(orth[:, i]) * smax) for i in range(3)]
    axes = [np.arange(-n, n + 1) for n in lim]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    s = hkl @ frac_m
    keep = ((s * s).sum(-1) <= smax * smax * (1 + 1e-12)) & (np.abs(hkl).sum(-1) > 0)
    return hkl[keep]


def _encode(hkl, span):
    w = 2 * span + 1
    return ((hkl[..., 0] + span) * w + (hkl[..., 1] + span)) * w + (hkl[..., 2] + span)


def orbit_images(hkl, symmetry: Symmetry, friedel: bool) -> np.ndarray:
    """(images, n, 3): h R for every distinct rotation R (h row vector), and -h R with Friedel."""
    rots = symmetry.rotations()
    images = np.einsum("nj,mji->mni", np.asarray(hkl, dtype=np.int64), rots)
    return np.concatenate((images, -images)) if friedel else images


def unique_reflections(hkl, symmetry: Symmetry, friedel: bool) -> tuple[np.ndarray, np.ndarray]:
    """(one representative per symmetry orbit among `hkl`, inverse): hkl[i] has the amplitude of
    representative inverse[i]."""
    hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    if len(hkl) == 0:
        return hkl, np.zeros(0, dtype=np.int64)
    images = orbit_images(hkl, symmetry, friedel)
    span = int(np.abs(images).max())
    keys = _encode(images, span)
    best = keys.argmax(0)
    rep = images[best, np.arange(len(hkl))]
    _, first, inverse = np.unique(keys.max(0), return_index=True, return_inverse=True)
    return rep[first], inverse.reshape(-1)


def p1_amplitudes(model: AtomicModel, hkl) -> torch.Tensor:
    """|F| at every P1 reflection in `hkl`, computing one reflection per symmetry orbit."""
    reps, inverse = unique_reflections(hkl, model.symmetry, friedel=not model.anomalous)
    F = structure_factors(model, reps)
    return F[torch.as_tensor(inverse, device=F.device)]


# ---- a model behind a Crystal's structure-factor grid ------------------------------------------

@dataclass
class ModelGrid:
    """Links an atomic model to the cells of a Crystal's Fhkl grid that it fills: F is recomputed
    from the model (differentiably) whenever atom parameters change."""

    model: AtomicModel
    hkl: np.ndarray  # (n, 3) the reflections the model fills
    reps: np.ndarray  # (u, 3) one reflection per symmetry orbit
    inverse: torch.Tensor  # (n,) grid entry -> its representative
    flat: torch.Tensor  # (n,) flat positions of the entries in the grid

    @classmethod
    def build(cls, model: AtomicModel, hkl, hkl_min, shape) -> ModelGrid:
        hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
        reps, inverse = unique_reflections(hkl, model.symmetry, friedel=not model.anomalous)
        flat = np.ravel_multi_index(tuple((hkl - np.asarray(hkl_min)).T), shape)
        return cls(model, hkl, reps, torch.as_tensor(inverse), torch.as_tensor(flat))

    def amplitudes(self) -> torch.Tensor:
        F = self.model.cached_structure_factors(self.reps)
        return F[self.inverse.to(F.device)]

    def fill(self, grid: torch.Tensor) -> torch.Tensor:
        """`grid` with the model's amplitudes written into its cells (out of place)."""
        F = self.amplitudes().to(dtype=grid.dtype, device=grid.device)
        return grid.reshape(-1).index_put((self.flat.to(grid.device),), F).reshape(grid.shape)


def attach_model(crystal, model: AtomicModel, dmin_A: float, default_F: float = 0.0):
    """Give `crystal` the structure factors of `model` for every reflection to `dmin_A` (other
    reflections take default_F); `parameters(sim, "atom_xyz", "atom_B", "atom_occ")` then refine
    the model. Returns the crystal."""
    from .io.structures import grid_from_reflections

    hkl = reflections_within(model.cell, dmin_A)
    grid = grid_from_reflections(hkl, np.zeros(len(hkl)), default_F)
    link = ModelGrid.build(model, hkl, (grid.h_min, grid.k_min, grid.l_min), grid.F.shape)
    ref = crystal.real if crystal.real is not None else torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        crystal.Fhkl = link.fill(torch.as_tensor(grid.F, dtype=ref.dtype, device=ref.device))
    crystal.hkl_min, crystal.hkl_count, crystal.default_F = (grid.h_min, grid.k_min, grid.l_min), grid.count, default_F
    crystal.extra["structure"] = link
    return crystal


# ---- differentiable parameters (see differentiable.SPECS) --------------------------------------

def model_check(sim) -> str | None:
    if "structure" not in sim.crystal.extra:
        return "needs an atomic model (-model, or structure.attach_model)"
    return None


def atom_initial(attr: str):
    def initial(sim, ctx):
        return getattr(sim.crystal.extra["structure"].model, attr).detach().to(torch.float64).clone()
    return initial


def atom_write(attr: str):
    def write(sim, value, ctx):
        setattr(sim.crystal.extra["structure"].model, attr, value)
    return write


def refresh_grid(sim, params, ctx) -> None:
    """Recompute the crystal's F grid from the (differentiable) model."""
    sim.crystal.Fhkl = sim.crystal.extra["structure"].fill(sim.crystal.Fhkl.detach())
