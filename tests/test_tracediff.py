"""nb-trace-diff: alignment by name, tolerance, first divergence, exit codes."""
import io

import pytest

from nanobrag_torch import cli, setup, tracediff
from nanobrag_torch.trace import trace_lines

A = """nanoBragg header line that is not a trace
TRACE_C: pix0 0.1 0.0129 -0.0129
TRACE_C: distance 0.1
TRACE_C_SOURCE 0:
TRACE_C: source[0].stol 27389705.365279965
WARNING: out of range for three point interpolation: h,k,l
TRACE_C: source[0].phi[0].mosaic[0].hkl -0.0093 0.2982 -0.4594
TRACE_C: source[0].phi[0].mosaic[0].F_latt -5.008
TRACE_C: pixel_value 0.2502
"""


def write(path, text):
    path.write_text(text)
    return str(path)


def test_parse_ignores_other_lines_and_numbers_repeats():
    t = tracediff.parse_trace((A + "TRACE_C: distance 0.2\nX: 100.0 0.0 0.0\n").splitlines())
    assert list(t) == ["pix0", "distance", "source[0].stol", "source[0].phi[0].mosaic[0].hkl",
                       "source[0].phi[0].mosaic[0].F_latt", "pixel_value", "distance#2"]
    assert t["pix0"] == [0.1, 0.0129, -0.0129]


def test_first_divergence_is_named(tmp_path, capsys):
    b = (A.replace("TRACE_C", "TRACE_PY").replace("-0.4594", "-0.4600")  # first to differ
         .replace("-5.008", "-5.1").replace("0.2502", "0.26"))  # later consequences
    code = tracediff.main([write(tmp_path / "a", A), write(tmp_path / "b", b)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[-1] == "first divergence: source[0].phi[0].mosaic[0].hkl"
    marked = [line for line in out if "<<< first divergence" in line]
    assert len(marked) == 1 and "mosaic[0].hkl" in marked[0]
    assert any(line.startswith("!!") and "F_latt" in line for line in out)
    assert any("3 differ" in line for line in out)


def test_agreement_within_tolerance(tmp_path, capsys):
    b = A.replace("0.2502", "0.25020000001").replace("TRACE_C:", "TRACE_PY:")
    assert tracediff.main([write(tmp_path / "a", A), write(tmp_path / "b", b)]) == 0
    assert "first divergence" not in capsys.readouterr().out
    assert tracediff.main([write(tmp_path / "a", A), write(tmp_path / "b", b), "--tol", "1e-12"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "first divergence: pixel_value"


def test_missing_quantities_are_listed_not_failed(tmp_path, capsys):
    b = "\n".join(line for line in A.splitlines() if "F_latt" not in line)
    assert tracediff.main([write(tmp_path / "a", A), write(tmp_path / "b", b)]) == 0
    assert any("(missing in B)" in line for line in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("argv", [[], ["only_one"], ["nope_a", "nope_b"], ["A", "EMPTY"], ["A", "A", "--tol", "x"]])
def test_usage_errors_exit_2(argv, tmp_path, capsys):
    names = {"A": write(tmp_path / "a", A), "EMPTY": write(tmp_path / "e", "no trace here\n")}
    assert tracediff.main([names.get(a, a) for a in argv]) == 2
    assert capsys.readouterr().err.startswith("nb-trace-diff: usage error:")


def test_real_traces_diverge_first_at_pix0(tmp_path, monkeypatch):
    """Two of our own traces whose runs differ only in -distance: pix0 is the first quantity to change."""
    monkeypatch.chdir(tmp_path)
    base = "-cell 70 80 90 75 85 95 -default_F 100 -lambda 1 -N 5 -detpixels 16 -pixel 0.4 -nonoise -nopgm".split()
    paths = []
    for dist in ("100", "100.5"):
        v = cli.load_settings(base + ["-distance", dist], print)
        sim = setup.build(v)
        paths.append(write(tmp_path / f"t{dist}", "\n".join(trace_lines(sim, 5, 9, prefix="TRACE_X")) + "\n"))
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    assert tracediff.main(paths) == 1
    assert out.getvalue().splitlines()[-1] == "first divergence: pix0"


# nanoBragg.c's -printout block for pixel (fast 100, slow 110), as printed by the golden case printout_pixel
PRINTOUT = """ 100  110 : stol = 2.73897e+07 or 0.00273897
at 0.1 0.00185 -0.00285
hkl= -0.009302 0.298215 -0.459412  hkl0= 0 0 0
 F_cell=100  F_latt=-5.00833   I = 250834
I/steps     250834.0939
polar      0.9994234157
omega   9.982707458e-07
capfrac               1
pixel      0.2502559721
real-space cell vectors (Angstrom):
     a           b           c         
X: 100.00000000 -0.00000000  0.00000000
Y:  0.00000000 100.00000000 -0.00000000
Z:  0.00000000  0.00000000 100.00000000

solid angle subtended by detector = 0.0644822 steradian ( 0.513133% sphere)
"""


def test_printout_blocks_are_read():
    t = tracediff.parse_trace(PRINTOUT.splitlines())
    p = "printout[100,110]."
    assert list(t) == [p + n for n in ("stol", "at", "hkl", "hkl0", "F_cell", "F_latt", "I", "I/steps", "polar",
                                       "omega", "capfrac", "pixel", "real_space.X", "real_space.Y", "real_space.Z")]
    assert t[p + "at"] == [0.1, 0.00185, -0.00285] and t[p + "hkl0"] == [0, 0, 0] and t[p + "pixel"] == [0.2502559721]


def test_our_printout_against_c_printout(tmp_path, monkeypatch, capsys):
    """Our -printout of the golden case's pixel agrees with nanoBragg.c's block quantity by quantity,
    and a changed value is named as the first divergence."""
    monkeypatch.chdir(tmp_path)
    args = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2", "-N", "5",
            "-distance", "100", "-detpixels", "256", "-pixel", "0.1", "-printout", "-printout_pixel", "100", "110",
            "-roi", "95", "105", "105", "115", "-floatfile", "f.bin", "-intfile", "i.img", "-nonoise", "-nopgm",
            "-noprogress"]
    out = io.StringIO()
    assert cli.run(args, out=out) == 0
    c_path, py_path = write(tmp_path / "c.txt", PRINTOUT), write(tmp_path / "py.txt", out.getvalue())
    assert tracediff.main([c_path, py_path]) == 0
    assert "15 shared quantities, 0 differ" in capsys.readouterr().out
    write(tmp_path / "c.txt", PRINTOUT.replace("F_latt=-5.00833", "F_latt=-5.1"))
    assert tracediff.main([c_path, py_path]) == 1
    assert capsys.readouterr().out.strip().endswith("first divergence: printout[100,110].F_latt")
