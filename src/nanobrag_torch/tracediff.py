"""nb-trace-diff: align two pixel traces by quantity name and find the first one that disagrees.

    nb-trace-diff A B [--tol 1e-6] [--atol 0]

Trace lines look like `PREFIX: name v1 v2 ...` (any PREFIX, e.g. TRACE_PY or TRACE_C) with numeric
values; other lines are ignored. `-printout` blocks (ours and nanoBragg.c's: "FAST SLOW : stol = ...",
"at ...", "hkl= ...", ... "Z: ...") are read too, as quantities named `printout[FAST,SLOW].stol` etc.
A name that occurs again is numbered (name#2, ...). Quantities are
listed in A's order with B's values and the largest relative difference per quantity; the first
one beyond the tolerance is marked and repeated last as `first divergence: <name>`.
Exit: 0 all shared quantities agree, 1 some differ, 2 usage error.
"""
import argparse
import math
import re
import sys

LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*):\s+([A-Za-z_][^\s]*)((?:\s+\S+)+)\s*$")


class Usage(Exception):
    """A command-line mistake of nb-compare or nb-trace-diff (exit 1, one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises Usage instead of exiting, so each tool prints its own one-line error."""

    def error(self, message):
        raise Usage(message)


# a -printout block: its first line names the pixel, the others are read by these patterns
PRINTOUT_START = re.compile(r"^\s*(\d+)\s+(\d+) : stol = (\S+) or (\S+)\s*$")
PRINTOUT_LINES = [
    (re.compile(r"^at (\S+) (\S+) (\S+)\s*$"), ["at"] * 3),
    (re.compile(r"^hkl= (\S+) (\S+) (\S+)\s+hkl0= (\S+) (\S+) (\S+)\s*$"), ["hkl"] * 3 + ["hkl0"] * 3),
    (re.compile(r"^\s*F_cell=(\S+)\s+F_latt=(\S+)\s+I = (\S+)\s*$"), ["F_cell", "F_latt", "I"]),
    (re.compile(r"^(I/steps|polar|omega|capfrac|pixel)\s+(\S+)\s*$"), None),
    (re.compile(r"^([XYZ]): +(\S+) +(\S+) +(\S+)\s*$"), None),
]


def _printout_quantities(line, pixel):
    """[(name, values)] from one line of a -printout block ([] if it is not one)."""
    for pattern, names in PRINTOUT_LINES:
        m = pattern.match(line)
        if not m:
            continue
        groups = m.groups()
        if names is None:  # the quantity's name is the line's first word
            names, groups = [("real_space." if len(groups) == 4 else "") + groups[0]] * (len(groups) - 1), groups[1:]
        out = {}
        for name, text in zip(names, groups):
            out.setdefault(f"printout[{pixel}].{name}", []).append(float(text))
        return list(out.items())
    return []


def _quantities(lines):
    """(name, values) for every trace line and -printout line, in order."""
    pixel = None
    for line in lines:
        start = PRINTOUT_START.match(line)
        if start:
            pixel = f"{start.group(1)},{start.group(2)}"
            yield f"printout[{pixel}].stol", [float(start.group(3)), float(start.group(4))]
            continue
        if pixel is not None:
            found = _printout_quantities(line.rstrip("\n"), pixel)
            yield from found
            if found and found[0][0].endswith("real_space.Z"):
                pixel = None
            if found:
                continue
        m = LINE.match(line)
        if not m:
            continue
        try:
            yield m.group(2), [float(x) for x in m.group(3).split()]
        except ValueError:
            continue  # not a trace quantity (e.g. 'WARNING: out of range ...')


def parse_trace(lines):
    """Ordered {name: [floats]} from trace lines; repeated names become name#2, name#3 ..."""
    out, seen = {}, {}
    for name, values in _quantities(lines):
        seen[name] = seen.get(name, 0) + 1
        out[name if seen[name] == 1 else f"{name}#{seen[name]}"] = values
    return out


def read_trace(path):
    try:
        with open(path, errors="replace") as handle:
            trace = parse_trace(handle)
    except OSError as exc:
        raise Usage(f"{path}: {exc.strerror or exc}") from None
    if not trace:
        raise Usage(f"{path}: no trace lines ('PREFIX: name v1 v2 ...') or -printout blocks")
    return trace


def rel_diff(a, b):
    """Largest |a-b| / max(|a|, |b|) over the components (0 where both are 0; inf on a length mismatch)."""
    if len(a) != len(b):
        return math.inf
    worst = 0.0
    for x, y in zip(a, b):
        if x == y or (math.isnan(x) and math.isnan(y)):
            continue
        scale = max(abs(x), abs(y))
        d = abs(x - y) / scale if scale > 0 and math.isfinite(scale) else math.inf
        worst = max(worst, d if not math.isnan(d) else math.inf)
    return worst


def agree(a, b, tol, atol):
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y or (math.isnan(x) and math.isnan(y)):
            continue
        if not abs(x - y) <= max(tol * max(abs(x), abs(y)), atol):
            return False
    return True


def _vals(v):
    return " ".join("%.10g" % x for x in v)


def diff(a, b, tol, atol=0.0):
    """(report lines, first divergent name or None, number of differing quantities)."""
    width = max(len(n) for n in a)
    lines, first, bad = [], None, 0
    for name, va in a.items():
        if name not in b:
            lines.append(f"  {name:<{width}}  {_vals(va)}  |  (missing in B)")
            continue
        vb = b[name]
        ok = agree(va, vb, tol, atol)
        mark = "  "
        if not ok:
            bad += 1
            mark = "!!"
            if first is None:
                first, mark = name, ">>"
        lines.append(f"{mark}{name:<{width}}  {_vals(va)}  |  {_vals(vb)}  rel {rel_diff(va, vb):.3g}"
                     + ("   <<< first divergence" if name == first and not ok else ""))
    only_b = [n for n in b if n not in a]
    if only_b:
        lines.append(f"  ({len(only_b)} quantities only in B, e.g. {', '.join(only_b[:5])})")
    shared = sum(1 for n in a if n in b)
    lines.append(f"{shared} shared quantities, {bad} differ beyond tol")
    if first is not None:
        lines.append(f"first divergence: {first}")
    return lines, first, bad


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = _Parser(prog="nb-trace-diff", description=__doc__.splitlines()[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=1e-6, help="relative tolerance (default 1e-6)")
    p.add_argument("--atol", type=float, default=0.0, help="absolute tolerance, e.g. for values near 0")
    try:
        opts = p.parse_args(argv)
        if not (opts.tol >= 0 and opts.atol >= 0):
            raise Usage("--tol and --atol must not be negative")
        a, b = read_trace(opts.a), read_trace(opts.b)
    except Usage as exc:
        print(f"nb-trace-diff: usage error: {exc}", file=sys.stderr)
        return 2
    lines, first, bad = diff(a, b, opts.tol, opts.atol)
    print("\n".join(lines))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
