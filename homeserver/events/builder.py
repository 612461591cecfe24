"""Turn an unsigned event we are creating into a hashed, signed, validated PDU.

Spec: server-server API "Adding hashes and signatures to outgoing events": compute the
content hash, put it in ``hashes``, redact, sign the redacted form, copy the signature
back. The event ID is then the reference hash (rooms/v3, v4 "Event IDs").

We do not add a top-level ``origin``: it was removed from the PDU format (matrix-spec
PR #998) and Synapse stopped sending it; a partial that carries one (e.g. a remote
``make_join`` template) keeps it, since it is hashed and signed like any other key.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

from homeserver.crypto.canonical_json import CanonicalJsonError
from homeserver.crypto.signing import SigningKey, sign_json
from homeserver.events.hashing import compute_content_hash, compute_event_id
from homeserver.events.pdu import PDU
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import RoomVersion
from homeserver.events.validation import EventValidationError, validate_event_dict

# Keys a fresh event must not inherit from its template: they are computed here.
_COMPUTED_KEYS = ("event_id", "hashes", "signatures")


def add_event_signature(room_version: RoomVersion, event_dict: Mapping[str, Any],
                        server_name: str, signing_key: SigningKey) -> dict[str, Any]:
    """A copy of a hashed event with our signature (over its redacted form) added.

    For co-signing someone else's event: a restricted-room join we authorise (v8+),
    or an invite to one of our users. Signatures already present are kept.
    """
    redacted = redact_event_dict(room_version, event_dict)
    signed = sign_json(redacted, server_name, signing_key,
                       strict=room_version.strict_canonical_json)
    event = dict(event_dict)
    event["signatures"] = signed["signatures"]
    return event


def _normalise_redacts(room_version: RoomVersion, event: dict[str, Any]) -> None:
    """Put ``redacts`` where the room version wants it (v11 moved it into content)."""
    if event.get("type") != "m.room.redaction":
        return
    content = event.get("content")
    if not isinstance(content, dict):
        return
    if room_version.redacts_in_content:
        top = event.pop("redacts", None)
        if top is not None and "redacts" not in content:
            event["content"] = {**content, "redacts": top}
    elif "redacts" not in event and "redacts" in content:
        event["redacts"] = content["redacts"]


def _v1_references(room_version: RoomVersion, event: dict[str, Any],
                   cited_hash: Callable[[str], str] | None) -> None:
    """Event format v1 (rooms v1, v2): cite prev and auth events as
    ``[event_id, {"sha256": reference hash}]`` pairs."""
    for key in ("prev_events", "auth_events"):
        refs = event.get(key)
        if not isinstance(refs, list) or all(isinstance(r, list) for r in refs):
            continue
        if cited_hash is None:
            raise ValueError(f"{key} of a room v{room_version.identifier} event need "
                             "the cited events' reference hashes")
        event[key] = [[r, {"sha256": cited_hash(r)}] for r in refs]


def finalize_event(room_version: RoomVersion, partial: Mapping[str, Any], server_name: str,
                   signing_key: SigningKey, now_ms: int | None = None, *,
                   cited_hash: Callable[[str], str] | None = None) -> PDU:
    """Hash, sign and validate ``partial``; return the PDU with its event ID.

    ``partial`` holds ``type``, ``sender``, ``content``, ``room_id`` (absent for a v12
    create event, whose room ID derives from its event ID), optional ``state_key``,
    ``prev_events``, ``auth_events``, ``depth`` and optionally ``origin_server_ts``
    (``now_ms`` is used when it is missing; one of the two is required). Any
    ``event_id``, ``hashes`` or ``signatures`` in it are discarded and recomputed.
    ``partial`` is not modified.

    For room versions 1 and 2 an ``event_id`` is made up here, and ``cited_hash``
    gives the (unpadded base64) reference hash of each event ID in ``prev_events``
    and ``auth_events``, which that event format cites with their hashes.

    Raises EventValidationError (M_BAD_JSON / M_TOO_LARGE) if the result is not a
    valid event for ``room_version``, e.g. content with a float in a v6+ room.
    """
    event = {k: v for k, v in partial.items() if k not in _COMPUTED_KEYS}
    if "origin_server_ts" not in event:
        if now_ms is None:
            raise ValueError("finalize_event needs origin_server_ts or now_ms")
        event["origin_server_ts"] = now_ms
    _normalise_redacts(room_version, event)
    if room_version.event_format_v1:
        # rooms v1/v2: the creating server names the event (spec: rooms/v1 "Event IDs")
        localpart = "".join(secrets.choice(string.ascii_letters) for _ in range(18))
        event["event_id"] = f"${localpart}:{server_name}"
        _v1_references(room_version, event, cited_hash)

    try:
        event["hashes"] = {"sha256": compute_content_hash(event)}
        event["signatures"] = {}
        event = add_event_signature(room_version, event, server_name, signing_key)
    except CanonicalJsonError as e:
        # e.g. a float in a v6+ room: report it as validation would
        raise EventValidationError(f"event is not canonical JSON: {e.message}") from None
    raw = validate_event_dict(room_version, event)
    return PDU(room_version, event, compute_event_id(room_version, event), raw)
