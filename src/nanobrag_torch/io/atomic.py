"""Write files under a temporary name and rename them into place when complete.

A failed or interrupted run therefore never leaves a partial file, and never clobbers an
existing one with half-written data.
"""
import os
import tempfile
from contextlib import contextmanager

from ..errors import InputFileError


@contextmanager
def atomic_open(path, mode="wb"):
    """Yield a file object for a temporary sibling of `path`; rename it to `path` on success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputFileError(f"{path}: output folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=folder)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot write ({exc.strerror})") from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise InputFileError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path, data):
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
