"""Is this dict a well-formed PDU for its room version?

This is check 1 of "Checks performed on receipt of a PDU" (server-server API): an
event that fails it is dropped, before signatures, hashes or auth are looked at. It is
also run on every event we build, so we never emit one that others would drop.

Sources: the PDU schemas (``pdu_v1`` for rooms v1/v2, ``pdu_v3``, ``pdu_v4``,
``pdu_v6``, ``pdu_v11``, ``pdu_v12`` in the server-server API), client-server API "Size
limits" (65,536 bytes of canonical JSON; 255 bytes for IDs, ``type`` and
``state_key``), and rooms/v6 "Canonical JSON".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.crypto.canonical_json import CanonicalJsonError, encode_canonical_json
from homeserver.errors import MatrixError
from homeserver.events.room_versions import RoomVersion
from homeserver.ids import is_valid_server_name

MAX_PDU_SIZE = 65536
MAX_ID_BYTES = 255
#: spec: "Must contain less than or equal to" 20 prev_events / 10 auth_events
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
#: depth limit before room version 6 (pdu_v3/pdu_v4: "less than … 2^63 - 1")
MAX_DEPTH_LEGACY = 2**63 - 1


class EventValidationError(MatrixError):
    """The event does not match its room version's event format (M_BAD_JSON)."""

    errcode = "M_BAD_JSON"
    status = 400


class EventTooLarge(EventValidationError):
    """The event is over a size limit (M_TOO_LARGE, HTTP 413)."""

    errcode = "M_TOO_LARGE"
    status = 413


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(event: Mapping[str, Any], key: str, kind: type | tuple[type, ...],
             kind_name: str) -> Any:
    if key not in event:
        raise EventValidationError(f"event is missing {key!r}")
    value = event[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise EventValidationError(f"{key!r} must be {kind_name}")
    return value


def _check_id_size(name: str, value: str) -> None:
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise EventTooLarge(f"{name!r} is longer than {MAX_ID_BYTES} bytes")


def _check_event_id_list(room_version: RoomVersion, event: Mapping[str, Any], key: str,
                         limit: int) -> None:
    ids = _require(event, key, list, "a list of event IDs")
    if len(ids) > limit:
        raise EventValidationError(f"{key!r} has more than {limit} entries")
    if room_version.event_format_v1:
        # pdu_v1: [event_id, {"sha256": hash}] pairs
        for pair in ids:
            if not isinstance(pair, list) or len(pair) != 2 \
                    or not isinstance(pair[1], Mapping):
                raise EventValidationError(f"{key!r} must contain [event ID, hashes] pairs")
        ids = [pair[0] for pair in ids]
    for event_id in ids:
        if not isinstance(event_id, str) or not event_id.startswith("$"):
            raise EventValidationError(f"{key!r} must contain event IDs")
        _check_id_size(key, event_id)


def _check_room_id(room_version: RoomVersion, event: Mapping[str, Any]) -> None:
    if room_version.room_id_from_create_event and event.get("type") == "m.room.create":
        # MSC4291 (v12): the room ID is derived from the create event, which has none
        if "room_id" in event:
            raise EventValidationError("an m.room.create event in this room version "
                                       "has no 'room_id'")
        return
    room_id = _require(event, "room_id", str, "a string")
    if not room_id.startswith("!"):
        raise EventValidationError("'room_id' must be a room ID")
    _check_id_size("room_id", room_id)


def _check_signatures(event: Mapping[str, Any]) -> None:
    signatures = _require(event, "signatures", Mapping, "an object")
    for server, sigs in signatures.items():
        if not isinstance(sigs, Mapping) or not all(
                isinstance(sig, str) for sig in sigs.values()):
            raise EventValidationError(f"signatures of {server!r} must map key IDs to strings")


def validate_event_dict(room_version: RoomVersion, event_dict: Mapping[str, Any]) -> bytes:
    """Raise EventValidationError (or EventTooLarge) unless ``event_dict`` is a valid PDU.

    Returns the event's canonical JSON (strict for room versions 6+), which the caller
    may keep as the event's bytes rather than encoding it again.
    """
    if not isinstance(event_dict, Mapping):
        raise EventValidationError("an event must be a JSON object")

    event_type = _require(event_dict, "type", str, "a string")
    _check_id_size("type", event_type)
    sender = _require(event_dict, "sender", str, "a string")
    _check_id_size("sender", sender)
    # Lenient on the localpart: rooms hold historical user IDs that today's grammar
    # refuses, and dropping their events would make those rooms unjoinable. The
    # server name must parse, as signature checks are keyed by it.
    localpart, sep, server = sender[1:].partition(":")
    if not sender.startswith("@") or not localpart or not sep \
            or not is_valid_server_name(server):
        raise EventValidationError("'sender' is not a user ID")
    _check_room_id(room_version, event_dict)
    if "state_key" in event_dict:
        _check_id_size("state_key", _require(event_dict, "state_key", str, "a string"))
    if room_version.event_format_v1:
        event_id = _require(event_dict, "event_id", str, "a string")
        if not event_id.startswith("$") or ":" not in event_id:
            raise EventValidationError("'event_id' must be an event ID")
    if "event_id" in event_dict:
        # v3+ events carry no event_id, but one that does is kept by redaction and so
        # covered by the event ID; just bound it like any other ID.
        _check_id_size("event_id", _require(event_dict, "event_id", str, "a string"))

    _require(event_dict, "content", Mapping, "an object")
    _require(event_dict, "origin_server_ts", int, "an integer")
    depth = _require(event_dict, "depth", int, "an integer")
    if depth < 0 or depth > MAX_DEPTH_LEGACY:
        raise EventValidationError("'depth' is out of range")
    _check_event_id_list(room_version, event_dict, "prev_events", MAX_PREV_EVENTS)
    _check_event_id_list(room_version, event_dict, "auth_events", MAX_AUTH_EVENTS)

    hashes = _require(event_dict, "hashes", Mapping, "an object")
    if not isinstance(hashes.get("sha256"), str):
        raise EventValidationError("'hashes' must have a string 'sha256'")
    _check_signatures(event_dict)
    if "unsigned" in event_dict:
        _require(event_dict, "unsigned", Mapping, "an object")

    redacts = (event_dict["content"].get("redacts") if room_version.redacts_in_content
               else event_dict.get("redacts"))
    if event_type == "m.room.redaction" and redacts is not None \
            and not isinstance(redacts, str):
        raise EventValidationError("'redacts' must be an event ID")

    try:
        encoded = encode_canonical_json(event_dict, strict=room_version.strict_canonical_json)
    except CanonicalJsonError as e:
        raise EventValidationError(f"event is not canonical JSON: {e.message}") from None
    if len(encoded) > MAX_PDU_SIZE:
        raise EventTooLarge(f"event is larger than {MAX_PDU_SIZE} bytes")
    return encoded
