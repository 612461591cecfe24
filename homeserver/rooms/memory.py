"""Give the memory of hibernated rooms back to the operating system.

A hibernated room's objects are freed, but CPython and glibc keep freed memory in
their pools, so the process's RSS would stay at its high-water mark and an idle
room would go on costing what an awake one does. A short while after rooms close
(once per ``delay``, however many close), a full collection runs and glibc's
``malloc_trim`` returns free heap pages. Measured with ``make bench`` ("rooms at
rest"): see the README's Performance section.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


def _malloc_trim() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


class MemoryReturner:
    def __init__(self, clock: IReactorTime, delay: float = 5.0) -> None:
        self._clock = clock
        self._delay = delay
        self._pending: IDelayedCall | None = None
        self._trim = _malloc_trim()

    def rooms_closed(self) -> None:
        """Some rooms hibernated: return memory soon (debounced)."""
        if self._pending is None or not self._pending.active():
            self._pending = self._clock.callLater(self._delay, self._return_memory)

    def _return_memory(self) -> None:
        self._pending = None
        gc.collect()
        if self._trim is not None:
            self._trim()

    def cancel(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
