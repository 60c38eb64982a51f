"""A process-wide setting changed for one block and restored after it, even on an error.

A library must not leave its host program's settings changed (torch's thread count, the working
folder); every temporary change goes through `scoped`."""
import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def scoped(get: Callable[[], Any], put: Callable[[Any], Any], value: Any) -> Iterator[None]:
    """put(value) for the block, then put(the value get() gave before it); value None: no change."""
    if value is None:
        yield
        return
    before = get()
    put(value)
    try:
        yield
    finally:
        put(before)
