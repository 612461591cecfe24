"""Room events as one client sees them: the ClientEvent format plus the ``unsigned``
data that depends on the room's history and on who is asking.

Spec: Client-Server API, "Room Events" (``ClientEvent``, ``UnsignedData``):

- ``prev_content`` / ``replaces_state`` (and ``prev_sender``) for state events: the
  state event this one replaced, if any;
- ``redacted_because``: the redaction that redacted this event;
- ``transaction_id``: only for the device that sent the event;
- ``membership``: the asking user's membership at the event (MSC4115), where the
  caller worked it out (``HistoryVisibility.memberships_at``): timeline events.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from homeserver.errors import NotFound
from homeserver.events.client_format import serialize_event
from homeserver.events.pdu import PDU
from homeserver.rooms.actor.actor import RoomActor


class ClientEventSerializer:
    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms

    async def serialize(self, actor: RoomActor, events: Sequence[PDU], *,
                        user_id: str | None = None, scope: str | None = None,
                        include_room_id: bool = True,
                        prev_content: bool = True,
                        memberships: Mapping[str, str] | None = None
                        ) -> list[dict[str, Any]]:
        """``events`` (all of ``actor``'s room) in client format, in the given order.

        ``user_id``/``scope`` name the asking device: its own sends get their
        ``transaction_id``. ``prev_content=False`` skips looking up the state each
        state event replaced (one state read per event: too dear for a whole room's
        state, and optional in the spec). ``memberships``: event ID →
        ``unsigned.membership``.
        """
        txn_ids: dict[str, str] = {}
        if user_id is not None and scope is not None:
            mine = [e for e in events if e.sender == user_id]
            if mine:
                txn_ids = await actor.transaction_ids(mine, user_id, scope)
        now = self._now_ms()
        out = []
        for event in events:
            extra = await self._unsigned_extras(actor, event, now, include_room_id,
                                                prev_content)
            serialized = serialize_event(event, now, txn_id=txn_ids.get(event.event_id),
                                         include_room_id=include_room_id, **extra)
            if memberships is not None and event.event_id in memberships:
                serialized.setdefault("unsigned", {})["membership"] = \
                    memberships[event.event_id]
            out.append(serialized)
        return out

    async def _unsigned_extras(self, actor: RoomActor, event: PDU, now: int,
                               include_room_id: bool, prev_content: bool
                               ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if prev_content and event.is_state():
            try:
                before = await actor.state_at(event.event_id, types=[event.state_pair])
            except NotFound:
                before = {}
            replaced = before.get(event.state_pair)
            if replaced is not None:
                extra.update(prev_content=replaced.content, prev_sender=replaced.sender,
                             replaces_state=replaced.event_id)
        redacted_by = event.internal_metadata.get("redacted_by")
        if redacted_by:
            redaction = await actor.get_event(redacted_by)
            if redaction is not None:
                extra["redacted_because"] = serialize_event(
                    redaction, now, include_room_id=include_room_id)
        return extra
