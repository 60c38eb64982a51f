"""The Dask side of a distributed dataset: a cluster to run on, and its chunk tasks as futures.

cluster_client() gives a Client on a LocalCluster of -workers N processes bound to 127.0.0.1 (one
Dask thread each, so one chunk at a time per process, rendered with the process's share of the
cores) or on the -scheduler ADDRESS; run_chunks() submits one task per chunk and collects the
manifests as they finish, driving the progress bar.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from ..cnum import atoi
from ..errors import NanoBraggError, UsageError

CONNECT_TIMEOUT_S = 30


class SchedulerLost(NanoBraggError):
    """The scheduler went away mid-run (finished chunks are kept; -resume finishes the run)."""
    exit_code = 1


class ChunkFailed(NanoBraggError):
    exit_code = 1


@contextmanager
def cluster_client(opts, job, say):
    from distributed import Client, LocalCluster

    cluster = None
    quiet = _Quiet("distributed")  # Dask logs a lost scheduler or worker as tracebacks; we report it
    if "scheduler" in opts:
        address = opts["scheduler"][0]
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"option -scheduler: no Dask scheduler answers at {address} ({exc})") from None
    else:
        cluster = LocalCluster(n_workers=atoi(opts["workers"][0]), threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0",
                               silence_logs=logging.ERROR, env={"OMP_NUM_THREADS": str(job.nthreads)})
        client = Client(cluster, set_as_default=False)
    try:
        describe(client, cluster, job, say)
        yield client
    finally:
        client.close(timeout=CONNECT_TIMEOUT_S)
        if cluster is not None:
            cluster.close(timeout=CONNECT_TIMEOUT_S)
        quiet.restore()


class _Quiet:
    """A logger silenced for the run's duration (restored after)."""

    def __init__(self, name):
        self.logger = logging.getLogger(name)
        self.level = self.logger.level
        self.logger.setLevel(logging.CRITICAL + 1)

    def restore(self) -> None:
        self.logger.setLevel(self.level)


def describe(client, cluster, job, say) -> None:
    """The cluster in two lines: its workers (with their pids) and the dashboard's address."""
    pids = client.run(os.getpid)
    where = "on this machine" if cluster is not None else f"at {client.scheduler.address}"
    threads = job.nthreads or "auto"
    say(f"Dask: {len(pids)} worker process(es) {where}, torch threads per worker {threads}; "
        f"worker pids {' '.join(str(p) for p in sorted(pids.values()))}")
    try:
        import bokeh  # noqa: F401  (the dashboard needs it)
        say(f"Dask dashboard: {client.dashboard_link}")
    except ImportError:
        say(f"Dask dashboard: {client.dashboard_link} (serves pages once bokeh is installed: pip install bokeh)")


def run_chunks(client, job, chunks, manifests, show_progress=True) -> tuple:
    """Render `chunks` ([(number, first, end)]) as tasks; manifests are appended as they finish.

    Returns (how many chunks were retried because their worker was lost, None if the scheduler
    would not say; the SeriesProgress, for its frame rate)."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError

    from .distributed import render_chunk
    from .progress import SeriesProgress

    progress = SeriesProgress(sum(b - a for _, a, b in chunks), enabled=show_progress)
    futures = [client.submit(render_chunk, job, n, a, b, key=f"nanobrag-{job.token}-{n:06d}", pure=False)
               for n, a, b in chunks]
    retried, frames = 0, 0
    try:
        for future in as_completed(futures, loop=client.loop):
            manifest = _result(future, client)
            retried = _add(retried, _retries(client, future.key))
            future.release()
            manifests.append(manifest)
            frames += manifest["end"] - manifest["first"]
            progress.frame_done(frames)
    except (FutureCancelledError, OSError) as exc:
        raise SchedulerLost(f"lost the Dask scheduler mid-run ({type(exc).__name__}); the {len(manifests)} chunks "
                            "reported finished and any others its workers finish are kept; run the same command "
                            "with -resume to finish") from None
    return retried, progress


def _result(future, client):
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        raise ChunkFailed(f"chunk {future.key} killed every worker that rendered it "
                          "(out of memory? see the worker logs)") from None
    except NanoBraggError as exc:
        raise type(exc)(str(exc)) from None


def _retries(client, key):
    """How many times the scheduler restarted this task after losing the worker running it."""
    def suspicious(dask_scheduler=None, key=key):
        ts = dask_scheduler.tasks.get(key)
        return None if ts is None else ts.suspicious

    try:
        return client.run_on_scheduler(suspicious)
    except Exception:  # noqa: BLE001  (an old or locked-down scheduler: the count is unknown, the run is not)
        return None


def _add(total, count):
    return None if total is None or count is None else total + count
