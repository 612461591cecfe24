"""Fault injection for crash tests, off unless an environment variable asks for it.

``ROOMSERVER_CRASH_BEFORE_ANNOUNCE=<event type>``: the process dies (``os._exit``) when
a room is about to announce an event of that type to the global room stream, i.e. after
the room database committed it and before the room stream heard of it — the window the
outbox recovery exists for (DESIGN.md §4 "Two databases, one truth").
"""

from __future__ import annotations

import os
from typing import Sequence

from homeserver.rooms.actor.protocols import Announcement, RoomStreamWriter

CRASH_ENV = "ROOMSERVER_CRASH_BEFORE_ANNOUNCE"


class CrashBeforeAnnounce:
    """A RoomStreamWriter that kills the process before announcing ``event_type``."""

    def __init__(self, inner: RoomStreamWriter, event_type: str) -> None:
        self._inner = inner
        self._event_type = event_type

    async def announce(self, announcements: Sequence[Announcement]) -> list[int]:
        if any(a.type == self._event_type for a in announcements):
            os._exit(70)  # no cleanup, no flush: as abrupt as a power cut for this process
        return await self._inner.announce(announcements)

    async def register_room(self, room_id: str, room_version: str, creator: str,
                            is_public: bool = False) -> None:
        await self._inner.register_room(room_id, room_version, creator, is_public)

    def room_hibernated(self, room_id: str) -> None:
        self._inner.room_hibernated(room_id)


def stream_writer_from_env(inner: RoomStreamWriter) -> RoomStreamWriter:
    event_type = os.environ.get(CRASH_ENV)
    return CrashBeforeAnnounce(inner, event_type) if event_type else inner
