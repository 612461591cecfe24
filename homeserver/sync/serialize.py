"""Room events as /sync (and the WebSocket stream) show them to one device.

On top of ``homeserver.events.client_format.serialize_event`` this adds what needs
reads: ``unsigned.transaction_id`` for events the requesting device sent (spec:
"Transaction identifiers": only the sending device sees it), ``unsigned.prev_content``
/ ``replaces_state`` for state events of the timeline, ``unsigned.redacted_because``,
``unsigned.membership`` for timeline events (MSC4115), and the filter's ``event_format`` / ``event_fields``. Sync events carry no ``room_id``
(spec: ``ClientEventWithoutRoomID``).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from homeserver.errors import NotFound
from homeserver.events.client_format import serialize_event
from homeserver.events.pdu import PDU
from homeserver.sync.filters import SyncFilter, apply_event_fields


class EventSerializer:
    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms

    async def serialize(self, actor: Any, events: Sequence[PDU], *, user_id: str,
                        scope: str | None, sync_filter: SyncFilter,
                        with_prev_content: bool = False,
                        include_room_id: bool = False,
                        memberships: Mapping[str, str] | None = None
                        ) -> list[dict[str, Any]]:
        """Serialize ``events`` of one room for ``user_id``'s device ``scope``;
        ``memberships``: event ID → ``unsigned.membership`` (MSC4115)."""
        if not events:
            return []
        if sync_filter.event_format == "federation":
            return [dict(e.get_dict()) for e in events]
        now = self._now_ms()
        own = [e for e in events if e.sender == user_id]
        txn_ids = await actor.transaction_ids(own, user_id, scope) \
            if own and scope is not None else {}
        result = []
        for pdu in events:
            prev = await _previous_state(actor, pdu) if with_prev_content else None
            because = await _redacted_because(actor, pdu, now)
            event = serialize_event(
                pdu, now, txn_id=txn_ids.get(pdu.event_id),
                prev_content=prev.content if prev is not None else None,
                prev_sender=prev.sender if prev is not None else None,
                replaces_state=prev.event_id if prev is not None else None,
                redacted_because=because, include_room_id=include_room_id)
            if memberships is not None and pdu.event_id in memberships:
                event.setdefault("unsigned", {})["membership"] = memberships[pdu.event_id]
            if sync_filter.event_fields is not None:
                event = apply_event_fields(event, sync_filter.event_fields)
            result.append(event)
        return result


async def _previous_state(actor: Any, pdu: PDU) -> PDU | None:
    """The state event ``pdu`` replaced, for ``unsigned.prev_content``."""
    if not pdu.is_state():
        return None
    try:
        before = await actor.state_at(pdu.event_id, types=[pdu.state_pair])
    except NotFound:
        return None
    return before.get(pdu.state_pair)


async def _redacted_because(actor: Any, pdu: PDU, now: int) -> dict[str, Any] | None:
    redaction_id = pdu.internal_metadata.get("redacted_by")
    if not redaction_id:
        return None
    redaction = await actor.get_event(redaction_id)
    if redaction is None:
        return None
    return serialize_event(redaction, now, include_room_id=False)
