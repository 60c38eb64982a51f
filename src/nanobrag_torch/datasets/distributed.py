"""Datasets on a Dask cluster: -workers N (N processes on this machine) or -scheduler ADDRESS.

    nanoBragg <options> -frames 3600 -nexus series.nxs -workers 4
    nanoBragg <options> -stills 100000 -cbf shot -scheduler tcp://head-node:8786

Work units are chunks of consecutive frames (the chunk size depends on the frame count only, so
a resumed run finds the same chunks). A task carries the command and its chunk's frame range,
nothing else; the worker builds the simulation once and keeps it for the job's next chunks (the
compiled kernel comes from the shared on-disk kernel cache), renders its frames and writes them
itself: CBF/SMV frames as files, -nexus frames into a data file of the chunk's own
(datasets.nexus_chunks), each file complete or absent. The scheduler only carries small
manifests (frame records, the worker's pid and peak memory). When every chunk is done the client
writes the NXmx master over the chunk files and the contact sheet.

Frame i depends on the command and i only (datasets.plan), so any cluster, any order, any retry
gives the same pixels. A worker that dies (killed, out of memory) loses only the chunk it was
rendering: the scheduler gives that chunk to another worker, and the client reports how many
chunks were retried. A task finding its chunk already written (a retry after its worker died
between writing and reporting) returns the manifest without rendering again.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import resource
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass

from ..cnum import atoi
from ..errors import UsageError
from ..scoped import scoped
from .plan import FramePlan

INSTALL = "pip install 'nanobrag_torch[distributed]'"
RUN_CONTROL = {"-resume": 0, "-overwrite": 0, "-workers": 1, "-scheduler": 1}


def require_dask() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"options -workers/-scheduler need Dask; install it with: {INSTALL}") from None


def check_cluster_options(opts) -> None:
    if "workers" in opts and "scheduler" in opts:
        raise UsageError("options -workers and -scheduler: give one of them")
    if "scheduler" in opts and "://" not in opts["scheduler"][0]:
        raise UsageError(f"option -scheduler: {opts['scheduler'][0]} is not a scheduler address "
                         "(like tcp://host:8786)")
    require_dask()


def chunk_size(count: int) -> int:
    """Frames per chunk: ~256 chunks for big datasets (retries stay cheap), at most 100 frames."""
    return max(1, min(100, -(-count // 256)))


def chunk_ranges(count: int) -> list:
    """[(chunk number, first frame, end frame)] covering 0..count-1."""
    size = chunk_size(count)
    return [(n, start, min(start + size, count)) for n, start in enumerate(range(0, count, size))]


def frames_command(argv) -> list:
    """The command as recorded in files: without the options that do not change any frame."""
    out, i = [], 0
    while i < len(argv):
        skip = RUN_CONTROL.get(argv[i])
        if skip is None:
            out.append(argv[i])
            i += 1
        else:
            i += 1 + skip
    return out


@dataclass(frozen=True)
class Job:
    """What every chunk task needs (small; pickled into each task).

    base: the nanoBragg arguments shared by all frames; plan: the FramePlan; command: the
    command recorded in files; cwd: the folder relative paths are read and written in;
    outputs: {"nexus"/"cbf"/"smv": path or prefix}; nthreads: torch threads per worker (None: the
    worker's cores shared among its Dask threads); token: this run's name for its tasks."""

    base: tuple
    plan: FramePlan
    command: tuple
    cwd: str
    outputs: tuple
    nthreads: int | None
    token: str


# ---------------------------------------------------------------- on the workers

_WORKER: dict = {}  # this worker process's Renderer for the job it last ran
# one chunk at a time per process: a worker started with several Dask threads would otherwise
# render two chunks at once through the one Renderer (whose simulation each frame changes)
_ONE_AT_A_TIME = threading.Lock()


def _renderer(job: Job):
    from .render import Renderer

    if _WORKER.get("token") != job.token:
        old = _WORKER.pop("renderer", None)
        if old is not None:
            old.close()
        import torch
        torch.set_num_threads(job.nthreads or _auto_threads())
        _WORKER["renderer"] = Renderer(list(job.base), job.plan)
        _WORKER["token"] = job.token
    return _WORKER["renderer"]


def _auto_threads() -> int:
    from distributed import get_worker

    return max(1, len(os.sched_getaffinity(0)) // max(1, get_worker().state.nthreads))


def _folder(path):
    return scoped(os.getcwd, os.chdir, path)


def _chunk_sinks(job: Job, number: int, first: int, end: int) -> list:
    outputs, sinks = dict(job.outputs), []
    if "nexus" in outputs:
        from .nexus_chunks import ChunkFile
        sinks.append(ChunkFile(outputs["nexus"], number, first, end - first, job.command))
    if "cbf" in outputs:
        from .cbf import CBFSeries
        sinks.append(CBFSeries(outputs["cbf"], job.plan, job.command))
    if "smv" in outputs:
        from .smv import SMVSeries
        sinks.append(SMVSeries(outputs["smv"], job.plan, job.command))
    return sinks


def finished_chunk(job: Job, number: int, first: int, end: int):
    """The frame records of a chunk whose files are all written ([] without -nexus), else None."""
    from .nexus_chunks import chunk_path, read_chunk

    outputs = dict(job.outputs)
    for sink in _chunk_sinks(job, number, first, end):
        if hasattr(sink, "name") and not all(os.path.exists(sink.name(i)) for i in range(first, end)):
            return None
    if "nexus" not in outputs:
        return []
    path = chunk_path(outputs["nexus"], number)
    return read_chunk(path, job.command)[1] if os.path.exists(path) else None


def render_chunk(job: Job, number: int, first: int, end: int) -> dict:
    """The task: render frames first..end-1 into the chunk's files; returns its manifest."""
    from .render import render_frames

    start = time.perf_counter()
    with _ONE_AT_A_TIME, _folder(job.cwd):
        records = finished_chunk(job, number, first, end)
        rendered = records is None
        if rendered:
            sinks = _chunk_sinks(job, number, first, end)
            renderer = _renderer(job)
            complete = False
            try:
                for sink in sinks:
                    sink.open(renderer, first)
                render_frames(renderer, range(first, end), sinks)
                complete = True
            finally:
                for sink in sinks:
                    sink.close(complete)
            records = next((s.records for s in sinks if hasattr(s, "records")), [])
    return {"number": number, "first": first, "end": end, "records": records, "rendered": rendered,
            "pid": os.getpid(), "seconds": time.perf_counter() - start,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


# ---------------------------------------------------------------- on the client


def make_job(base, plan: FramePlan, argv, opts, sinks) -> Job:
    outputs = []
    for sink in sinks:
        kind = type(sink).__name__
        name = {"NexusFile": "nexus", "CBFSeries": "cbf", "SMVSeries": "smv"}[kind]
        outputs.append((name, os.path.abspath(sink.path if name == "nexus" else sink.prefix)))
    base = list(base)
    if _random_misset(base) and "-misset_seed" not in base:
        # the clock-seeded draw must be the same on every worker; first, because nanoBragg's
        # -misset_seed also sets the misset angles and the seed, which the later options override
        base = ["-misset_seed", str(plan.misset_seed)] + base
    nthreads = _option_value(base, "-nthreads")
    if nthreads is None and "workers" in opts:
        nthreads = max(1, len(os.sched_getaffinity(0)) // atoi(opts["workers"][0]))
    command = frames_command(argv)
    token = hashlib.sha1(repr((command, uuid.uuid4().hex)).encode()).hexdigest()[:12]
    return Job(tuple(base), plan, tuple(command), os.getcwd(), tuple(outputs), nthreads, token)


def _random_misset(args) -> bool:
    return any(tok == "-misset" and nxt == "random" for tok, nxt in itertools.pairwise(args))


def _option_value(args, option):
    values = [args[i + 1] for i, tok in enumerate(args[:-1]) if tok == option]
    return atoi(values[-1]) if values else None


def render_distributed(base, plan: FramePlan, sinks, opts, argv, say) -> int:
    """A dataset rendered by Dask workers (the command line calls this for -workers / -scheduler)."""
    from .render import Renderer
    from .sheet import write_contact_sheet

    job = make_job(base, plan, argv, opts, sinks)
    nexus = dict(job.outputs).get("nexus")
    if nexus is not None:
        _check_chunk_files(nexus, opts)
    chunks = chunk_ranges(plan.count)
    done = {n: finished_chunk(job, n, a, b) for n, a, b in chunks} if "resume" in opts else {}
    done = {n: records for n, records in done.items() if records is not None}
    todo = [c for c in chunks if c[0] not in done]
    # checks the input before any worker starts, and gives the master's header (on the CPU: the
    # workers may have accelerators that the client lacks)
    with Renderer(list(base) + ["-device", "cpu"], plan, say) as renderer:
        manifests, retried, progress, stopped = _render_chunks(opts, job, todo, say, renderer.settings.progress,
                                                               nexus)
        report(say, plan, todo, manifests, retried, progress)
        if stopped:
            # counted on disk: workers finish the chunks in their hands while the cluster shuts down
            written = sum(finished_chunk(job, *chunk) is not None for chunk in chunks)
            print(f"nanoBragg: interrupted; {written} of {len(chunks)} chunks are written; "
                  "run the same command with -resume to continue", file=sys.stderr)
            return 128 + stopped
        if nexus is not None:
            _write_master(sinks, renderer, done, manifests)
    write_contact_sheet(sinks, plan)
    return 0


def _render_chunks(opts, job, todo, say, show_progress, nexus) -> tuple:
    """(manifests, chunks retried, progress, the signal that stopped the run or 0)."""
    from .cluster import cluster_client, run_chunks
    from .nexus_chunks import stale_parts

    stopped = {"signal": 0}

    def interrupt(signum, frame):
        stopped["signal"] = signum
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt) if _main_thread() else None
    manifests, retried, progress = [], None, None
    try:
        with cluster_client(opts, job, say) as client:
            retried, progress = run_chunks(client, job, todo, manifests, show_progress)
    except KeyboardInterrupt:
        stopped["signal"] = stopped["signal"] or int(signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for part in stale_parts(nexus) if nexus else ():
            os.unlink(part)
    return manifests, retried, progress, int(stopped["signal"])


def _check_chunk_files(nexus, opts) -> None:
    from .nexus_chunks import chunk_files

    found = chunk_files(nexus)
    if found and "overwrite" not in opts and "resume" not in opts:
        raise UsageError(f"{found[0]}: exists; give -overwrite to replace it or -resume to continue it")
    if "overwrite" in opts:
        for name in found:
            os.unlink(name)


def _write_master(sinks, renderer, done, manifests) -> None:
    from .nexus import NexusFile
    from .nexus_chunks import write_master

    master = next(s for s in sinks if isinstance(s, NexusFile))
    first = {n: a for n, a, _ in chunk_ranges(master.count)}
    chunks = [(n, first[n], records) for n, records in done.items()]
    chunks += [(m["number"], m["first"], m["records"]) for m in manifests]
    write_master(master, renderer, sorted(chunks))


def report(say, plan, todo, manifests, retried, progress) -> None:
    frames = sum(m["end"] - m["first"] for m in manifests)
    peak = max((m["peak_rss_mib"] for m in manifests), default=0.0)
    workers = len({m["pid"] for m in manifests})
    again = "unknown" if retried is None else str(retried)
    say(f"wrote {frames} frames of {plan.count} in {len(manifests)} of {len(todo)} chunks on {workers} worker "
        f"process(es) ({progress.rate() if progress else 0.0:.2f} frames/s); "
        f"chunks retried after a lost worker: {again}; "
        f"peak memory per worker {peak:.0f} MiB")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
