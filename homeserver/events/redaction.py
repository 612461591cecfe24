"""The redaction algorithm, per room version.

Spec: rooms/v3 "Redactions" (the v1 algorithm), rooms/v6 (``m.room.aliases`` loses its
special case), rooms/v8 (``join_rules.allow`` kept), rooms/v9
(``join_authorised_via_users_server`` kept), rooms/v11 (top-level ``origin``,
``membership`` and ``prev_state`` dropped; create keeps all content; power levels keep
``invite``; member keeps ``third_party_invite.signed``; redaction keeps
``content.redacts``). Room version 12 uses the v11 algorithm.

The redacted form is what event signatures and reference hashes (event IDs) cover, so
a single differing key here forks the room between us and other servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion

# Top-level keys every version keeps. ``unsigned`` is not among them: the spec drops it
# (Synapse keeps ``unsigned.age_ts`` for its own bookkeeping, but that is not part of
# the algorithm and nothing signed or hashed depends on it).
_KEPT_KEYS = frozenset({
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
    "signatures", "depth", "prev_events", "auth_events", "origin_server_ts",
})
# Kept until the v11 rules (MSC2176 dropped them as meaningless).
_LEGACY_KEPT_KEYS = frozenset({"prev_state", "membership", "origin"})

_POWER_LEVELS_KEYS = ("ban", "events", "events_default", "kick", "redact",
                      "state_default", "users", "users_default")


def _kept_content_keys(room_version: RoomVersion, event_type: str) -> tuple[str, ...]:
    """The content keys an event of ``event_type`` keeps (besides the special cases)."""
    if event_type == "m.room.member":
        if room_version.restricted_join_rule_fix:
            return ("membership", "join_authorised_via_users_server")
        return ("membership",)
    if event_type == "m.room.create":
        return ("creator",)
    if event_type == "m.room.join_rules":
        if room_version.restricted_join_rule:
            return ("join_rule", "allow")
        return ("join_rule",)
    if event_type == "m.room.power_levels":
        if room_version.updated_redaction_rules:
            return _POWER_LEVELS_KEYS + ("invite",)
        return _POWER_LEVELS_KEYS
    if event_type == "m.room.history_visibility":
        return ("history_visibility",)
    if event_type == "m.room.aliases" and room_version.special_case_aliases_auth:
        return ("aliases",)
    if event_type == "m.room.redaction" and room_version.redacts_in_content:
        return ("redacts",)
    return ()


def redact_content(room_version: RoomVersion, event_type: str,
                   content: Mapping[str, Any]) -> dict[str, Any]:
    """The ``content`` of an ``event_type`` event after redaction.

    Useful on its own for serving redacted events to clients. Nested values are shared
    with the input, not copied.
    """
    if not isinstance(content, Mapping):
        return {}
    if event_type == "m.room.create" and room_version.updated_redaction_rules:
        return dict(content)
    kept = {key: content[key] for key in _kept_content_keys(room_version, event_type)
            if key in content}
    if event_type == "m.room.member" and room_version.updated_redaction_rules:
        third_party_invite = content.get("third_party_invite")
        # Only an object is kept, reduced to its "signed" key (possibly to {}). A
        # non-object is dropped. This matches Synapse exactly, which matters: the
        # redacted form feeds the event ID, so any difference here forks the room.
        if isinstance(third_party_invite, Mapping):
            kept["third_party_invite"] = (
                {"signed": third_party_invite["signed"]}
                if "signed" in third_party_invite else {})
    return kept


def redact_event_dict(room_version: RoomVersion, event_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``event_dict`` stripped per the room version's redaction algorithm.

    ``content`` is always present in the result (``{}`` if the input had none or it was
    not an object). Nested values are shared with the input: treat both as immutable.
    """
    kept_keys = _KEPT_KEYS if room_version.updated_redaction_rules \
        else _KEPT_KEYS | _LEGACY_KEPT_KEYS
    redacted = {key: value for key, value in event_dict.items() if key in kept_keys}
    redacted["content"] = redact_content(
        room_version, event_dict.get("type", ""), event_dict.get("content", {}))
    return redacted


def pruned_event(event: PDU) -> PDU:
    """A copy of ``event`` in its redacted form (same ID and local metadata), for
    serving it pruned to one viewer while the stored event stays whole."""
    pruned = PDU(event.room_version, redact_event_dict(event.room_version,
                                                        event.get_dict()),
                 event.event_id)
    pruned.internal_metadata.update(event.internal_metadata)
    return pruned
