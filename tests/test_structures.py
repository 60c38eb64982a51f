"""Structure factors from crystallographic files and atomic models (-mtz, -cif_sf, -model, nb-hkl).

References come from gemmi (the community's reader and structure-factor calculator) or are
computed here from the space group's operators."""
import math
import os

import gemmi
import numpy as np
import pytest
import torch

import nanobrag_torch as nb
from nanobrag_torch import cli, hkltool
from nanobrag_torch.structure import AtomicModel, reflections_within, structure_factors

from conftest import call_in

CELL = (31.0, 36.0, 42.0, 90.0, 90.0, 90.0)
SPACEGROUP = "P 43 21 2"
TETRAGONAL = (33.0, 33.0, 42.0, 90.0, 90.0, 90.0)
ELEMENTS = ["C", "N", "O", "S", "Fe", "C", "O", "C", "N", "Zn", "C", "O"]
RUN = ["-lambda", "1.3", "-N", "3", "-distance", "80", "-detpixels", "48", "-pixel", "0.5", "-misset", "10", "20",
       "30", "-nonoise", "-nopgm", "-noprogress"]


def make_structure(cell=TETRAGONAL, spacegroup=SPACEGROUP, elements=ELEMENTS, seed=7):
    rng = np.random.default_rng(seed)
    st = gemmi.Structure()
    st.cell = gemmi.UnitCell(*cell)
    st.spacegroup_hm = spacegroup
    model, chain = gemmi.Model("1"), gemmi.Chain("A")
    for i, el in enumerate(elements):
        res = gemmi.Residue()
        res.name, res.seqid = "UNK", gemmi.SeqId(i + 1, " ")
        atom = gemmi.Atom()
        atom.name, atom.element = el.upper(), gemmi.Element(el)
        atom.pos = gemmi.Position(*(rng.uniform(0.0, 1.0, 3) * np.array(cell[:3])))
        atom.b_iso, atom.occ = rng.uniform(8.0, 40.0), rng.uniform(0.4, 1.0)
        res.add_atom(atom)
        chain.add_residue(res)
    model.add_chain(chain)
    st.add_model(model)
    st.setup_entities()
    return st


def gemmi_reference(st, hkl, energy=None):
    """F from gemmi's StructureFactorCalculatorX. The small-structure entry point is used: it
    evaluates the Debye-Waller factor in double precision (calculate_sf_from_model rounds it to
    single precision, which alone moves weak reflections by more than 1e-5). With `energy`, f'
    comes from gemmi's Cromer-Liberman addends and the f'' part from a second pass of the same
    calculator with the form factors zeroed and f'' as the addend."""
    small = gemmi.SmallStructure()
    small.cell = st.cell
    small.symops = [op.triplet() for op in gemmi.SpaceGroup(st.spacegroup_hm).operations()]
    small.determine_and_set_spacegroup("s")
    assert small.spacegroup is not None
    for res in st[0][0]:
        for a in res:
            site = gemmi.SmallStructure.Site()
            site.element, site.occ = a.element, a.occ
            site.fract = st.cell.fractionalize(a.pos)
            site.u_iso = a.b_iso / (8 * math.pi ** 2)
            small.add_site(site)
    small.setup_cell_images()
    calc = gemmi.StructureFactorCalculatorX(small.cell)
    if energy is not None:
        calc.addends.add_cl_fprime(energy)
    F = np.array([calc.calculate_sf_from_small_structure(small, [int(x) for x in h]) for h in hkl])
    if energy is None:
        return F
    elements = {a.element.name: a.element for res in st[0][0] for a in res}
    saved = {name: el.it92.get_coefs() for name, el in elements.items()}
    try:
        for el in elements.values():
            el.it92.set_coefs([0.0] * 9)
        calc2 = gemmi.StructureFactorCalculatorX(small.cell)
        for el in elements.values():
            calc2.addends.set(el, gemmi.cromer_liberman(el.atomic_number, energy)[1])
        F2 = np.array([calc2.calculate_sf_from_small_structure(small, [int(x) for x in h]) for h in hkl])
    finally:
        for name, coefs in saved.items():
            elements[name].it92.set_coefs(coefs)
    return F + 1j * F2


def model_F_through_cli(tmp_path, extra):
    """The F grid that -model fills, as (hkl, F) of the model's reflections."""
    path = tmp_path / "model.pdb"
    make_structure().write_pdb(str(path))
    sim = nb.from_args(["-model", str(path), "-dmin", "3.0", *RUN, *extra])
    link = sim.crystal.extra["structure"]
    grid = sim.crystal.Fhkl.detach().numpy()
    idx = tuple((link.hkl - np.array(sim.crystal.hkl_min)).T)
    return link.hkl, grid[idx]


@pytest.mark.parametrize("anomalous", [False, True])
def test_model_F_equals_gemmi(tmp_path, anomalous):
    hkl, F = model_F_through_cli(tmp_path, ["-anomalous"] if anomalous else [])
    st = gemmi.read_structure(str(tmp_path / "model.pdb"))
    ref = np.abs(gemmi_reference(st, hkl, energy=12398.42 / 1.3 if anomalous else None))
    absent = np.array(gemmi.SpaceGroup(SPACEGROUP).operations().systematic_absences(hkl.astype(np.int32)), bool)
    assert len(hkl) > 2000 and absent.sum() > 0
    rel = np.abs(F[~absent] - ref[~absent]) / ref[~absent]
    assert rel.max() <= 1e-5, rel.max()
    assert np.abs(F[absent]).max() <= 1e-9 * ref.max()
    if anomalous:  # f'' breaks Friedel's law: F(h) and F(-h) differ
        table = {tuple(h): f for h, f in zip(hkl.tolist(), F)}
        diffs = [abs(f - table[(-h, -k, -l)]) for (h, k, l), f in table.items()]
        assert max(diffs) > 1e-3 * ref.max()


@pytest.mark.parametrize("cell,spacegroup", [((23.0, 27.0, 31.0, 81.0, 104.0, 97.0), "P 1"),
                                             ((23.0, 27.0, 31.0, 90.0, 104.0, 90.0), "P 1 21 1")])
def test_direct_and_row_paths_equal_gemmi(cell, spacegroup):
    """Triclinic cells take the direct sum, monoclinic ones the factorized rows along b*."""
    st = make_structure(cell, spacegroup, ELEMENTS[:8], seed=3)
    model = read_model_from_structure(st)
    hkl = reflections_within(cell, 3.0)
    ours = structure_factors(model, hkl, amplitudes=False).numpy()
    ref = gemmi_reference(st, hkl)
    assert np.abs(ours - ref).max() <= 1e-6 * np.abs(ref).max()


def read_model_from_structure(st):
    atoms = [a for res in st[0][0] for a in res]
    return AtomicModel.from_atoms([a.element.name for a in atoms], [a.pos.tolist() for a in atoms],
                                  [a.b_iso for a in atoms], [a.occ for a in atoms],
                                  (st.cell.a, st.cell.b, st.cell.c, st.cell.alpha, st.cell.beta, st.cell.gamma),
                                  st.spacegroup_hm)


# ---- reflection files -------------------------------------------------------------------------

def asu_reflections(spacegroup, cell, dmin):
    sg = gemmi.SpaceGroup(spacegroup)
    asu = gemmi.ReciprocalAsu(sg)
    hkl = reflections_within(cell, dmin)
    keep = [asu.is_in(h) and not sg.operations().is_systematically_absent(h) for h in hkl.tolist()]
    return sg, hkl[np.array(keep)]


def write_mtz(path, spacegroup, cell, hkl, columns):
    """columns: [(label, type, values)]"""
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup(spacegroup)
    mtz.set_cell_for_all(gemmi.UnitCell(*cell))
    mtz.add_dataset("sim")
    for label, kind, _ in columns:
        mtz.add_column(label, kind)
    mtz.set_data(np.column_stack([hkl] + [v for _, _, v in columns]).astype(np.float32))
    mtz.write_to_file(str(path))


def own_expansion(sg, hkl, F, friedel=True):
    """{(h, k, l): F} of every symmetry (and Friedel) mate, from gemmi's operators."""
    out = {}
    for h, f in zip(hkl.tolist(), F):
        for op in sg.operations():
            mate = op.apply_to_hkl(h)
            out.setdefault(tuple(mate), f)
            if friedel:
                out.setdefault(tuple(-x for x in mate), f)
    return out


def read_p1(path):
    data = np.loadtxt(path, ndmin=2)
    return {tuple(int(x) for x in row[:3]): row[3] for row in data}


def run_cli(args, cwd):
    return call_in(cwd, cli.main, args)


def test_mtz_expands_to_p1_and_renders_like_hkl(tmp_path):
    sg, hkl = asu_reflections(SPACEGROUP, TETRAGONAL, 2.5)
    F = np.random.default_rng(1).uniform(5.0, 200.0, len(hkl)).astype(np.float32)
    write_mtz(tmp_path / "data.mtz", SPACEGROUP, TETRAGONAL, hkl,
              [("FP", "F", F), ("SIGFP", "Q", F * 0.05), ("IMEAN", "J", F.astype(np.float64) ** 2)])
    assert hkltool.main([str(tmp_path / "data.mtz"), str(tmp_path / "P1.hkl")]) == 0
    p1 = read_p1(tmp_path / "P1.hkl")
    expected = own_expansion(sg, hkl, F.astype(np.float64))
    assert len(expected) > 6 * len(hkl)
    assert p1.keys() == expected.keys()
    assert all(p1[k] == expected[k] for k in expected)
    run_cli(["-mtz", "data.mtz", *RUN, "-floatfile", "mtz.bin"], tmp_path)  # cell from the file
    run_cli(["-hkl", "P1.hkl", "-cell", *map(str, TETRAGONAL), *RUN, "-floatfile", "hkl.bin"], tmp_path)
    mtz_image, hkl_image = (tmp_path / "mtz.bin").read_bytes(), (tmp_path / "hkl.bin").read_bytes()
    assert np.frombuffer(mtz_image, np.float32).max() > 0
    assert mtz_image == hkl_image
    # an intensity column gives F = sqrt(I)
    assert hkltool.main([str(tmp_path / "data.mtz"), str(tmp_path / "I.hkl"), "--column", "IMEAN"]) == 0
    from_i = read_p1(tmp_path / "I.hkl")
    assert max(abs(from_i[k] - p1[k]) / p1[k] for k in p1) < 1e-6


def test_anomalous_pairs_fill_h_and_minus_h(tmp_path):
    sg, hkl = asu_reflections("P 21 21 21", CELL, 4.0)
    rng = np.random.default_rng(2)
    plus, minus = rng.uniform(10, 100, len(hkl)).astype(np.float32), rng.uniform(10, 100, len(hkl)).astype(np.float32)
    write_mtz(tmp_path / "anom.mtz", "P 21 21 21", CELL, hkl, [("F(+)", "G", plus), ("SIGF(+)", "L", plus * 0),
                                                              ("F(-)", "G", minus), ("SIGF(-)", "L", minus * 0)])
    assert hkltool.main([str(tmp_path / "anom.mtz"), str(tmp_path / "P1.hkl"), "--anomalous"]) == 0
    p1 = read_p1(tmp_path / "P1.hkl")
    expected = own_expansion(sg, hkl, plus.astype(np.float64), friedel=False)
    for key, value in own_expansion(sg, -hkl, minus.astype(np.float64), friedel=False).items():
        expected.setdefault(key, value)
    assert p1.keys() == expected.keys()
    assert all(p1[k] == expected[k] for k in expected)


def write_cif_sf(path, hkl, F, spacegroup, cell):
    lines = ["data_r1test", f"_cell.length_a {cell[0]}", f"_cell.length_b {cell[1]}", f"_cell.length_c {cell[2]}",
             f"_cell.angle_alpha {cell[3]}", f"_cell.angle_beta {cell[4]}", f"_cell.angle_gamma {cell[5]}",
             f"_symmetry.space_group_name_H-M '{spacegroup}'", "loop_", "_refln.index_h", "_refln.index_k",
             "_refln.index_l", "_refln.status", "_refln.F_meas_au", "_refln.F_calc", "_refln.pdbx_F_plus",
             "_refln.pdbx_F_minus"]
    lines += [f"{h} {k} {l} o {f!r} {2 * f!r} {3 * f!r} {4 * f!r}" for (h, k, l), f in zip(hkl.tolist(), F.tolist())]
    path.write_text("\n".join(lines) + "\n")


def test_cif_sf_columns(tmp_path):
    sg, hkl = asu_reflections("P 21 21 21", CELL, 4.0)
    F = np.round(np.random.default_rng(3).uniform(10, 100, len(hkl)), 3)
    write_cif_sf(tmp_path / "r.cif", hkl, F, "P 21 21 21", CELL)
    assert hkltool.main([str(tmp_path / "r.cif"), str(tmp_path / "meas.hkl")]) == 0
    assert hkltool.main([str(tmp_path / "r.cif"), str(tmp_path / "calc.hkl"), "--column", "F_calc"]) == 0
    meas, calc = read_p1(tmp_path / "meas.hkl"), read_p1(tmp_path / "calc.hkl")
    assert meas == own_expansion(sg, hkl, F)
    assert all(calc[k] == 2 * meas[k] for k in meas)
    assert hkltool.main([str(tmp_path / "r.cif"), str(tmp_path / "anom.hkl"), "--anomalous"]) == 0
    anom = read_p1(tmp_path / "anom.hkl")
    expected = own_expansion(sg, hkl, 3 * F, friedel=False)
    for key, value in own_expansion(sg, -hkl, 4 * F, friedel=False).items():
        expected.setdefault(key, value)
    assert anom == expected
    assert run_cli(["-cif_sf", "r.cif", "-cif_column", "F_calc", *RUN, "-floatfile", "cif.bin"], tmp_path) == 0
    assert np.fromfile(tmp_path / "cif.bin", np.float32).max() > 0


def test_cell_from_file_and_mismatch_warning(tmp_path, capsys):
    hkl = asu_reflections("P 21 21 21", CELL, 4.0)[1]
    write_mtz(tmp_path / "d.mtz", "P 21 21 21", CELL, hkl, [("FP", "F", np.full(len(hkl), 50.0))])
    assert run_cli(["-mtz", "d.mtz", *RUN], tmp_path) == 0
    out = capsys.readouterr()
    assert "Unit Cell: 31 36 42 90 90 90" in out.out and "warning" not in out.err
    assert run_cli(["-mtz", "d.mtz", "-cell", "31.02", "36", "42", "90", "90", "90", *RUN], tmp_path) == 0
    assert "warning" not in capsys.readouterr().err  # 0.065 % off: within 0.1 %
    assert run_cli(["-mtz", "d.mtz", "-cell", "31.1", "36", "42", "90", "90", "90", *RUN], tmp_path) == 0
    err = capsys.readouterr().err
    assert "31.1 36 42 90 90 90" in err and "31 36 42 90 90 90" in err and "d.mtz" in err


# ---- bad input --------------------------------------------------------------------------------

def bad_files(tmp_path):
    hkl = asu_reflections("P 21 21 21", CELL, 5.0)[1]
    write_mtz(tmp_path / "good.mtz", "P 21 21 21", CELL, hkl, [("FP", "F", np.full(len(hkl), 9.0)),
                                                               ("SIGFP", "Q", np.ones(len(hkl)))])
    (tmp_path / "corrupt.mtz").write_bytes((tmp_path / "good.mtz").read_bytes()[:300])  # truncated
    (tmp_path / "corrupt.cif").write_text("data_x\nloop_\n_refln.index_h\n_refln.index_k\n1 2 3\n'unterminated\n")
    (tmp_path / "corrupt.pdb").write_bytes(bytes(range(256)) * 2)
    st = make_structure()
    st.cell = gemmi.UnitCell()
    st.write_pdb(str(tmp_path / "nocell.pdb"))
    text = make_structure().make_pdb_string().replace("P 43 21 2 ", "P 99 77   ")
    (tmp_path / "badsg.pdb").write_text(text)


@pytest.mark.parametrize("args,tool_args,needle", [
    (["-mtz", "good.mtz", "-mtz_column", "FOBS"], ["good.mtz", "--column", "FOBS"],
     "the columns are H(H), K(H), L(H), FP(F), SIGFP(Q)"),
    (["-model", "nocell.pdb"], ["nocell.pdb"], "no unit cell"),
    (["-model", "badsg.pdb"], ["badsg.pdb"], "unknown space group 'P 99 77'"),
    (["-mtz", "corrupt.mtz"], ["corrupt.mtz"], "corrupt.mtz: cannot read as MTZ"),
    (["-cif_sf", "corrupt.cif"], ["corrupt.cif", "--kind", "cif"], "corrupt.cif"),
    (["-model", "corrupt.pdb"], ["corrupt.pdb"], "corrupt.pdb"),
    (["-mtz", "missing.mtz"], ["missing.mtz"], "missing.mtz: no such file"),
])
def test_bad_input_one_line_exit_1_no_files(tmp_path, capsys, args, tool_args, needle):
    bad_files(tmp_path)
    before = set(os.listdir(tmp_path))
    code = run_cli([*args, *RUN[:-3]], tmp_path)  # with every output file on (float, int, noise, pgm)
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("nanoBragg: error:") and needle in err, err
    assert set(os.listdir(tmp_path)) == before
    code = run_cli_tool([tool_args[0], "out.hkl", "--dmin", "3", *tool_args[1:]], tmp_path)
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and needle in err, err
    assert set(os.listdir(tmp_path)) == before


def run_cli_tool(args, cwd):
    return call_in(cwd, hkltool.main, args)


def test_hkl_tool_usage_errors(tmp_path, capsys):
    make_structure().write_pdb(str(tmp_path / "m.pdb"))
    assert hkltool.main([str(tmp_path / "m.pdb"), str(tmp_path / "o.hkl")]) == 2  # a model needs --dmin
    assert hkltool.main([str(tmp_path / "m.pdb"), str(tmp_path / "o.hkl"), "--dmin", "3", "--anomalous"]) == 2
    assert "--wavelength" in capsys.readouterr().err
    assert not (tmp_path / "o.hkl").exists()


# ---- gradients --------------------------------------------------------------------------------

def small_model(cell=TETRAGONAL):
    return AtomicModel.from_atoms(["C", "O", "S"], [[3.0, 4.0, 5.0], [10.0, 2.0, 7.5], [6.0, 8.0, 1.0]],
                                  [12.0, 20.0, 15.0], [1.0, 0.7, 0.9], cell, SPACEGROUP)


@pytest.mark.parametrize("cell", [TETRAGONAL, (33.0, 35.0, 42.0, 84.0, 97.0, 101.0)])
def test_gradcheck_coordinates_B_occupancy(cell):
    model = small_model(cell)
    hkl = reflections_within(cell, 6.0)[::40]

    def F(xyz, B, occ):
        model.xyz, model.B, model.occ = xyz, B, occ
        return structure_factors(model, hkl)

    inputs = tuple(x.clone().requires_grad_(True) for x in (model.xyz, model.B, model.occ))
    assert torch.autograd.gradcheck(F, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_image_gradient_reaches_the_atoms(tmp_path):
    path = tmp_path / "m.pdb"
    make_structure().write_pdb(str(path))
    sim = nb.from_args(["-model", str(path), "-dmin", "3", *RUN])
    p = nb.parameters(sim, "atom_xyz", "atom_B", "atom_occ")
    image = sim.roi_image((0, 47), (0, 47))
    image.sum().backward()
    grads = [p[n].grad for n in ("atom_xyz", "atom_B", "atom_occ")]
    assert all(torch.isfinite(g).all() and g.abs().max() > 0 for g in grads)
    # directional derivative along the coordinate gradient against a central difference
    direction = grads[0] / grads[0].norm()
    h = 1e-4
    with torch.no_grad():
        base = p["atom_xyz"].detach().clone()
        values = []
        for sign in (1, -1):
            p["atom_xyz"] = base + sign * h * direction
            values.append(float(sim.roi_image((0, 47), (0, 47)).sum()))
        p["atom_xyz"] = base
    numeric = (values[0] - values[1]) / (2 * h)
    assert numeric == pytest.approx(float((grads[0] * direction).sum()), rel=1e-5)


def test_nanobragg_c_reads_nb_hkl_output(tmp_path):
    """nanoBragg.c ($NB_C_BIN) renders nb-hkl's P1 file as we render the MTZ it came from."""
    c_bin = os.environ.get("NB_C_BIN")
    if not c_bin or not os.access(c_bin, os.X_OK):
        pytest.skip("NB_C_BIN does not name the nanoBragg.c program")
    import subprocess
    hkl = asu_reflections(SPACEGROUP, TETRAGONAL, 3.0)[1]
    F = np.random.default_rng(4).uniform(5.0, 200.0, len(hkl)).astype(np.float32)
    write_mtz(tmp_path / "data.mtz", SPACEGROUP, TETRAGONAL, hkl, [("FP", "F", F)])
    assert hkltool.main([str(tmp_path / "data.mtz"), str(tmp_path / "P1.hkl")]) == 0
    assert run_cli(["-mtz", "data.mtz", *RUN, "-floatfile", "ours.bin"], tmp_path) == 0
    subprocess.run([c_bin, "-hkl", "P1.hkl", "-cell", *map(str, TETRAGONAL), *RUN, "-floatfile", "c.bin"],
                   cwd=tmp_path, capture_output=True, timeout=300, check=True)
    ours, c = (np.fromfile(tmp_path / name, np.float32) for name in ("ours.bin", "c.bin"))
    assert c.max() > 0 and np.corrcoef(ours, c)[0, 1] > 0.999999
