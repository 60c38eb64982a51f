"""Command-line plumbing shared by nanoBragg's companion programs (nonBragg, noisify).

Both C programs match options by substring (strstr) and apply every rule an argument matches,
in source order.  Here an argument must first be a known option with valid values (strict, as
nanoBragg's own command line); its effects are then the C's rules, applied in the C's order.
"""
import os
import sys

from .errors import InputFileError, NanoBraggError, UsageError
from .io.atomic import check_writable
from .options import F, I, S, _check_sign, _is_number, _number, option_name

V3 = (F, F, F)


def validate(argv, vocabulary, positional=None):
    """Check argv against {name: kinds}; `positional(token)` may accept bare arguments."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("--debug", "-debug"):
            i += 1
            continue
        if not tok.startswith("-") or len(tok) < 2 or _is_number(tok):
            if positional is not None and positional(tok):
                i += 1
                continue
            raise UsageError(f"unexpected argument '{tok}' (options start with '-')")
        name = option_name(tok, vocabulary)
        i += 1
        values = []
        for kind in vocabulary[name]:
            token = argv[i] if i < len(argv) else None
            if kind in (F, I):
                values.append(_number(name, token, kind))
            elif token is None or (token.startswith("-") and token[1:] in vocabulary):
                raise UsageError(f"option -{name}: missing {'file name' if kind == S else 'value'}")
            elif isinstance(kind, tuple) and token not in kind:
                raise UsageError(f"option -{name}: expected {' or '.join(kind)}, got '{token}'")
            i += 1
        _check_sign(name, values)


class Rules:
    """An ordered list of C option rules: (test on the argument, values it needs, action)."""

    def __init__(self):
        self.rules = []

    def add(self, test, nargs, action):
        self.rules.append((test, nargs, action))

    def apply(self, v, argv):
        for i, tok in enumerate(argv):
            if not tok.startswith("-"):
                continue
            for test, nargs, action in self.rules:
                if test(tok) and len(argv) > i + max(nargs, 0):
                    action(v, argv[i + 1:i + 1 + nargs])
        return v


def has(*parts, length=None):
    """C's strstr(arg, part) for any part, optionally with strlen(arg) == length."""
    return lambda tok: any(p in tok for p in parts) and (length is None or len(tok) == length)


def line_writer(out=None):
    """say(text): one line of the program's report on `out` (default: sys.stdout at call time)."""
    out = sys.stdout if out is None else out

    def say(text):
        out.write(text + "\n")
    return say


def check_output_names(names):
    """Fail before any work when an output cannot be written (so nothing is left half done)."""
    for option, name in names:
        if not name:
            raise UsageError(f"option {option}: empty file name")
        if name.endswith(os.sep):
            raise InputFileError(f"{name}: is a folder, not a file name")
        check_writable(name)


def run_main(program, run, argv, usage):
    """Run `run(argv)` with one-line errors (exit 2 misuse, 1 bad input) and no tracebacks."""
    from .cli import one_line

    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or "-debug" in argv or os.environ.get("NANOBRAGG_DEBUG")
    if any(a in ("-h", "-help", "--help") for a in argv):
        print(usage)
        return 0
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    try:
        return run([a for a in argv if a not in ("--debug", "-debug")])
    except NanoBraggError as exc:
        sys.stdout.flush()
        print(f"{program}: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{program}: interrupted; no output written", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{program}: error: out of memory", file=sys.stderr)
        return 1
    except Exception as exc:  # never a traceback for users; --debug shows it
        if debug:
            raise
        print(f"{program}: internal error: {type(exc).__name__}: {one_line(exc)} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


def console_entry(main):
    """Console-script entry: main(), then leave without finalizing the interpreter.

    Every output file is closed by then; tearing down torch's thousands of modules would add
    ~0.15 s to every run (more than some whole renders take)."""
    try:
        code = main()
    except BrokenPipeError:  # the reader went away (nanoBragg -h | head)
        code = 0
    fused = sys.modules.get(__package__ + ".fused")
    if fused is not None:
        fused.release()  # what atexit would have done: loaded kernels delete their temporary copies
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = code or 1
    os._exit(code)
