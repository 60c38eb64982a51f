"""The command line's structure-factor sources other than -hkl: -mtz, -cif_sf and -model.

`load` reads the file before anything is written (and supplies the cell when neither -cell nor
-mat is given); `check_cell` warns when the crystal's cell differs from the file's; `grid` turns
the source into nanoBragg's P1 F table (for -model: F computed from the atoms to the resolution
the detector reaches, or -dmin) plus, for a model, the link that makes its atoms refinable.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputFileError, UsageError
from .io import structures
from .structure import AtomicModel, ModelGrid, p1_amplitudes, reflections_within

CELL_TOLERANCE = 1e-3  # relative disagreement between the crystal's cell and the file's that warns
OPTIONS = (("-hkl", "hklfile"), ("-mtz", "mtzfile"), ("-cif_sf", "cif_sf_file"), ("-model", "modelfile"))


@dataclass
class Source:
    option: str
    path: str
    cell: tuple | None
    reflections: structures.Reflections | None = None
    model: AtomicModel | None = None


def check_options(v) -> None:
    given = [opt for opt, attr in OPTIONS if getattr(v, attr, None) is not None]
    if len(given) > 1:
        raise UsageError(f"options {' and '.join(given)}: give only one source of structure factors")
    for option, needs, attr in (("-mtz_column", "-mtz", "mtzfile"), ("-cif_column", "-cif_sf", "cif_sf_file")):
        if getattr(v, option[1:], None) is not None and getattr(v, attr) is None:
            raise UsageError(f"option {option}: only applies with {needs} FILE")
    if v.anomalous and v.hklfile is not None:
        raise UsageError("option -anomalous: applies to -mtz, -cif_sf and -model, not to -hkl")


def load(v) -> Source | None:
    """Read the -mtz/-cif_sf/-model file named in the settings (None when there is none)."""
    check_options(v)
    cell_option = tuple(_user_cell(v)) if v.user_cell else None
    if v.mtzfile is not None:
        refl = structures.read_reflections(v.mtzfile, "mtz", v.mtz_column, v.anomalous)
        source = Source("-mtz", v.mtzfile, refl.cell, reflections=refl)
    elif v.cif_sf_file is not None:
        refl = structures.read_reflections(v.cif_sf_file, "cif", v.cif_column, v.anomalous)
        source = Source("-cif_sf", v.cif_sf_file, refl.cell, reflections=refl)
    elif v.modelfile is not None:
        model = structures.read_model(v.modelfile, cell_option)
        source = Source("-model", v.modelfile, model.cell, model=model)
    else:
        return None
    if source.cell is None and not _crystal_given(v):
        raise InputFileError(f"{source.path}: the file has no unit cell; "
                             "give -cell a b c alpha beta gamma or -mat FILE")
    return source


def _crystal_given(v) -> bool:
    return v.user_cell or v.matfile is not None or v.expt_real is not None


def file_cell(v, source: Source | None) -> tuple | None:
    """The -cell value (lengths in A, angles in radians) that a structure file supplies when the
    command line gives no crystal (-cell, -mat, -expt), else None."""
    if source is None or _crystal_given(v):
        return None
    return (*source.cell[:3], *(math.radians(x) for x in source.cell[3:]))


def _user_cell(v):
    a = v.cell[0]
    lengths = [a, v.cell[1] if v.cell[1] > 0 else a, v.cell[2] if v.cell[2] > 0 else a]
    return lengths + [math.degrees(x) if x > 0 else 90.0 for x in v.cell[3:]]


def check_cell(source: Source | None, cell) -> None:
    """Warn when the crystal's cell (a, b, c, alpha, beta, gamma) and the file's differ by > 0.1 %."""
    if source is None or source.cell is None:
        return
    if any(abs(x - y) > CELL_TOLERANCE * abs(y) for x, y in zip(cell, source.cell)):
        fmt = lambda c: " ".join(f"{x:g}" for x in c)
        warnings.warn(f"the crystal's cell ({fmt(cell)}) differs from the cell in {source.path} ({fmt(source.cell)}) "
                      f"by more than {CELL_TOLERANCE * 100:g}%", stacklevel=2)


def detector_dmin(geo, fpixels, spixels, pixel_size, positions, wavelengths) -> float:
    """The smallest d spacing (Angstrom) that any detector corner sees from any source."""
    pix0, fdet, sdet = (np.asarray(geo[k], dtype=np.float64) for k in ("pix0", "fdet", "sdet"))
    corners = np.array([pix0 + fdet * (f * pixel_size) + sdet * (s * pixel_size)
                        for f in (0, fpixels) for s in (0, spixels)])
    out = corners / np.linalg.norm(corners, axis=1, keepdims=True)
    incident = -np.asarray(positions, dtype=np.float64)
    incident /= np.linalg.norm(incident, axis=1, keepdims=True)
    s = (out[:, None, :] - incident[None, :, :]) / (np.asarray(wavelengths, dtype=np.float64)[None, :, None] * 1e10)
    smax = float(np.linalg.norm(s, axis=-1).max())
    return 1.0 / smax if smax > 0 else math.inf


def grid(source: Source, v, say, sources):
    """(HKLGrid, ModelGrid or None) for the run."""
    if source.model is None:
        say(f"reading {source.path}")
        hkl, F = structures.expand_to_p1(source.reflections)
        say(f"expanded {len(source.reflections.hkl)} reflections in {source.reflections.symmetry.name} "
            f"to {len(hkl)} in P1" + (" (anomalous: no Friedel mates)" if source.reflections.anomalous else ""))
        return structures.grid_from_reflections(hkl, F, v.default_F), None
    positions, _, wavelengths = sources
    model = source.model.with_anomalous(v.lambda0 * 1e10) if v.anomalous else source.model
    dmin = v.dmin * 1e10 if v.dmin > 0 else detector_dmin(v.geo, v.fpixels, v.spixels, v.pixel_size, positions,
                                                          wavelengths)
    # half a reciprocal cell more, so that the reflection nearest to any pixel has its F
    margin = 0.5 * float(np.linalg.norm(np.asarray(v.recip), axis=1).sum())
    reach = 1.0 / (1.0 / dmin + margin)
    hkl = reflections_within(model.cell, reach)
    if len(hkl) == 0:
        raise UsageError(f"-model: no reflections to {reach:.3g} A in this cell")
    say(f"computing F of {len(model.xyz)} atoms ({model.symmetry.name}) for {len(hkl)} reflections to {reach:.3g} A"
        + (" with f' and f''" if v.anomalous else ""))
    with torch.no_grad():
        F = p1_amplitudes(model, hkl).numpy()
    table = structures.grid_from_reflections(hkl, F, v.default_F)
    return table, ModelGrid.build(model, hkl, (table.h_min, table.k_min, table.l_min), table.F.shape)
