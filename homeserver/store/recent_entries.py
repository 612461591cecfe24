"""The newest room stream entries, in memory, for readers that follow the whole stream
(the federation sender, ``federation/destinations.py``).

Every entry this process announces is recorded here by ``Streams.announce`` in the
callback that runs once its group commit is durable, before the stream advance is
published; so a reader woken by that advance finds the entries without a trip to the
global DB (one per event before: as many as the announcements themselves, queued on
SQLite's single DB thread ahead of the next group commit).

Only a contiguous run ``(floor, upto]`` is held, and only while ``upto`` is the
stream's head: a gap (a position this process did not see committed, e.g. an
announcement that failed after it may have committed) or a read outside the run is a
miss, and the caller reads the database as before. Nothing is ever answered from
memory that the database would answer differently.
"""

from __future__ import annotations

import collections
from typing import Any, Deque, Sequence

#: entries kept: a reader further behind than this reads the database
KEEP = 4_096


class RecentEntries:
    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._entries: Deque[Any] = collections.deque()
        #: entries at positions in (floor, upto] are all held; None: nothing held
        self._floor: int | None = None
        self._upto = 0

    def record(self, entries: Sequence[Any]) -> None:
        """Entries (with ``.pos``) just committed, in position order. Positions at or
        below the newest held are replays of old entries and change nothing."""
        for entry in entries:
            if self._floor is not None and entry.pos <= self._upto:
                continue
            if self._floor is None or entry.pos != self._upto + 1:
                self._entries.clear()          # a gap: start a new run here
                self._floor = entry.pos - 1
            self._entries.append(entry)
            self._upto = entry.pos
            if len(self._entries) > self._keep:
                self._floor = self._entries.popleft().pos

    def forget(self) -> None:
        """An announcement failed and may have committed all the same: the head is
        unknown until the next recorded entry starts a new run."""
        self._entries.clear()
        self._floor = None

    def release(self) -> None:
        """The server is at rest (every room asleep): let the entries go. Each was made
        during the activity that preceded, among the objects of the rooms awake then,
        and would keep their allocator pools resident (``rooms/actor/memory.py``); a
        reader still behind reads the database, and the next entry starts a new run."""
        self.forget()

    def read(self, since: int, upto: int | None, limit: int) -> list[Any] | None:
        """Entries at positions in ``(since, upto]`` (``upto`` None: the head), oldest
        first, at most ``limit``; None if they are not all held."""
        if self._floor is None or since < self._floor:
            return None
        end = self._upto if upto is None else upto
        if end > self._upto:
            return None
        start = since - self._floor            # index of the entry at since + 1
        stop = min(end - self._floor, start + max(limit, 0))
        return [self._entries[i] for i in range(start, max(start, stop))]
