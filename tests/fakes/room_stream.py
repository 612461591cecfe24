"""A fake global room stream and a recording RoomListener.

``FakeRoomStreamWriter`` keeps the contract of ``RoomStreamWriter`` that matters to the
room layer: announce is idempotent per (room_id, room_seq) and returns stream positions.
Tests can make announce wait on a Deferred (``hold``) or fail (``fail_with``) to put a
crash or a slow global DB exactly between a room commit and its announcement.
"""

from __future__ import annotations

from typing import Sequence

from twisted.internet import defer

from homeserver.events.pdu import PDU
from homeserver.rooms.actor.protocols import Announcement


class FakeRoomStreamWriter:
    def __init__(self) -> None:
        #: the stream, in position order (position = index + 1)
        self.stream: list[Announcement] = []
        self._positions: dict[tuple[str, int], int] = {}
        self.rooms: dict[str, tuple[str, str, bool]] = {}
        #: user → {room_id: membership}, kept in step like the real memberships index
        self.memberships: dict[str, dict[str, str]] = {}
        self.announce_calls = 0
        #: room IDs in the order they were said to hibernate
        self.hibernated: list[str] = []
        #: when set, announce waits for this Deferred before writing
        self.hold: defer.Deferred | None = None
        #: when set, announce raises this (a global DB outage)
        self.fail_with: Exception | None = None

    async def announce(self, announcements: Sequence[Announcement]) -> list[int]:
        self.announce_calls += 1
        if self.hold is not None:
            await self.hold
        if self.fail_with is not None:
            raise self.fail_with
        positions = []
        for item in announcements:
            key = (item.room_id, item.room_seq)
            if key not in self._positions:
                self.stream.append(item)
                self._positions[key] = len(self.stream)
                if item.membership is not None and item.state_key is not None:
                    self.memberships.setdefault(item.state_key, {})[item.room_id] = \
                        item.membership
                for user_id, membership, _ in item.member_changes:
                    self.memberships.setdefault(user_id, {})[item.room_id] = membership
            positions.append(self._positions[key])
        return positions

    async def register_room(self, room_id: str, room_version: str, creator: str,
                            is_public: bool = False) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.rooms.setdefault(room_id, (room_version, creator, is_public))

    def room_hibernated(self, room_id: str) -> None:
        self.hibernated.append(room_id)

    def seqs(self, room_id: str) -> list[int]:
        """The room seqs announced for ``room_id``, in stream order."""
        return [a.room_seq for a in self.stream if a.room_id == room_id]


class RecordingListener:
    def __init__(self) -> None:
        self.events: list[tuple[PDU, int]] = []

    def on_room_event(self, event: PDU, stream_pos: int) -> None:
        self.events.append((event, stream_pos))

    @property
    def event_ids(self) -> list[str]:
        return [event.event_id for event, _ in self.events]
