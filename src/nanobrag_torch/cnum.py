"""C library number parsing (atof/atoi) for reproducing nanoBragg's lenient reads."""
import re

_FLOAT = re.compile(r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", re.I)
_INT = re.compile(r"\s*([+-]?\d+)")


def atof(text):
    m = _FLOAT.match(text or "")
    return float(m.group(1)) if m else 0.0


def atoi(text):
    m = _INT.match(text or "")
    if not m:
        return 0
    value = int(m.group(1))
    # C int wraps; keep within 32 bits like a typical atoi on overflow-free input
    return max(min(value, 2**31 - 1), -(2**31))
