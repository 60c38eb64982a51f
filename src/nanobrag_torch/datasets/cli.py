"""The dataset command line: -frames / -stills with -nexus, -cbf, -smv, -frame, -export_c, -resume.

    nanoBragg <nanoBragg options> -frames 100 -osc 0.1 -nexus series.nxs
    nanoBragg <nanoBragg options> -stills 20 -shots shots.toml -cbf shot
    nanoBragg <nanoBragg options> -frames 100 -osc 0.1 -frame 7     # frame 7 as a single run

Every other option means what it means for one image; the dataset options are removed from the
arguments before they are read, so `-frame K` is exactly `nanoBragg <options> <frame K's args>`.
"""
from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager

from ..cnum import atof, atoi
from ..errors import UsageError
from ..options import OPTIONS, validate
from ..scoped import scoped
from ..settings import RTD
from .plan import FramePlan

DATASET_OPTIONS = ("frames", "stills", "frame", "smv", "nexus", "cbf", "resume", "overwrite", "shots", "export_c",
                   "workers", "scheduler")


def is_dataset_run(argv) -> bool:
    return any(tok[1:] in DATASET_OPTIONS for tok in argv if tok.startswith("-"))


def split_args(argv) -> tuple:
    """({dataset option: values}, the remaining nanoBragg arguments); argv is already validated."""
    opts, base, i = {}, [], 0
    while i < len(argv):
        tok = argv[i]
        name = tok[1:] if tok.startswith("-") else None
        arity = len(OPTIONS.get(name, ())) if name in OPTIONS else 0
        if name in DATASET_OPTIONS:
            opts[name] = argv[i + 1:i + 1 + arity]
        else:
            base.extend(argv[i:i + 1 + arity])
        i += 1 + arity
    return opts, base


def _last_value(argv, option):
    values = [argv[i + 1] for i, tok in enumerate(argv[:-1]) if tok == option]
    return atof(values[-1]) if values else None


def make_plan(base, opts, say=lambda text: None) -> FramePlan:
    """The FramePlan of a dataset command: phi/osc in degrees as typed, seeds as resolved."""
    from ..cli import load_settings
    from ..resolve import Resolved, placed, sampled

    v = load_settings(base, say)
    kind = "rotation" if "frames" in opts else "stills"
    count = atoi((opts.get("frames") or opts.get("stills"))[0])
    phi = _last_value(base, "-phi")
    osc = _last_value(base, "-osc")
    if osc is None:
        osc = sampled(Resolved.of(v), lambda text: None).osc * RTD
    shots = None
    if "shots" in opts:
        from .shots import load_shots
        beam = placed(Resolved.of(v), lambda text: None).beam  # the beam direction, for spectra's source files
        shots = load_shots(opts["shots"][0], count, -v.misset_seed, v.lambda0 * 1e10, beam)
    return FramePlan(kind, count, v.phi0 * RTD if phi is None else phi, osc, seed=-v.seed,
                     misset_seed=-v.misset_seed, shots=shots)


def check_options(opts) -> None:
    if "frames" in opts and "stills" in opts:
        raise UsageError("options -frames and -stills: give one of them")
    if "frames" not in opts and "stills" not in opts:
        used = next(name for name in DATASET_OPTIONS if name in opts)
        raise UsageError(f"option -{used}: needs -frames N (a rotation series) or -stills N (serial stills)")
    count = atoi((opts.get("frames") or opts.get("stills"))[0])
    if count < 1:
        raise UsageError(f"option -{'frames' if 'frames' in opts else 'stills'}: at least one frame, got {count}")
    if "shots" in opts and "stills" not in opts:
        raise UsageError("option -shots: per-shot variation needs -stills N")
    if "frame" in opts and not 0 <= atoi(opts["frame"][0]) < count:
        raise UsageError(f"option -frame: {opts['frame'][0]} is outside the series (0..{count - 1})")
    if "resume" in opts and "overwrite" in opts:
        raise UsageError("options -resume and -overwrite: give one of them")


def run(argv, out=None) -> int:
    """A dataset run (the command line calls this when a dataset option is present)."""
    out = sys.stdout if out is None else out

    def say(text):
        out.write(text + "\n")

    validate(argv)
    opts, base = split_args(argv)
    check_options(opts)
    cluster = "workers" in opts or "scheduler" in opts
    if cluster:
        from .distributed import check_cluster_options
        check_cluster_options(opts)
    plan = make_plan(base, opts)
    if "frame" in opts:
        from ..cli import run as single_run
        with tempfile.TemporaryDirectory(prefix="nanobragg-frame-") as folder:
            return single_run(base + plan.frame_args(plan.frame(atoi(opts["frame"][0])), folder), out)
    _one_panel_only(base)
    if "export_c" in opts:
        from .export import export_c
        export_c(opts["export_c"][0], base, plan, say, overwrite="overwrite" in opts)
    sinks = make_sinks(opts, plan, argv)
    if not sinks:
        if "export_c" in opts:
            return 0
        raise UsageError("a dataset needs an output: -nexus FILE.nxs, -cbf PREFIX or -smv PREFIX")
    if cluster:
        from .distributed import render_distributed
        code = render_distributed(base, plan, sinks, opts, argv, say)
    else:
        code = render_dataset(base, plan, sinks, opts, say)
    expt = _last_value_text(base, "-write_expt")
    if code == 0 and expt is not None:  # the true geometry of every frame, once all are written
        from ..experiment import write_dataset_expt
        write_dataset_expt(expt, base, plan, say)
    return code


def _last_value_text(argv, option):
    values = [argv[i + 1] for i, tok in enumerate(argv[:-1]) if tok == option]
    return values[-1] if values else None


def _one_panel_only(base) -> None:
    """Dataset outputs hold one panel per frame so far; a multi-panel -expt detector renders its
    frames one at a time (-frame K, one file per panel)."""
    from ..cli import load_settings

    v = load_settings(base, lambda text: None)
    if v.expt_panels and len(v.expt_panels) > 1:
        raise UsageError(f"{v.exptfile}: {len(v.expt_panels)} panels; dataset outputs take a one-panel detector "
                         "so far (render frames one at a time with -frame K, which writes one file per panel)")


def make_sinks(opts, plan, argv) -> list:
    sinks = []
    if "nexus" in opts:
        from .nexus import NexusFile
        sinks.append(NexusFile(opts["nexus"][0], plan, argv))
    if "cbf" in opts:
        from .cbf import CBFSeries
        sinks.append(CBFSeries(opts["cbf"][0], plan, argv))
    if "smv" in opts:
        from .smv import SMVSeries
        sinks.append(SMVSeries(opts["smv"][0], plan, argv))
    for sink in sinks:
        check_existing(sink, opts)
    return sinks


def check_existing(sink, opts) -> None:
    """Never overwrite without -overwrite; -resume continues an existing output."""
    found = sink.existing()
    if found and "overwrite" not in opts and "resume" not in opts:
        raise UsageError(f"{found[0]}: exists; give -overwrite to replace it or -resume to continue it")
    if "overwrite" in opts:
        for name in found:
            os.unlink(name)


class StopRequests:
    """Ctrl-C / SIGTERM end the run between file writes: a signal that arrives while a frame is
    being written is held until that frame is in every output, so each output stays valid."""

    def __init__(self):
        self.writing = self.pending = False
        self.signal = signal.SIGINT

    def __call__(self, signum, frame):
        self.signal = signum
        if self.writing:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def held(self):
        """Signals wait until the block is done (then end the run)."""
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
        if self.pending:
            raise KeyboardInterrupt

    def write(self, sinks, result) -> None:
        with self.held():
            for sink in sinks:
                sink.write(result)

    def install(self) -> list:
        if threading.current_thread() is not threading.main_thread():
            return []
        return [(sig, signal.signal(sig, self)) for sig in (signal.SIGINT, signal.SIGTERM)]


class _Guarded:
    """All outputs as one sink whose writes are not cut short by a signal."""

    def __init__(self, sinks, stop):
        self.sinks, self.stop = sinks, stop

    def write(self, result) -> None:
        self.stop.write(self.sinks, result)


def _render_threads(renderer) -> int | None:
    """On a machine whose cores are already busy, render with one thread fewer than torch's default
    while frames' noise is drawn on a second thread (unless -nthreads is given): an OpenMP team that
    shares its cores with the noise thread and other jobs waits at every barrier. Measured on 2
    cores: 30 D1 frames at load ~5 in 6.9 s with one render thread, 8.0-16.6 s with two; 100 frames
    at load < 1 in 15.4-16.2 s with one, 12.3-12.4 s with two. The count to render with,
    or None to leave torch's own."""
    import torch

    v = renderer.settings
    busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    if busy and v.nthreads <= 0 and v.calculate_noise and torch.device(renderer.sim.detector.device).type == "cpu":
        return max(1, torch.get_num_threads() - 1)
    return None


def render_dataset(base, plan, sinks, opts, say) -> int:
    import torch

    from .progress import SeriesProgress
    from .render import Renderer, render_frames
    from .sheet import write_contact_sheet

    start = min(sink.frames_done() for sink in sinks) if "resume" in opts else 0
    indices = range(start, plan.count)
    renderer = Renderer(base, plan, say)
    progress = SeriesProgress(len(indices), enabled=renderer.settings.progress)
    renderer.progress = progress.within_frame
    stop = StopRequests()
    previous = stop.install()
    counter = {"done": 0}

    def frame_done(count):
        counter["done"] = count
        progress.frame_done(count)

    complete = False
    with scoped(torch.get_num_threads, torch.set_num_threads, _render_threads(renderer)):
        try:
            with stop.held():
                for sink in sinks:
                    sink.open(renderer, start)
            render_frames(renderer, indices, [_Guarded(sinks, stop)], frame_done)
            complete = True
        except KeyboardInterrupt:
            pass
        finally:
            stop.writing = True  # closing the outputs is not cut short either
            for sink in sinks:
                sink.close(complete)
            renderer.close()
            for sig, handler in previous:
                signal.signal(sig, handler)
    done = counter["done"]
    say("wrote frames %d to %d of %d (%.2f frames/s)" % (start + 1, start + done, plan.count, progress.rate()))
    if not complete:
        print(f"nanoBragg: interrupted after frame {start + done}; every finished frame is written; "
              "run the same command with -resume to continue", file=sys.stderr)
        return 128 + int(stop.signal)
    write_contact_sheet(sinks, plan)
    return 0
