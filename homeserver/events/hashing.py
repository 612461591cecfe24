"""Content hashes, reference hashes and event IDs.

Spec: server-server API "Calculating the content hash for an event" and "Calculating
the reference hash for an event"; rooms/v3 and rooms/v4 "Event IDs".

Hashing uses the lenient canonical encoding: whether an event's numbers are allowed
is a validation question (validation.py, per room version), and events of room
versions 3-5 may legitimately carry floats or big integers that their creators hashed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from homeserver.crypto.canonical_json import encode_canonical_json
from homeserver.crypto.signing import decode_base64, encode_base64
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import EventIdFormat, RoomVersion

_NOT_IN_CONTENT_HASH = ("unsigned", "signatures", "hashes")
_NOT_IN_REFERENCE_HASH = ("signatures", "unsigned")


def _content_hash_bytes(event_dict: Mapping[str, Any]) -> bytes:
    stripped = {k: v for k, v in event_dict.items() if k not in _NOT_IN_CONTENT_HASH}
    return hashlib.sha256(encode_canonical_json(stripped, strict=False)).digest()


def compute_content_hash(event_dict: Mapping[str, Any]) -> str:
    """The unpadded base64 SHA-256 that goes in ``hashes.sha256``.

    Covers the whole unredacted event except ``unsigned``, ``signatures`` and
    ``hashes``. Raises CanonicalJsonError for values JSON cannot carry at all.
    """
    return encode_base64(_content_hash_bytes(event_dict))


def check_content_hash(event_dict: Mapping[str, Any]) -> bool:
    """True if ``hashes.sha256`` matches the event; False if wrong, missing or garbled.

    The received hash is base64-decoded and compared as bytes, as the spec says, so a
    padded encoding of the right hash still matches.
    """
    hashes = event_dict.get("hashes")
    if not isinstance(hashes, Mapping):
        return False
    claimed_b64 = hashes.get("sha256")
    if not isinstance(claimed_b64, str):
        return False
    try:
        claimed = decode_base64(claimed_b64)
        actual = _content_hash_bytes(event_dict)
    except ValueError:  # bad base64, or a value canonical JSON cannot encode
        return False
    return hmac.compare_digest(claimed, actual)


def compute_reference_hash(room_version: RoomVersion, event_dict: Mapping[str, Any]) -> bytes:
    """The raw SHA-256 reference hash: redact, drop signatures and unsigned, hash."""
    redacted = redact_event_dict(room_version, event_dict)
    for key in _NOT_IN_REFERENCE_HASH:
        redacted.pop(key, None)
    return hashlib.sha256(encode_canonical_json(redacted, strict=False)).digest()


def compute_event_id(room_version: RoomVersion, event_dict: Mapping[str, Any]) -> str:
    """``$`` + the reference hash in the room version's base64 flavour.

    Room version 3 uses standard unpadded base64; 4 and later the URL-safe alphabet.
    Events of room versions 1 and 2 name themselves: their ``event_id`` is returned.
    """
    if room_version.event_format_v1:
        event_id = event_dict.get("event_id")
        if not isinstance(event_id, str):
            raise ValueError("an event of this room version needs its event_id")
        return event_id
    digest = compute_reference_hash(room_version, event_dict)
    urlsafe = room_version.event_id_format == EventIdFormat.URLSAFE_BASE64
    return "$" + encode_base64(digest, urlsafe=urlsafe)
