"""The recent end of the room stream, per room, in memory: what an incremental /sync
asks of ``room_stream`` without a database round trip.

Every /sync asks two things of the room stream for the rooms of its user: which rooms
changed in ``(since, upto]`` (and their room-seq range), and where each room stood at
a position (its last entry at or before it). A long-poll woken by a new message asks
them again for every receiver, and each was a trip through the database thread pool.

This index records each entry :class:`homeserver.store.streams.Streams` announces, on
the reactor thread, once its transaction committed and before the new position is
published or any announcer of the same group commit resumes (``Database.run_batched``'s
``on_commit``), so no sync can read a position whose entry is not yet in it. (Recording
it when each announcer resumed was not enough: the first to resume wakes long-polls,
which took the batch's position while the other rooms of the batch were still
unrecorded, and skipped their events for good; issue #12.) It answers only what it is
sure of:

- ``floor``: the room stream position when this process started. Every entry above it
  was announced by this process and recorded, so a room with no record here has no
  entry above ``floor``.
- per room, its last ``keep`` entries and that room's own floor: every entry of the
  room above it is held. At most ``max_rooms`` rooms are held, and a room that
  hibernates is let go (:meth:`forget`: nothing recent happened in it, and its
  memory is what hibernating gives back); dropping the one least recently announced
  in raises the floor of rooms not held to its newest entry.

Anything else (an older ``since``, a room that had entries before ``floor``) is a
miss, answered by the database. A room whose announcement failed half way (the
transaction may or may not have committed) is marked unsure and always read from the
database. Like the other in-process caches this assumes one process writes the room
stream (a deployment with several will need the entries over Redis, DESIGN.md §8).
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
from typing import Iterable

from homeserver.rooms.actor.memory import compact

#: the answer to a question this index cannot answer from memory
MISS = object()

#: entries kept per room: a sync whose ``since`` is older than the oldest of them
#: reads the database
KEEP = 8
#: rooms held; beyond it the room least recently announced in is dropped
MAX_ROOMS = 20_000


@dataclasses.dataclass(frozen=True)
class RoomChange:
    """A room's entries within a range of the stream."""
    room_id: str
    last_pos: int
    min_room_seq: int
    max_room_seq: int
    count: int


class _Room:
    __slots__ = ("floor", "pos", "seq", "ids")

    def __init__(self, floor: int) -> None:
        self.floor = floor           # every entry of the room with pos > floor is held
        self.pos: list[int] = []
        self.seq: list[int] = []
        self.ids: list[str] = []


class RoomStreamTail:
    def __init__(self, keep: int = KEEP, max_rooms: int = MAX_ROOMS) -> None:
        self._keep = keep
        self._max_rooms = max_rooms
        self._rooms: collections.OrderedDict[str, _Room] = collections.OrderedDict()
        self._unsure: set[str] = set()
        #: None until :meth:`set_floor`: everything is a miss before then
        self.floor: int | None = None
        #: the newest entry of any room dropped for room: a room not held is only
        #: known to have no entry above this and ``floor``
        self._dropped_upto = 0

    def compact(self) -> None:
        """Shrink the per-room maps to what they hold now (a memory releaser)."""
        compact(self._rooms, self._unsure)

    def _absent_floor(self) -> int | None:
        """A room not held has no entry above this (None: unknown)."""
        return None if self.floor is None else max(self.floor, self._dropped_upto)

    def set_floor(self, pos: int) -> None:
        """The room stream position read at start, before this process announced."""
        if self.floor is None:
            self.floor = pos

    # -- writing ----------------------------------------------------------------------
    def record(self, room_id: str, pos: int, room_seq: int, event_id: str) -> None:
        """An entry just committed (in the room's seq order, by its single actor)."""
        if room_id in self._unsure:
            return
        room = self._rooms.get(room_id)
        if room is None:
            # nothing held yet: the room has no entry between floor and this one
            absent = self._absent_floor()
            floor = pos - 1 if absent is None else min(pos - 1, absent)
            room = self._rooms[room_id] = _Room(floor)
            if len(self._rooms) > self._max_rooms:
                self._drop(self._rooms.popitem(last=False)[1])
        elif room.pos and pos <= room.pos[-1]:
            return  # a replayed announcement keeps its old position
        else:
            self._rooms.move_to_end(room_id)
        room.pos.append(pos)
        room.seq.append(room_seq)
        room.ids.append(event_id)
        if len(room.pos) > self._keep:
            cut = len(room.pos) - self._keep
            room.floor = room.pos[cut - 1]
            del room.pos[:cut], room.seq[:cut], room.ids[:cut]

    def forget(self, room_id: str) -> None:
        """Hold nothing of this room any more (it hibernated); a room not held is
        known to have no entry above the newest one dropped."""
        room = self._rooms.pop(room_id, None)
        if room is not None:
            self._drop(room)

    def _drop(self, room: _Room) -> None:
        if room.pos:
            self._dropped_upto = max(self._dropped_upto, room.pos[-1])

    def mark_unsure(self, room_ids: Iterable[str]) -> None:
        """These rooms' entries may be in the database but not here."""
        for room_id in room_ids:
            self._unsure.add(room_id)
            self._rooms.pop(room_id, None)

    def learn_point(self, room_id: str, at: int, point: tuple[int, int, str] | None
                    ) -> None:
        """The database said ``point`` (pos, room_seq, event_id) is the room's last
        entry at or before ``at``; if ``at`` is above ``floor`` and nothing was recorded
        for the room since, that is its last entry of all: hold it."""
        absent = self._absent_floor()
        if point is None or absent is None or at < absent \
                or room_id in self._rooms or room_id in self._unsure:
            return
        self.record(room_id, *point)

    # -- reading ----------------------------------------------------------------------
    def _sure(self, room_id: str) -> bool:
        return self.floor is not None and room_id not in self._unsure

    def changes(self, room_id: str, since: int, upto: int) -> RoomChange | None | object:
        """The room's entries in ``(since, upto]`` summed up, None if it has none, or
        :data:`MISS`."""
        if not self._sure(room_id):
            return MISS
        room = self._rooms.get(room_id)
        if room is None:
            return None if since >= self._absent_floor() else MISS
        if since < room.floor:
            return MISS
        lo = bisect.bisect_right(room.pos, since)
        hi = bisect.bisect_right(room.pos, upto)
        if lo >= hi:
            return None
        return RoomChange(room_id, room.pos[hi - 1], room.seq[lo], room.seq[hi - 1], hi - lo)

    def point(self, room_id: str, at: int) -> tuple[int, int, str] | object:
        """(pos, room_seq, event_id) of the room's last entry at or before ``at``, or
        :data:`MISS` (also when the room has none held: its last may be older)."""
        if not self._sure(room_id):
            return MISS
        room = self._rooms.get(room_id)
        if room is None:
            return MISS
        i = bisect.bisect_right(room.pos, at)
        if i == 0:
            return MISS
        return room.pos[i - 1], room.seq[i - 1], room.ids[i - 1]
