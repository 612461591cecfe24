"""Give the pages of CPython's empty allocator pools back to the OS.

CPython's small-object allocator (pymalloc) carves 1 MiB arenas into 16 KiB pools and
returns an arena to the OS only once every pool in it is empty. A burst of awake rooms
makes arenas that, after the rooms hibernate, are mostly empty pools pinned by a few
long-lived objects made during the burst (cache entries, timers, strings; README,
"Where idle-room memory goes"): after 2,000 rooms and an idle minute ~300–400 empty
pools (5–7 MB) stayed resident. ``malloc_trim`` cannot reach them (they are not
glibc's), and no CPython API releases part of an arena.

:func:`release_free_pools` does, for the empty pools only: for each one it marks the
pool's size class as unknown in its header (so that pymalloc, when it reuses the pool,
initialises it afresh instead of following the old free list, which lived in the pages
given back) and ``madvise(MADV_DONTNEED)``\\ s the pool's last three pages (the first,
holding the header and the arena's list of empty pools, stays). The header layout is
CPython's private ``struct pool_header`` (3.11, 3.12); a self-test on objects of known
size checks it before anything is written, and on anything else (other versions,
``PYTHONMALLOC``, debug hooks, another OS) the function does nothing.

Safety rests on three points:

* only pools whose header passes a strict check (size class, offsets, the arena index
  of a pool that holds a live object) and whose count of used blocks is 0 are touched;
* the check and the write of each pool run in one C-level iterator pipeline (no
  Python bytecode in between, so no other thread takes the GIL and no signal handler
  or finaliser runs; the collector is off), and a reserve of free blocks of every size
  class is made first, so that the pipeline's own temporary objects never need a new
  pool (a pool is taken from an arena's empty ones only then);
* the ``madvise`` of each pool runs in a second such pipeline that checks again that
  the pool is empty and still marked, right before the call.

A pool reused after this starts with zero-filled pages, which pymalloc does not mind.
"""

from __future__ import annotations

import array
import bisect
import collections
import ctypes
import ctypes.util
import gc
import itertools
import operator
import os
import sys
from typing import Callable

POOL_SIZE = 16 * 1024
ARENA_SIZE = 1024 * 1024
PAGE = 4096
_ALIGNMENT = 16
_CLASSES = 512 // _ALIGNMENT
#: ``DUMMY_SIZE_IDX`` in Objects/obmalloc.c: "no size class yet, initialise on use"
_DUMMY = 0xFFFF
_MADV_DONTNEED = 4
#: struct pool_header, in uint32 words: ref.count, then (after three pointers)
#: arenaindex, szidx, nextoffset, maxnextoffset
_COUNT, _ARENAINDEX, _SZIDX, _NEXTOFFSET, _MAXNEXTOFFSET = 0, 8, 9, 10, 11
_OVERHEAD = 48
#: free blocks kept per size class while pools are released (the pipelines' own
#: temporaries need a handful at most)
_RESERVE = 16


def _header_ok(words: memoryview, i: int) -> bool:
    """Whether the uint32 words at ``i`` look like a pool header pymalloc wrote."""
    szidx = words[i + _SZIDX]
    if szidx >= _CLASSES:
        return False
    size = (szidx + 1) * _ALIGNMENT
    nextoffset, maxnext = words[i + _NEXTOFFSET], words[i + _MAXNEXTOFFSET]
    if maxnext != POOL_SIZE - size or not _OVERHEAD < nextoffset <= maxnext + size \
            or (nextoffset - _OVERHEAD) % size:
        return False
    return words[i + _COUNT] <= (nextoffset - _OVERHEAD) // size \
        and words[i + _COUNT + 1] == 0   # the union's other half (a pointer's)


def _anon_rw_mappings() -> list[tuple[int, int]]:
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if parts[1].startswith("rw") and len(parts) == 5:   # no path: anonymous
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                out.append((lo, hi))
    return out


#: one ctypes array type for every view (ctypes keeps each array type it makes, one
#: per length, for good); a view never spans more than two arenas
_SPAN = ctypes.c_char * (2 * ARENA_SIZE)


def _view(lo: int, hi: int) -> memoryview:
    """The memory at [lo, hi) as uint32 words (nothing is read until indexed)."""
    return memoryview(_SPAN.from_address(lo)).cast("B")[:hi - lo].cast("I")


def _self_test() -> bool:
    """Objects of every size class sit in pools whose header names that class."""
    maps = _anon_rw_mappings()
    objs = [bytes((k + 1) * _ALIGNMENT - sys.getsizeof(b"")) for k in range(2, _CLASSES)]
    for obj in objs:
        cls = (sys.getsizeof(obj) - 1) // _ALIGNMENT
        pool = id(obj) & ~(POOL_SIZE - 1)
        span = next(((lo, hi) for lo, hi in maps if lo <= pool < hi), None)
        if span is None:
            return False
        words = _view(pool, pool + _OVERHEAD)
        if words[_SZIDX] != cls or not _header_ok(words, 0) or words[_COUNT] < 1:
            return False
    return True


def _supported() -> bool:
    return (sys.implementation.name == "cpython" and sys.version_info[:2] in ((3, 11), (3, 12))
            and sys.platform.startswith("linux") and not hasattr(sys, "gettotalrefcount")
            and os.environ.get("PYTHONMALLOC", "pymalloc") == "pymalloc"
            and not sys.flags.dev_mode and ctypes.sizeof(ctypes.c_void_p) == 8)


def _reserve() -> list:
    """Objects holding ``_RESERVE`` free blocks open in every size class's pools."""
    keep = []
    for k in range(_CLASSES):
        if k == 0:
            make: Callable[[], object] = object
        elif k == 1:
            make = lambda: float(len(keep)) + 0.5   # noqa: E731  a new float each
        else:
            n = (k + 1) * _ALIGNMENT - sys.getsizeof(b"")
            make = lambda n=n: bytes(n)              # noqa: E731
        made = [make() for _ in range(2 * _RESERVE)]
        keep += made[::2]   # the others are freed: free blocks in pools kept in use
    return keep


class FreePools:
    """Releases the pages of empty pymalloc pools (:func:`release_free_pools`)."""

    def __init__(self) -> None:
        self.enabled = _supported()
        libc = ctypes.util.find_library("c") if self.enabled else None
        # PyDLL: the call keeps the GIL (no other thread runs between check and call)
        self._madvise = ctypes.PyDLL(libc).madvise if libc else None
        if self._madvise is None:
            self.enabled = False
        else:
            self._madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            self._madvise.restype = ctypes.c_int
        self._tested = False
        #: the anonymous mappings (their hash) and the arenas found in them at the
        #: last call, as (mapping, arenaindex, a pool) triples: two objects, not
        #: hundreds (made during a burst, each would keep a pool of it in use)
        self._maps_hash = 0
        self._arenas = array.array("Q")

    def release(self) -> int:
        """Release the empty pools' pages; the number of pools released."""
        if not self.enabled:
            return 0
        if not self._tested:
            self._tested = True
            if not _self_test():
                self.enabled = False
                return 0
        was_enabled = gc.isenabled()
        gc.disable()   # no collection (and no finaliser) inside the pipelines
        try:
            return sum(self._apply(*arena) for arena in self._empty_pools())
        finally:
            if was_enabled:
                gc.enable()

    def _empty_pools(self) -> list[tuple[memoryview, int, list[int]]]:
        """Per arena: a view of it, its address and the word offsets of its empty
        pools not yet released."""
        maps = sorted(_anon_rw_mappings())
        maps_hash = hash(tuple(maps))
        found = self._arenas if maps_hash == self._maps_hash else None
        if found is not None:
            for k in range(0, len(found), 3):
                words = _view(found[k + 2], found[k + 2] + _OVERHEAD)
                if not (_header_ok(words, 0) and words[_COUNT]
                        and words[_ARENAINDEX] == found[k + 1]):
                    found = None        # that pool emptied: look for arenas again
                    break
        if found is None:
            found = array.array("Q")
            for (m, index), known in self._find_arenas(maps).items():
                found.extend((m, index, known))
            self._arenas, self._maps_hash = found, maps_hash
        out = []
        per_pool = POOL_SIZE // 4
        for k in range(0, len(found), 3):
            m, index, known = found[k], found[k + 1], found[k + 2]
            lo, hi = maps[m]
            start = max(known - ARENA_SIZE + POOL_SIZE, -(-lo // POOL_SIZE) * POOL_SIZE)
            end = min(hi, known + ARENA_SIZE)
            words = _view(start, start + (end - start) // POOL_SIZE * POOL_SIZE)
            seen, pools = [], []
            for i in range(0, len(words), per_pool):
                if words[i + _ARENAINDEX] == index and (
                        words[i + _SZIDX] == _DUMMY or _header_ok(words, i)):
                    seen.append(i)
                    if words[i + _COUNT] == 0 and words[i + _SZIDX] != _DUMMY:
                        pools.append(i)
            # an arena is 1 MiB: pools naming this index further apart are not all its
            if pools and seen[-1] - seen[0] < ARENA_SIZE // 4:
                out.append((words, start, pools))
        return out

    @staticmethod
    def _find_arenas(maps: list[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """(mapping, arenaindex) → a pool of that arena holding a live object: the
        arenas of the pools under every object the collector tracks (the whole list
        of objects is read: ~10 ms; redone only when the mappings changed)."""
        starts = [lo for lo, _ in maps]
        arenas: dict[tuple[int, int], int] = {}
        for pool in sorted({id(obj) & ~(POOL_SIZE - 1) for obj in gc.get_objects()}):
            m = bisect.bisect_right(starts, pool) - 1
            if m < 0 or pool + POOL_SIZE > maps[m][1]:
                continue
            words = _view(pool, pool + _OVERHEAD)
            if _header_ok(words, 0) and words[_COUNT]:
                arenas.setdefault((m, words[_ARENAINDEX]), pool)
        return arenas

    def _apply(self, words: memoryview, start: int, pools: list[int]) -> int:
        counts = [i + _COUNT for i in pools]
        szidx = [i + _SZIDX for i in pools]
        args = [(start + i * 4 + PAGE, POOL_SIZE - PAGE, _MADV_DONTNEED) for i in pools]
        get = words.__getitem__
        reserve = _reserve()
        # 1: mark each still-empty pool "initialise on reuse"; the check and the write
        # run with no bytecode in between
        collections.deque(map(words.__setitem__,
                              itertools.compress(szidx, map(operator.not_, map(get, counts))),
                              itertools.repeat(_DUMMY)), maxlen=0)
        # 2: give back pages 2-4 of each pool still empty and marked, checked right
        # before its call
        empty_and_marked = map(operator.not_, map(
            operator.or_, map(get, counts),
            map(operator.xor, map(get, szidx), itertools.repeat(_DUMMY))))
        released = sum(map(operator.not_, itertools.starmap(
            self._madvise, itertools.compress(args, empty_and_marked))))
        del reserve
        return released
