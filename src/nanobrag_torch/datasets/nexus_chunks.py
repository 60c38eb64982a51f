"""-nexus written by several processes: one data file per chunk of frames, and an NXmx master.

A distributed run (datasets.distributed) cannot append to one HDF5 file from many workers, so
each chunk of frames goes to its own file beside the master, written under a temporary name
and renamed when whole:

    series.nxs                    the NXmx master (as datasets.nexus writes it), whose
                                  /entry/data/data is a virtual dataset over the chunk files
    series_data_000001.h5 ...     /entry/data/data (frames, slow, fast), bitshuffle-LZ4, one
                                  frame a chunk; attributes: first_frame, the command, and the
                                  frames' records (angles, orientation, seeds) as JSON

HDF5 finds the chunk files relative to the master's folder, so the set can be moved together.
"""
from __future__ import annotations

import glob
import json
import os
import uuid

import h5py
import hdf5plugin
import numpy as np

from ..errors import InputFileError, UsageError
from .nexus import NexusFile, frame_record, write_record

DATA = "/entry/data/data"


def chunk_path(master: str, number: int) -> str:
    """The data file of chunk `number` (0-based) of the master file `master`."""
    stem = os.path.splitext(master)[0]
    return f"{stem}_data_{number + 1:06d}.h5"


def chunk_files(master: str) -> list:
    stem = os.path.splitext(master)[0]
    return sorted(glob.glob(glob.escape(stem) + "_data_" + "[0-9]" * 6 + ".h5"))


def stale_parts(master: str) -> list:
    """Temporary files of chunks whose writer was killed."""
    stem = os.path.splitext(master)[0]
    return glob.glob(glob.escape(stem) + "_data_" + "[0-9]" * 6 + ".h5.part-*")


def _jsonable(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


class ChunkFile:
    """The data file of one chunk (frames first .. first + count - 1), a sink for render_frames."""

    def __init__(self, master: str, number: int, first: int, count: int, command):
        self.path, self.first, self.count = chunk_path(master, number), first, count
        self.command = list(command)
        self.records, self.file, self.part = [], None, None

    def open(self, renderer, start: int) -> None:
        v = renderer.settings
        self.part = f"{self.path}.part-{uuid.uuid4().hex}"
        self.file = h5py.File(self.part, "w")
        shape = (self.count, v.spixels, v.fpixels)
        self.file.create_dataset(DATA, shape=shape, dtype=np.uint16 if v.calculate_noise else np.float32,
                                 chunks=(1, *shape[1:]), **hdf5plugin.Bitshuffle(nelems=0, cname="lz4"))

    def write(self, result) -> None:
        image = result.counts if result.counts is not None else result.photons
        self.file[DATA][result.frame.index - self.first] = image
        self.records.append({k: _jsonable(v) for k, v in frame_record(result).items()})

    def close(self, complete: bool) -> None:
        if self.file is None:
            return
        if complete:
            self.file.attrs.update({"first_frame": self.first, "command": json.dumps(self.command),
                                    "records": json.dumps(self.records)})
        self.file.close()
        self.file = None
        if complete:
            os.replace(self.part, self.path)  # atomic: a chunk file is whole or absent
        else:
            os.unlink(self.part)


def read_chunk(path: str, command) -> tuple:
    """(first frame, frame records) of a finished chunk file written by `command`."""
    try:
        with h5py.File(path, "r") as f:
            stored = json.loads(f.attrs["command"])
            first, records = int(f.attrs["first_frame"]), json.loads(f.attrs["records"])
    except (OSError, KeyError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot resume from it ({exc}); give -overwrite to start again") from None
    if stored != list(command):
        raise UsageError(f"{path}: written by a different command; cannot -resume it (give -overwrite)")
    return first, records


def write_master(master: NexusFile, renderer, chunks) -> None:
    """The NXmx master over finished chunk files: chunks = [(number, first frame, records)],
    covering every frame. Written under a temporary name, then renamed."""
    v = renderer.settings
    frame = (v.spixels, v.fpixels)
    dtype = np.uint16 if v.calculate_noise else np.float32
    layout = h5py.VirtualLayout(shape=(master.count, *frame), dtype=dtype)
    final = master.path
    master.path = f"{final}.part-{uuid.uuid4().hex}"
    try:
        master.open(renderer, 0)
        f = master.file
        units = dict(f[DATA].attrs)
        del f[DATA]
        for number, first, records in chunks:
            name = os.path.basename(chunk_path(final, number))
            layout[first:first + len(records)] = h5py.VirtualSource(name, DATA, shape=(len(records), *frame))
            for offset, record in enumerate(records):
                write_record(f, first + offset, record)
        f["/entry/data"].create_virtual_dataset("data", layout, fillvalue=0).attrs.update(units)
        master.close(True)
        os.replace(master.path, final)
    finally:
        if master.file is not None:
            master.close(False)
        if os.path.exists(master.path) and master.path != final:
            os.unlink(master.path)
        master.path = final
