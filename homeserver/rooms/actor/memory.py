"""Bound what awake rooms hold in memory, and give hibernated rooms' memory back.

:class:`WarmRooms`: an awake room keeps caches (decoded events, interned state
strings, SQLite's page cache) that make its next request cheap, ~50 KB for a small
room. Only the ``limit`` most recently used awake rooms keep them; a room pushed out
sheds them and stays open, cold, until it is used again. Without the bound, a burst of
new rooms (all awake for ``idle_seconds``) fills CPython's allocator arenas with
short-lived cache entries, and the few long-lived objects allocated among them keep
those arenas, 1 MiB each, resident long after the rooms hibernate.

:class:`MemoryReturner`: give the memory of hibernated rooms back to the OS.

A hibernated room's objects are freed, but CPython and glibc keep freed memory in
their pools, so the process's RSS would stay at its high-water mark and an idle
room would go on costing what an awake one does. Once rooms have stopped closing for
``delay`` seconds (and at least every ``longest`` seconds while they go on closing),
a full collection runs, the pages of CPython's empty allocator pools are given back
(``rooms.actor.free_pools``: the burst's arenas stay, pinned by a few long-lived
objects, but most of their pools are empty) and glibc's ``malloc_trim`` returns free
heap pages. The
registry reports a close when the room's file is really closed (in the closer
thread), so the trim comes after the memory was freed, not before: with a fixed
delay from the first close of a burst, the last trim could run before the last
rooms had closed, and 7 MB of free heap then stayed resident until the next burst.
Measured with ``make bench`` ("rooms at rest"): see the README's Performance section.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import gc
from typing import Any, Callable, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from homeserver.rooms.actor.free_pools import FreePools


class Sheddable(Protocol):
    room_id: str

    def shed_caches(self) -> None: ...


class WarmRooms:
    """The ``limit`` most recently used awake rooms, which keep their caches."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._rooms: collections.OrderedDict[str, Sheddable] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._rooms)

    def __contains__(self, room: Sheddable) -> bool:
        return self._rooms.get(room.room_id) is room

    def touch(self, room: Sheddable) -> None:
        """``room`` is being used: warm now; the least recently used beyond the limit
        shed their caches."""
        rooms = self._rooms
        if rooms.get(room.room_id) is room:
            rooms.move_to_end(room.room_id)
            return
        rooms[room.room_id] = room
        while len(rooms) > self._limit:
            _, cold = rooms.popitem(last=False)
            cold.shed_caches()

    def forget(self, room: Sheddable) -> None:
        """``room`` closed (its caches went with it)."""
        if self._rooms.get(room.room_id) is room:
            del self._rooms[room.room_id]

    def compact(self) -> None:
        compact(self._rooms)


def compact(*containers: Any) -> None:
    """Rebuild each dict or set in place at its present size. CPython never shrinks a
    dict's or set's table when entries go, so every per-room map of a component kept
    the size it reached at the peak of awake rooms (~70 KB each for 2,000 rooms, in
    the main heap) after they had all hibernated. For ``MemoryReturner`` releasers:
    called on the reactor thread, never while the container is being iterated."""
    for container in containers:
        if isinstance(container, dict):
            items = list(container.items())
            container.clear()
            container.update(items)
        else:
            members = list(container)
            container.clear()
            container.update(members)


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
    def __init__(self, clock: IReactorTime, delay: float = 1.0, longest: float = 5.0,
                 all_asleep: Callable[[], bool] = lambda: False,
                 free_pools: bool = True) -> None:
        """``all_asleep()``: whether no room is awake (the server is at rest);
        ``free_pools``: release empty allocator pools too (``free_pools.py``)."""
        self._clock = clock
        self._delay = delay
        self._longest = longest
        self._pending: IDelayedCall | None = None
        self._first = self._last = 0.0
        self._stopped = False
        self._trim = _malloc_trim()
        self._pools = FreePools()
        if not free_pools:
            self._pools.enabled = False
        self._all_asleep = all_asleep
        #: more memory to give back at the same moment (e.g. the global DB's page
        #: cache), with whether only when every room is asleep: called after the
        #: collection, before the pools and the trim
        self._releasers: list[tuple[Callable[[], object], bool]] = []

    def add_releaser(self, release: Callable[[], object], *,
                     when_all_asleep: bool = False) -> None:
        """Also call ``release()`` each time memory is given back (if it returns a
        Deferred, the heap is trimmed again when it fires); with
        ``when_all_asleep``, only when no room is awake any more: for caches of recent
        activity across rooms (the room stream's newest entries, the federation
        sender's), useless once everything is quiet, but whose entries, made during
        a burst of rooms, would each keep a pool of the burst resident."""
        self._releasers.append((release, when_all_asleep))

    def rooms_closed(self) -> None:
        """Some rooms' files closed: return memory once closes pause (debounced)."""
        if self._stopped:
            return
        self._last = self._clock.seconds()
        if self._pending is None:
            self._first = self._last
            self._pending = self._clock.callLater(self._delay, self._due)

    def _due(self) -> None:
        # one delayed call per batch, moved on here rather than on every close
        now = self._clock.seconds()
        wait = min(self._last + self._delay, self._first + self._longest) - now
        if wait > 0:
            self._pending = self._clock.callLater(wait, self._due)
            return
        self._pending = None
        all_asleep = self._all_asleep()
        for release, when_all_asleep in self._releasers:
            if all_asleep or not when_all_asleep:
                done = release()
                if isinstance(done, defer.Deferred) and self._trim is not None:
                    # freed in another thread (the global DB's): trim again then
                    done.addBoth(lambda _: None if self._stopped else self._trim())
        gc.collect()
        self._pools.release()
        if self._trim is not None:
            self._trim()

    def cancel(self) -> None:
        """Shutting down: no trim now or later."""
        self._stopped = True
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._pending = None
