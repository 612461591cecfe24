"""The narrow collaborators a room actor is given (DESIGN.md §3-4).

The room layer depends on these Protocols only; the composition root passes the
GlobalStore's room-stream part and the Notifier that implement them.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

from homeserver.events.pdu import PDU


@dataclasses.dataclass(frozen=True)
class Announcement:
    """One persisted room event, as the room stream and memberships index need it."""

    room_id: str
    room_seq: int          # the event's local arrival order in its room DB
    event_id: str
    type: str
    state_key: str | None
    sender: str
    #: for m.room.member state events: the new membership of ``state_key``
    membership: str | None = None
    #: other memberships of current state this event changed (by state resolution):
    #: ``(user_id, membership, member event_id)``, indexed after its own
    member_changes: tuple[tuple[str, str, str], ...] = ()


class RoomStreamWriter(Protocol):
    """The global room stream (outbox target) and the memberships index."""

    async def announce(self, announcements: Sequence[Announcement]) -> list[int]:
        """Append to the room stream in one transaction, returning each stream position.

        Membership announcements (and ``member_changes``) also update the memberships
        index (user → rooms) in the same transaction. Idempotent per (room_id, room_seq): announcing a seq already
        in the stream returns its existing position and adds nothing (so replay after a
        crash can never duplicate).
        """

    async def register_room(self, room_id: str, room_version: str, creator: str,
                            is_public: bool = False) -> None:
        """Add the room to the global rooms index (idempotent)."""

    def room_hibernated(self, room_id: str) -> None:
        """The room went to sleep: nothing recent of it need stay in memory."""


class RoomListener(Protocol):
    """Told about each event after it is durable and announced (wakes /sync)."""

    def on_room_event(self, event: PDU, stream_pos: int) -> None: ...
