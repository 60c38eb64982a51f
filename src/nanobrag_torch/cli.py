"""nanoBragg-compatible command line: parse flags into settings, run the simulator, write files.

The process-wide tuning that helps a command-line run (garbage collector, malloc) is done by
`entry()`, the console script, never on import: a library must not change its host program."""
import dataclasses
import logging
import os
import sys
import time
import warnings

import numpy as np
import torch

from . import background_noise, usage
from .companion import check_output_names, console_entry
from .errors import NanoBraggError
from .io.smv import read_smv
from .options import HELP, VERSION, validate
from .settings import Settings, input_images, parse, size_options, with_header


class Progress:
    """'N% done' lines (or a bar on a terminal), only once a run has taken over a second."""

    def __init__(self, enabled, stream=None):
        # sys.stdout looked up now, not at import: it may have been replaced since (tests, notebooks)
        stream = sys.stdout if stream is None else stream
        self.enabled, self.stream, self.start, self.last = enabled, stream, time.time(), -1

    def __call__(self, fraction):
        if not self.enabled or time.time() - self.start < 1.0:
            return
        pct = int(fraction * 100)
        if pct == self.last:
            return
        self.last = pct
        if self.stream.isatty():
            bar = "#" * (pct // 2)
            self.stream.write(f"\r[{bar:<50}] {pct:3d}%" + ("\n" if pct >= 100 else ""))
        else:
            self.stream.write(f"{pct}% done\n")
        self.stream.flush()


def check_outputs(v):
    """Fail before any work if an output cannot be written (so nothing is left half done)."""
    check_output_names([("-floatfile", v.floatfile), ("-intfile", v.intfile)]
                       + ([("-write_expt", v.write_expt)] if v.write_expt is not None else [])
                       + ([("-pgmfile", v.pgmfile)] if v.write_pgm else [])
                       + ([("-noisefile", v.noisefile)] if v.calculate_noise else []))


def load_settings(argv: list[str], say) -> Settings:
    """The frozen Settings of a command line: options validated, -img/-mask headers and an -expt
    file read, the background/detector-model options, and the clock's seed where none was given."""
    seen = validate(argv)
    img, mask = input_images(argv)
    loaded = {}
    if "expt" in seen:
        from .io.expt import read_expt
        loaded["expt"] = read_expt(seen["expt"][0])
    if mask is not None:
        loaded["mask"] = read_smv(mask)
    if img is not None:
        loaded["img"] = read_smv(img)

    start = Settings()
    if "mask" in loaded:
        start = with_header(start, loaded["mask"], is_mask=True)
    if "img" in loaded:
        start = with_header(start, loaded["img"], is_mask=False)
    if "expt" in loaded:
        from .experiment import with_experiment
        start = with_experiment(start, loaded["expt"])
    v = parse(argv, start)
    mask_image = None
    if "mask" in loaded:
        m = loaded["mask"]
        mask_image = np.asarray(m.data).reshape(m.height, m.width)
    clock_seed = -int(time.time())
    return dataclasses.replace(
        background_noise.with_options(v, argv), size_options=tuple(size_options(argv)), mask_image=mask_image,
        seed=clock_seed if v.seed is None else v.seed,
        misset_seed=clock_seed if v.misset_seed is None else v.misset_seed)


def run(argv, out=None):
    from . import outputs, setup

    out = sys.stdout if out is None else out
    from .datasets.cli import is_dataset_run
    if is_dataset_run(argv):
        from .datasets.cli import run as run_dataset
        return run_dataset(argv, out)

    def say(text):
        out.write(text + "\n")

    v = load_settings(argv, say)
    check_outputs(v)
    try:
        sim = setup.build(v)  # checks the mask size too
    except NanoBraggError as exc:
        print_report(getattr(exc, "report", ()), say)  # nanoBragg.c prints its report up to the error
        raise
    print_report(sim.report, say)
    v = sim.settings  # the resolved settings
    if v.expt is not None and v.expt.images > 1:
        logging.getLogger(__package__).info(
            f"{v.exptfile}: its scan has {v.expt.images} images; this run simulates the first "
            f"(-frames {v.expt.images} with -smv/-cbf/-nexus renders the series)")
    if v.trace_pixel is not None:
        from .trace import trace_pixel
        trace_pixel(sim, v, *v.trace_pixel, say=say)
    with torch.no_grad():
        image = sim.run(progress=Progress(v.progress))
    if sim.stats.get("interpolation_warning"):
        say("WARNING: out of range for three point interpolation: h,k,l,h0,k0,l0: %g,%g,%g,%d,%d,%d "
            % sim.stats["interpolation_warning"])
        say("WARNING: further warnings will not be printed! ")
    image32 = background_noise.add_background(v, sim, image.detach().to("cpu", torch.float32).numpy(), say)
    del image  # the float32 copy is all that is written
    background_noise.describe(v, say)
    if v.printout:
        from .trace import printout
        printout(sim, v, image32, say)
    say("")
    steps = v.steps
    say("solid angle subtended by detector = %g steradian ( %g%% sphere)"
        % (sim.stats["omega_sum"] / steps, 100 * sim.stats["omega_sum"] / steps / 4 / np.pi))
    rendered = rendered_mask(v)
    roi, fields = tuple(v.roi), None
    if v.panel_count > 1:  # statistics over every panel's ROI rows; a header per panel
        from .experiment import panel_header_fields
        roi, fields = (roi[0], roi[1], roi[2], roi[3] + (v.panel_count - 1) * v.spixels), \
            panel_header_fields(v, sim.detector)
    stats = outputs.statistics(image32, rendered, roi, v.oversample, v.pixel_size)
    outputs.write_all(v, image32, stats, say, noise=background_noise.noise_function(v), panel_fields=fields)
    if v.write_expt:
        from .experiment import write_run_expt
        write_run_expt(v, sim, say)
    return 0


def print_report(lines, say) -> None:
    """nanoBragg's set-up report (`setup.build` makes it; the command line prints it)."""
    for line in lines:
        say(line)


def rendered_mask(v):
    from .experiment import rendered_panels
    return rendered_panels(v)


def one_line(exc):
    """The message with control characters (newlines from file names or arguments) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"nanoBragg: warning: {one_line(message)}", file=sys.stderr if file is None else file)


def _once():
    seen = set()

    def first_time(record):
        message = record.getMessage()
        if message in seen:
            return False
        seen.add(message)
        return True
    return first_time


def tune_process():
    """Process-wide tuning for a command-line run (called by `entry`; never by the library).

    glibc serves large chunk buffers with mmap so they go back to the OS when freed (otherwise it
    raises its mmap threshold after the first large free, equal-sized chunk buffers then come from
    the heap and fragment it, and peak memory grows with the detector size), and keeps up to
    64 MiB of freed heap mapped (trimming it after every chunk and faulting it back in for the
    next costs more system time than the kernels take); threads share that heap (the eager engine
    renders chunks on threads of its own, and a heap per thread, each keeping its freed 64 MiB,
    raised a cold 1024^2 run's peak by ~90 MiB)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 16 << 20)  # M_MMAP_THRESHOLD = 16 MiB (also disables the dynamic threshold)
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD = 64 MiB
        libc.mallopt(-8, 1)  # M_ARENA_MAX = 1
    except (OSError, AttributeError):
        pass


def entry():
    """Console-script entry point: main(), then leave without finalizing the interpreter.

    Every output file is closed by then; tearing down torch's thousands of modules would add
    ~0.15 s to every run (more than some whole renders take)."""
    tune_process()
    console_entry(main)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or "-debug" in argv or os.environ.get("NANOBRAGG_DEBUG")
    if any(a in HELP for a in argv):
        print(usage.usage_text())
        return 0
    if any(a in VERSION for a in argv):
        print(usage.version_text())
        return 0
    if not argv:
        print(usage.SHORT, file=sys.stderr)
        return 2
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(logging.Formatter("nanoBragg: note: %(message)s"))
    notes.addFilter(_once())  # a dataset builds its models once per frame; each note is shown once
    logger = logging.getLogger(__package__)
    level = logger.level
    logger.addHandler(notes)
    logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return run(argv)
    except NanoBraggError as exc:
        sys.stdout.flush()
        print(f"nanoBragg: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nanoBragg: interrupted; no output written", file=sys.stderr)
        return 130
    except MemoryError:
        print("nanoBragg: error: out of memory (try a smaller detector or -dtype float32)", file=sys.stderr)
        return 1
    except Exception as exc:  # never a traceback for users; --debug shows it
        if debug:
            raise
        if isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc) \
                or isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
            print("nanoBragg: error: out of memory (try a smaller detector, fewer sampling steps or -dtype float32)",
                  file=sys.stderr)
            return 1
        print(f"nanoBragg: internal error: {type(exc).__name__}: {one_line(exc)} (rerun with --debug for details)",
              file=sys.stderr)
        return 1
    finally:
        logger.removeHandler(notes)
        logger.setLevel(level)
