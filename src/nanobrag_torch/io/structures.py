"""Crystallographic files read with gemmi: MTZ and SF-mmCIF reflections, PDB/mmCIF models.

Reflection files give amplitudes of the asymmetric unit; `expand_to_p1` turns them into the
P1 list nanoBragg uses (every symmetry mate, and the Friedel mates unless the data are
anomalous). Every problem is an InputFileError naming the file.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

from ..errors import InputFileError
from ..structure import AtomicModel, Symmetry, orbit_images
from .atomic import atomic_open

log = logging.getLogger("nanobrag_torch")

MTZ_AMPLITUDE, MTZ_ANOMALOUS_F, MTZ_INTENSITY, MTZ_ANOMALOUS_I = "F", "G", "J", "K"
CIF_AMPLITUDES = ("F_meas_au", "F_meas", "F_calc", "F_calc_au")
CIF_INTENSITIES = ("intensity_meas", "intensity_calc", "F_squared_meas", "F_squared_calc")
CIF_PAIRS = {"pdbx_F_plus": "pdbx_F_minus", "pdbx_I_plus": "pdbx_I_minus",
             "pdbx_anom_F_plus": "pdbx_anom_F_minus"}


@dataclass
class Reflections:
    """Amplitudes of the asymmetric unit; F_minus (anomalous data) belongs to -h -k -l."""

    path: str
    hkl: np.ndarray  # (n, 3) int64
    F: np.ndarray  # (n,) float64, NaN where missing
    F_minus: np.ndarray | None
    cell: tuple | None
    symmetry: Symmetry

    @property
    def anomalous(self) -> bool:
        return self.F_minus is not None


def _gemmi():
    import gemmi
    return gemmi


def _fail(path, what, exc=None):
    detail = f" ({' '.join(str(exc).split())[:200]})" if exc is not None else ""
    return InputFileError(f"{os.fspath(path)}: {what}{detail}")


def _check_readable(path):
    if not os.path.isfile(path):
        raise _fail(path, "no such file" if not os.path.exists(path) else "not a file")
    if not os.access(path, os.R_OK):
        raise _fail(path, "cannot read (permission denied)")


def _symmetry(path, sg, name):
    if sg is None:
        raise _fail(path, f"unknown space group {name!r}" if name and name.strip() else "no space group given")
    return Symmetry.from_gemmi(sg)


def _cell(uc):
    values = (uc.a, uc.b, uc.c, uc.alpha, uc.beta, uc.gamma)
    return tuple(float(x) for x in values) if all(math.isfinite(x) and x > 0 for x in values) and uc.a > 1 else None


def _amplitudes(path, label, values, intensity):
    if not intensity:
        return values
    log.info("%s: column %s holds intensities; using F = sqrt(max(I, 0))", os.fspath(path), label)
    return np.sqrt(np.maximum(values, 0.0))


def _mtz_partner(mtz, col):
    """The F(-)/I(-) column that goes with an F(+)/I(+) column."""
    swaps = (("(+)", "(-)"), ("PLUS", "MINUS"), ("plus", "minus"), ("+", "-"))
    for plus, minus in swaps:
        if plus in col.label:
            other = mtz.column_with_label(col.label.replace(plus, minus))
            if other is not None and other.type == col.type:
                return other
    later = [c for c in mtz.columns if c.type == col.type and c.idx > col.idx]
    return later[0] if later else None


def _mtz_column(path, mtz, column, anomalous):
    listing = ", ".join(f"{c.label}({c.type})" for c in mtz.columns)
    if column is not None:
        col = mtz.column_with_label(column)
        if col is None:
            raise _fail(path, f"no column {column!r}; the columns are {listing}")
        if col.type not in (MTZ_AMPLITUDE, MTZ_ANOMALOUS_F, MTZ_INTENSITY, MTZ_ANOMALOUS_I):
            raise _fail(path, f"column {column!r} is of type {col.type}, not an amplitude (F, G) or "
                              f"intensity (J, K); the columns are {listing}")
        return col
    order = (MTZ_ANOMALOUS_F, MTZ_AMPLITUDE, MTZ_ANOMALOUS_I, MTZ_INTENSITY) if anomalous else \
        (MTZ_AMPLITUDE, MTZ_ANOMALOUS_F, MTZ_INTENSITY, MTZ_ANOMALOUS_I)
    for kind in order:
        found = [c for c in mtz.columns if c.type == kind]
        if found:
            return found[0]
    raise _fail(path, f"no amplitude or intensity column; the columns are {listing}")


def read_mtz(path, column: str | None = None, anomalous: bool = False) -> Reflections:
    """Amplitudes from an MTZ file: `column` (default: the first amplitude column, or with
    `anomalous` the first F(+)/F(-) pair); intensities become sqrt(max(I, 0))."""
    _check_readable(path)
    try:
        mtz = _gemmi().read_mtz_file(os.fspath(path))
    except (RuntimeError, ValueError, OSError, IndexError) as exc:
        raise _fail(path, "cannot read as MTZ", exc) from None
    col = _mtz_column(path, mtz, column, anomalous)
    symmetry = _symmetry(path, mtz.spacegroup, mtz.spacegroup_name)
    data = np.array(mtz.array, dtype=np.float64, copy=True)
    if data.ndim != 2 or data.shape[1] < 3 or not np.isfinite(data[:, :3]).all():
        raise _fail(path, "corrupt reflection table")
    hkl = np.rint(data[:, :3]).astype(np.int64)
    intensity = col.type in (MTZ_INTENSITY, MTZ_ANOMALOUS_I)
    F = _amplitudes(path, col.label, data[:, col.idx], intensity)
    F_minus = None
    if col.type in (MTZ_ANOMALOUS_F, MTZ_ANOMALOUS_I):
        partner = _mtz_partner(mtz, col)
        if partner is None:
            raise _fail(path, f"no F(-)/I(-) column to pair with {col.label!r}")
        F_minus = _amplitudes(path, partner.label, data[:, partner.idx], intensity)
    return Reflections(os.fspath(path), hkl, F, F_minus, _cell(mtz.cell), symmetry)


def _cif_column(path, labels, column, anomalous):
    listing = ", ".join(labels)
    if column is not None:
        if column not in labels:
            raise _fail(path, f"no column {column!r}; the columns are {listing}")
        return column
    pairs = tuple(CIF_PAIRS)
    order = pairs + CIF_AMPLITUDES + CIF_INTENSITIES if anomalous else CIF_AMPLITUDES + pairs + CIF_INTENSITIES
    for name in order:
        if name in labels:
            return name
    raise _fail(path, f"no amplitude or intensity column; the columns are {listing}")


def read_cif_sf(path, column: str | None = None, anomalous: bool = False) -> Reflections:
    """Amplitudes from an SF-mmCIF file (first block with reflections); `column` is an _refln
    tag without its category (F_meas_au, F_calc, intensity_meas, pdbx_F_plus, ...)."""
    _check_readable(path)
    gemmi = _gemmi()
    try:
        blocks = [b for b in gemmi.as_refln_blocks(gemmi.cif.read(os.fspath(path))) if b.default_loop is not None]
    except (RuntimeError, ValueError, OSError, IndexError) as exc:
        raise _fail(path, "cannot read as SF-mmCIF", exc) from None
    if not blocks:
        raise _fail(path, "no _refln loop with Miller indices")
    rb = blocks[0]
    labels = list(rb.column_labels())
    name = _cif_column(path, labels, column, anomalous)
    symmetry = _symmetry(path, rb.spacegroup, rb.block.find_value("_symmetry.space_group_name_H-M")
                         or rb.block.find_value("_space_group.name_H-M_alt"))
    try:
        hkl = np.asarray(rb.make_miller_array(), dtype=np.int64).reshape(-1, 3)
        values = np.asarray(rb.make_float_array(name), dtype=np.float64)
        minus = None
        partner = CIF_PAIRS.get(name)
        if partner is not None:
            if partner not in labels:
                raise _fail(path, f"no {partner} column to pair with {name}")
            minus = np.asarray(rb.make_float_array(partner), dtype=np.float64)
    except (RuntimeError, ValueError) as exc:
        raise _fail(path, "corrupt reflection table", exc) from None
    intensity = name in CIF_INTENSITIES or name.startswith("pdbx_I_")
    F = _amplitudes(path, name, values, intensity)
    F_minus = None if minus is None else _amplitudes(path, CIF_PAIRS[name], minus, intensity)
    return Reflections(os.fspath(path), hkl, F, F_minus, _cell(rb.cell), symmetry)


def read_reflections(path, kind: str, column: str | None = None, anomalous: bool = False) -> Reflections:
    """kind: "mtz" or "cif"."""
    return (read_mtz if kind == "mtz" else read_cif_sf)(path, column, anomalous)


def expand_to_p1(refl: Reflections) -> tuple[np.ndarray, np.ndarray]:
    """(hkl (n, 3), F (n,)) of every reflection generated by the space group's rotations, with
    the Friedel mates unless the data are anomalous (then F(-) goes to -h R). Missing values are
    left out; for an anomalous pair with one side missing the other side stands in for it.
    Where two entries of the file map to the same reflection the first one wins."""
    F = refl.F
    if refl.anomalous:
        plus = np.where(np.isfinite(F), F, refl.F_minus)
        minus = np.where(np.isfinite(refl.F_minus), refl.F_minus, F)
        images = orbit_images(refl.hkl, refl.symmetry, friedel=False)
        hkl = np.concatenate((images, -images)).reshape(-1, 3)
        values = np.concatenate((np.broadcast_to(plus, images.shape[:2]),
                                 np.broadcast_to(minus, images.shape[:2]))).reshape(-1)
    else:
        images = orbit_images(refl.hkl, refl.symmetry, friedel=True)
        hkl = images.reshape(-1, 3)
        values = np.broadcast_to(F, images.shape[:2]).reshape(-1)
    keep = np.isfinite(values)
    hkl, values = hkl[keep], values[keep]
    if len(hkl) == 0:
        raise _fail(refl.path, "no reflections with a value")
    # the identity images come first, so entries as given in the file win over generated mates
    _, first = np.unique(hkl, axis=0, return_index=True)
    first.sort()
    return hkl[first], values[first]


def read_model(path, cell=None) -> AtomicModel:
    """Atoms of the first model of a PDB or mmCIF file. `cell` (a, b, c, alpha, beta, gamma)
    stands in for a file without one; the space group defaults to P 1 when none is given."""
    _check_readable(path)
    gemmi = _gemmi()
    try:
        st = gemmi.read_structure(os.fspath(path))
    except (RuntimeError, ValueError, OSError, IndexError) as exc:
        raise _fail(path, "cannot read as a PDB or mmCIF model", exc) from None
    if len(st) == 0:
        raise _fail(path, "no atoms")
    file_cell = _cell(st.cell)
    if file_cell is None and cell is None:
        raise _fail(path, "the model has no unit cell (CRYST1); give -cell a b c alpha beta gamma")
    name = st.spacegroup_hm
    sg = gemmi.find_spacegroup_by_name(name) if name and name.strip() else gemmi.SpaceGroup("P 1")
    symmetry = _symmetry(path, sg, name)
    atoms = [(a, f"{ch.name}/{res.name}{res.seqid.num}/{a.name}") for ch in st[0] for res in ch for a in res]
    if not atoms:
        raise _fail(path, "no atoms")
    for a, label in atoms:
        if a.element.name == "X" or a.element.atomic_number > 98:
            raise _fail(path, f"atom {label}: unknown element {a.element.name!r}")
    model = AtomicModel.from_atoms([a.element.name for a, _ in atoms], [a.pos.tolist() for a, _ in atoms],
                                   [a.b_iso for a, _ in atoms], [a.occ for a, _ in atoms],
                                   file_cell or tuple(cell), "P 1", [label for _, label in atoms])
    model.symmetry = symmetry
    if not (np.isfinite(model.xyz.numpy()).all() and np.isfinite(model.B.numpy()).all()):
        raise _fail(path, "non-finite coordinates or B factors")
    return model


def write_p1_hkl(path, hkl, F) -> None:
    """nanoBragg's 'h k l F' text, every value written so that it reads back exactly."""
    lines = "".join(f"{h} {k} {l} {float(f)!r}\n" for (h, k, l), f in zip(np.asarray(hkl).tolist(), F))
    with atomic_open(path, "w") as handle:
        handle.write(lines)


def grid_from_reflections(hkl, F, default_F: float = 0.0):
    """The HKLGrid (nanoBragg's F lookup table) of a P1 list, as read_hkl builds it from a file."""
    from .hkl import HKLGrid

    hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    lo, hi = hkl.min(axis=0), hkl.max(axis=0)
    grid = np.full(tuple(int(x) for x in hi - lo + 1), float(default_F))
    grid[tuple((hkl - lo).T)] = np.asarray(F, dtype=np.float64)
    return HKLGrid(grid, int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]), int(lo[2]), int(hi[2]), len(hkl))
