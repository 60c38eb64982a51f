"""nb-hkl: MTZ, SF-mmCIF or a PDB/mmCIF model -> nanoBragg's P1 'h k l F' text file.

    nb-hkl data.mtz P1.hkl [--column F] [--dmin 2.0] [--anomalous]
    nb-hkl model.pdb P1.hkl --dmin 2.0 [--anomalous --wavelength 1.0]

Reflection files are expanded to P1 with their space group (symmetry and Friedel mates, or F(+)
and F(-) to h and -h for anomalous columns); models give F computed from the atoms to --dmin.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from .errors import InputFileError, NanoBraggError, UsageError

KINDS = ("mtz", "cif", "model")


def detect_kind(path: str) -> str:
    """mtz, cif (SF-mmCIF) or model, from the name and, for mmCIF, whether it holds reflections."""
    name = path.lower().removesuffix(".gz")
    if name.endswith(".mtz"):
        return "mtz"
    if name.endswith((".pdb", ".ent")):
        return "model"
    if name.endswith((".cif", ".mmcif")):
        try:
            import gemmi
            doc = gemmi.cif.read(path)
        except (RuntimeError, ValueError, OSError) as exc:
            raise InputFileError(f"{path}: cannot read as mmCIF ({' '.join(str(exc).split())[:200]})") from None
        return "cif" if any(len(b.find_values("_refln.index_h")) for b in doc) else "model"
    raise UsageError(f"{path}: cannot tell the file type from its name; give --kind mtz|cif|model")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nb-hkl", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="MTZ, SF-mmCIF, PDB or mmCIF file")
    p.add_argument("output", help="P1 'h k l F' text file to write")
    p.add_argument("--column", help="MTZ column label or SF-mmCIF _refln tag (default: the first amplitudes)")
    p.add_argument("--dmin", type=float, help="resolution limit in Angstrom (required for models)")
    p.add_argument("--anomalous", action="store_true",
                   help="keep F(+) and F(-) apart (reflection files) or add f' and f'' (models; needs --wavelength)")
    p.add_argument("--wavelength", type=float, help="Angstrom, for the anomalous terms of a model")
    p.add_argument("--energy", type=float, help="eV, instead of --wavelength")
    p.add_argument("--cell", type=float, nargs=6, metavar=("A", "B", "C", "ALPHA", "BETA", "GAMMA"),
                   help="unit cell for a model file without one")
    p.add_argument("--kind", choices=KINDS, help="file type (default: from the name)")
    return p


def convert(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, str]:
    """(hkl, F, description) of the P1 list the arguments ask for."""
    from .io import structures
    from .structure import HC_EV_A, p1_amplitudes, reflections_within

    kind = args.kind or detect_kind(args.input)
    if args.dmin is not None and not args.dmin > 0:
        raise UsageError("--dmin: must be positive")
    if kind == "model":
        if args.dmin is None:
            raise UsageError("--dmin: required to compute F from a model")
        model = structures.read_model(args.input, args.cell)
        if args.anomalous:
            if (args.wavelength is None) == (args.energy is None) or not (args.wavelength or args.energy or 0) > 0:
                raise UsageError("--anomalous with a model needs one positive --wavelength or --energy")
            model = model.with_anomalous(args.wavelength or HC_EV_A / args.energy)
        hkl = reflections_within(model.cell, args.dmin)
        return hkl, p1_amplitudes(model, hkl).detach().numpy(), f"{len(model.xyz)} atoms, {model.symmetry.name}"
    refl = structures.read_reflections(args.input, kind, args.column, args.anomalous)
    hkl, F = structures.expand_to_p1(refl)
    if args.dmin is not None:
        if refl.cell is None and args.cell is None:
            raise UsageError(f"--dmin: {args.input} has no unit cell; give --cell")
        from .structure import cell_matrices
        s = hkl @ cell_matrices(refl.cell or args.cell)[1]
        keep = (s * s).sum(-1) <= (1 + 1e-12) / args.dmin ** 2
        hkl, F = hkl[keep], F[keep]
    return hkl, F, f"{len(refl.hkl)} reflections in {refl.symmetry.name}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        hkl, F, what = convert(args)
        if len(hkl) == 0:
            raise InputFileError(f"{args.input}: no reflections to write")
        from .io.structures import write_p1_hkl
        write_p1_hkl(args.output, hkl, F)
    except NanoBraggError as exc:
        print(f"nb-hkl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nb-hkl: interrupted; no output written", file=sys.stderr)
        return 130
    print(f"nb-hkl: {os.fspath(args.input)} ({what}) -> {args.output}: {len(hkl)} P1 reflections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
