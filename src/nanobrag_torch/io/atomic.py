"""Write output files so that they never destroy what they replace.

- A regular file (or a new name) is written under a temporary name in its folder and renamed into
  place when complete: a failed or interrupted run never leaves a partial file. An existing file
  keeps its permission bits (a read-only file stays read-only; a file we may not write is refused).
- A symbolic link is followed: its final target is replaced the same way, in the target's folder,
  and the link itself stays a link.
- A device, FIFO or socket is written directly (renaming over it would replace the device with a
  regular file, and a FIFO's reader would never see the bytes).
- A folder is refused with a clear error.
"""
import os
import stat
import tempfile
from contextlib import contextmanager

from ..errors import InputFileError


def _fail(path, why):
    return InputFileError(f"{os.fspath(path)}: cannot write ({why})")


def resolve_target(path):
    """(final path to write, its stat result or None if it does not exist yet).

    Follows symbolic links (a dangling link names the file it would create)."""
    path = os.fspath(path)
    real = os.path.realpath(path)
    try:
        return real, os.stat(real)
    except FileNotFoundError:
        return real, None
    except OSError as exc:
        raise _fail(path, exc.strerror or exc) from None


def check_writable(path):
    """Raise InputFileError now if `path` cannot be written by atomic_open (no file is touched)."""
    target, st = resolve_target(path)
    folder = os.path.dirname(target) or "."
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise _fail(path, "it is a folder")
    if st is not None and not stat.S_ISREG(st.st_mode):
        if not os.access(target, os.W_OK):
            raise _fail(path, "permission denied")
        return
    if not os.path.isdir(folder):
        raise InputFileError(f"{os.fspath(path)}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _fail(path, f"no permission to create files in {folder}")
    if st is not None and not os.access(target, os.W_OK):
        raise _fail(path, "the file is read-only")


@contextmanager
def atomic_open(path, mode="wb"):
    """Yield a file object that replaces `path` safely when the block completes (see module doc)."""
    check_writable(path)
    target, st = resolve_target(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        with _open_direct(path, target, mode) as handle:
            yield handle
        return
    folder = os.path.dirname(target) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".part", dir=folder)
    except OSError as exc:
        raise _fail(path, exc.strerror or exc) from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _fail(path, exc.strerror or exc) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def _open_direct(path, target, mode):
    """A device or FIFO: written in place (opening a FIFO waits for its reader, as any writer does)."""
    try:
        fd = os.open(target, os.O_WRONLY)
    except OSError as exc:
        raise _fail(path, exc.strerror or exc) from None
    with os.fdopen(fd, mode) as handle:
        yield handle


def atomic_write_bytes(path, data):
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
