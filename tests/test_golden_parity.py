"""Image-for-image parity with the C reference (the golden suite), run in-process for speed.

Each golden case is replayed with our CLI in a fresh folder and judged by the suite's own
criteria (see the suite's README / parity.py): float image within 1e-6, SMV header and pixels,
noise image and PGM byte-identical, and the %g statistics lines identical as text.
"""
import gzip
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nanobrag_torch import cli
from nanobrag_torch.io.hkl import read_hkl

from conftest import GOLDEN, MISSING

PRE_OUTPUTS = ["-nonoise", "-nopgm", "-floatfile", "pre.bin", "-intfile", "pre.img"]
SUMMARY_PREFIXES = ("max_I = ", "mean= ", "intfile_scale = ")
MIN_CORR, TOL = 0.999999, 1e-6


def load_cases():
    try:
        return json.loads((GOLDEN / "cases.json").read_text())["cases"]
    except FileNotFoundError:
        return []


CASES = {c["id"]: c for c in load_cases()}
CASE_PARAMS = [pytest.param(c, id=c["id"]) for c in CASES.values()] or \
    [pytest.param(None, id="golden-suite-missing", marks=pytest.mark.skip(reason=MISSING))]
needs_golden = pytest.mark.skipif(not CASES, reason=MISSING)


def golden_bytes(case_id, name):
    with gzip.open(GOLDEN / case_id / f"{name}.gz", "rb") as f:
        return f.read()


def run_cli(argv):
    out = io.StringIO()
    assert cli.run(list(argv), out=out) == 0
    return out.getvalue()


def replay(case, tmp_path, monkeypatch, args=None, extra_fixtures=()):
    """Run a case (its 'pre' runs first) in tmp_path; returns our stdout."""
    for name in list(case["fixtures"]) + list(extra_fixtures):
        shutil.copy(GOLDEN / "fixtures" / name, tmp_path)
    monkeypatch.chdir(tmp_path)
    for pre in case["pre"]:
        run_cli(pre + PRE_OUTPUTS)
    return run_cli(case["args"] if args is None else args)


def assert_float_parity(ours_path, case_id):
    ours = np.fromfile(ours_path, dtype="<f4").astype(np.float64)
    ref = np.frombuffer(golden_bytes(case_id, "float.bin"), dtype="<f4").astype(np.float64)
    assert ours.size == ref.size, f"{ours.size} pixels written, reference has {ref.size}"
    assert np.all(np.isfinite(ours)), "non-finite pixels"
    if ref.std() > 0 and ours.std() > 0:
        corr = np.corrcoef(ours, ref)[0, 1]
    else:
        corr = 1.0 if np.array_equal(ours, ref) else 0.0
    assert corr >= MIN_CORR, f"correlation {corr:.9f}"
    ratio = ours.sum() / ref.sum() if ref.sum() != 0 else (1.0 if ours.sum() == 0 else np.inf)
    assert abs(ratio - 1) <= TOL, f"sum ratio {ratio:.9f}"
    scale = np.abs(ref).max() or 1.0
    max_rel = np.abs(ours - ref).max() / scale
    assert max_rel <= TOL, f"max |diff| / max(ref) = {max_rel:.3e}"


def summary_lines(text):
    return [line for line in text.splitlines() if line.startswith(SUMMARY_PREFIXES)]


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_golden_case(case, tmp_path, monkeypatch):
    stdout = replay(case, tmp_path, monkeypatch)
    cid, outputs = case["id"], case["outputs"]
    assert_float_parity(tmp_path / "float.bin", cid)

    ours = (tmp_path / "int.img").read_bytes()
    ref = golden_bytes(cid, "int.img")
    assert ours[:512] == ref[:512], f"SMV header differs:\n{ours[:512]!r}\n{ref[:512]!r}"
    assert len(ours) == len(ref)
    diff = np.abs(np.frombuffer(ours[512:], "<u2").astype(int) - np.frombuffer(ref[512:], "<u2").astype(int))
    assert diff.max(initial=0) == 0, f"{np.count_nonzero(diff)} SMV pixels differ (largest by {diff.max()})"

    for name, path in (("noise.img", "noise.img"), ("image.pgm", "image.pgm")):
        if name in outputs:
            assert (tmp_path / path).exists(), f"{name} not written"
            assert (tmp_path / path).read_bytes() == golden_bytes(cid, name), f"{name} differs"

    expected = summary_lines((GOLDEN / cid / "stdout.txt").read_text())
    assert expected, "golden stdout has no statistics lines"
    assert summary_lines(stdout) == expected


@needs_golden
@pytest.mark.parametrize("variant", ["phase.hkl", "sigma.hkl"])
def test_extra_hkl_columns_are_ignored(variant, tmp_path, monkeypatch):
    """HKL files with phase / sigma columns read as h k l F: the triclinic_hkl image exactly."""
    case = CASES["triclinic_hkl"]
    args = [variant if a == "tri.hkl" else a for a in case["args"]]
    assert args != case["args"]
    replay(case, tmp_path, monkeypatch, args=args, extra_fixtures=[variant])
    ours, base = read_hkl(tmp_path / variant, 0.0), read_hkl(tmp_path / "tri.hkl", 0.0)
    assert (ours.h_min, ours.h_max, ours.k_min, ours.k_max, ours.l_min, ours.l_max, ours.count) == \
        (base.h_min, base.h_max, base.k_min, base.k_max, base.l_min, base.l_max, base.count)
    assert np.array_equal(ours.F, base.F)
    assert_float_parity(tmp_path / "float.bin", "triclinic_hkl")


WEIGHTED_BASE = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-N", "5",
                 "-distance", "100", "-detpixels", "64", "-pixel", "0.1", "-noprogress", "-nonoise", "-nopgm",
                 "-intfile", "int.img"]


def weighted_run(source_file, tag, extra):
    text = run_cli(WEIGHTED_BASE + extra + ["-sourcefile", source_file, "-floatfile", f"{tag}.bin"])
    return np.fromfile(f"{tag}.bin", dtype="<f4").astype(np.float64), text


def data_rows(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append(line)
    return rows


def check_weighted_combination(rows, tmp_path, extra=()):
    """The multi-source image is sum_i w_i I_i / sum_i w_i over single-source images I_i."""
    combined, text = weighted_run("sources.txt", "all", list(extra))
    assert "created a total of 2 sources" in text
    weights, singles = [], []
    for i, row in enumerate(rows):
        (tmp_path / f"one{i}.txt").write_text(row + "\n")
        image, one_text = weighted_run(f"one{i}.txt", f"one{i}", list(extra))
        assert "created a total of 1 sources" in one_text
        weights.append(float(row.split()[3]))
        singles.append(image)
    assert weights[0] != weights[1]
    expected = sum(w * img for w, img in zip(weights, singles)) / sum(weights)
    assert expected.max() > 0
    # float32 files: each side rounds at ~6e-8 relative
    np.testing.assert_allclose(combined, expected, rtol=1e-6, atol=1e-6 * expected.max())
    return combined, singles


@needs_golden
def test_weighted_source_file(tmp_path, monkeypatch):
    """The suite's weighted source file: comments skipped, two sources, weights honoured."""
    shutil.copy(GOLDEN / "fixtures" / "two_sources_weighted.txt", tmp_path / "sources.txt")
    monkeypatch.chdir(tmp_path)
    rows = data_rows("sources.txt")
    assert len(rows) == 2
    check_weighted_combination(rows, tmp_path)


def test_weighted_distinct_sources(tmp_path, monkeypatch):
    """Unequal weights on two different sources (the suite's pair are co-located, so its weights
    cancel): the combination must follow the weights, not a plain average.

    -nopolar: like nanoBragg, the polarization factor is taken once per pixel from the first
    source, so only without it is the image exactly linear in the single-source images."""
    monkeypatch.chdir(tmp_path)
    rows = ["-10.0 0.0 0.0 1.0 6.2e-10", "-10.0 0.1 0.05 0.2 5.0e-10"]
    (tmp_path / "sources.txt").write_text("# X Y Z weight wavelength(m)\n" + "\n".join(rows) + "\n")
    combined, singles = check_weighted_combination(rows, tmp_path, ["-nopolar"])
    plain = (singles[0] + singles[1]) / 2
    assert np.abs(combined - plain).max() > 1e-3 * combined.max(), "weights had no effect"
