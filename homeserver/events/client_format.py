"""Events as clients see them (spec: Client-Server API, "Room Events" ClientEvent).

PDU → ``{content, event_id, origin_server_ts, room_id, sender, type, state_key?,
unsigned{age, transaction_id?, prev_content?, replaces_state?, redacted_because?}}``.
Federation-only keys (hashes, signatures, auth_events, prev_events, depth) are dropped.
"""

from __future__ import annotations

from typing import Any, Mapping

from homeserver.events.pdu import PDU


def serialize_event(pdu: PDU, now_ms: int, *, txn_id: str | None = None,
                    prev_content: Mapping[str, Any] | None = None,
                    prev_sender: str | None = None,
                    replaces_state: str | None = None,
                    redacted_because: Mapping[str, Any] | None = None,
                    include_room_id: bool = True) -> dict[str, Any]:
    event: dict[str, Any] = {
        "content": dict(pdu.content),
        "event_id": pdu.event_id,
        "origin_server_ts": pdu.origin_server_ts,
        "sender": pdu.sender,
        "type": pdu.type,
    }
    if include_room_id:
        event["room_id"] = pdu.room_id
    if pdu.is_state():
        event["state_key"] = pdu.state_key
    if pdu.type == "m.room.redaction" and pdu.redacts:
        # clients of every version read both places (v11 moved it into content)
        event["redacts"] = pdu.redacts
        event["content"].setdefault("redacts", pdu.redacts)
    unsigned: dict[str, Any] = {"age": max(0, now_ms - pdu.origin_server_ts)}
    if txn_id is not None:
        unsigned["transaction_id"] = txn_id
    if prev_content is not None:
        unsigned["prev_content"] = dict(prev_content)
        if prev_sender is not None:
            unsigned["prev_sender"] = prev_sender
    if replaces_state is not None:
        unsigned["replaces_state"] = replaces_state
    if redacted_because is not None:
        unsigned["redacted_because"] = dict(redacted_because)
    invite_state = pdu.get("unsigned", {}).get("invite_room_state") if isinstance(
        pdu.get("unsigned"), dict) else None
    if invite_state is not None:
        unsigned["invite_room_state"] = invite_state
    event["unsigned"] = unsigned
    return event


def strip_state_event(pdu: PDU) -> dict[str, Any]:
    """Stripped state for invites and knocks (spec: "Stripped state")."""
    return {"type": pdu.type, "state_key": pdu.state_key, "sender": pdu.sender,
            "content": dict(pdu.content)}


#: state types shared with an invitee or knocker (spec recommends these)
STRIPPED_STATE_TYPES = ("m.room.create", "m.room.join_rules", "m.room.name",
                        "m.room.avatar", "m.room.canonical_alias", "m.room.encryption",
                        "m.room.topic", "m.room.member")
