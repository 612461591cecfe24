"""Signature and hash checks on a received event, with a three-way answer.

Spec: server-server API "Validating hashes and signatures on received events" (checks
2 and 3 of "Checks performed on receipt of a PDU"), appendices "Checking for a
Signature", rooms/v5 "Signing key validity period", rooms/v8 restricted joins.

Signatures cover the *redacted* event, so they verify whether we were sent the full
event or a redacted copy. Then the content hash tells the two apart: a mismatch means
"use the redacted form" (REDACT), not "drop" (INVALID).

Keys come from a synchronous ``key_lookup``: fetching remote keys is slow I/O and
happens before the event reaches its room actor (DESIGN.md §3). Use
:func:`signing_key_requests` to learn which keys to fetch first.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Callable

from homeserver.crypto.canonical_json import CanonicalJsonError, encode_canonical_json
from homeserver.crypto.signing import ED25519, decode_base64, verify_signature_bytes
from homeserver.events.hashing import check_content_hash
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import RoomVersion

#: (server_name, key_id, valid_at_ts) -> the verify key's 32 bytes, or None if unknown
#: or known to have expired before ``valid_at_ts``. ``valid_at_ts`` is 0 when the room
#: version does not enforce key validity (any key the server ever had will do).
KeyLookup = Callable[[str, str, int], bytes | None]


class VerifyResult(enum.Enum):
    #: signatures and content hash are good: use the event as received
    VALID = "valid"
    #: signatures are good but the content hash is not: use the redacted form
    REDACT = "redact"
    #: a required signature is missing or wrong: drop the event
    INVALID = "invalid"


class _Unverifiable(Exception):
    pass


def _server_of(user_id: Any) -> str:
    if not isinstance(user_id, str) or not user_id.startswith("@") or ":" not in user_id:
        raise _Unverifiable(f"{user_id!r} is not a user ID")
    return user_id.split(":", 1)[1]


def required_signers(room_version: RoomVersion, event_dict: Mapping[str, Any]) -> set[str]:
    """The servers whose signatures this event must carry (rooms v3+).

    - the ``sender``'s server, except for an invite made from a third-party invite,
      which any server may send on the sender's behalf (its token's signature is
      checked by the auth rules instead);
    - from v8 (restricted rooms), for a join carrying
      ``join_authorised_via_users_server``, also that user's server.

    Raises ValueError if an ID these depend on is malformed.
    """
    try:
        content = event_dict.get("content")
        content = content if isinstance(content, Mapping) else {}
        is_member = event_dict.get("type") == "m.room.member"
        membership = content.get("membership") if is_member else None
        servers = set()
        if not (membership == "invite" and "third_party_invite" in content):
            servers.add(_server_of(event_dict.get("sender")))
        if room_version.restricted_join_rule and membership == "join" \
                and "join_authorised_via_users_server" in content:
            servers.add(_server_of(content["join_authorised_via_users_server"]))
        return servers
    except _Unverifiable as e:
        raise ValueError(str(e)) from None


def _valid_at(room_version: RoomVersion, event_dict: Mapping[str, Any]) -> int:
    if not room_version.enforce_key_validity:
        return 0
    ts = event_dict.get("origin_server_ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


def _ed25519_signatures(event_dict: Mapping[str, Any], server: str) -> dict[str, Any]:
    signatures = event_dict.get("signatures")
    if not isinstance(signatures, Mapping):
        return {}
    server_sigs = signatures.get(server)
    if not isinstance(server_sigs, Mapping):
        return {}
    # "Removes any signing key identifiers … with algorithms it doesn't understand"
    return {k: v for k, v in server_sigs.items()
            if isinstance(k, str) and k.startswith(ED25519 + ":")}


def signing_key_requests(room_version: RoomVersion,
                         event_dict: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """The (server, key_id, valid_at_ts) keys :func:`verify_event` will ask for.

    Lets the federation layer fetch missing keys before verifying. Empty if the event's
    required signers cannot be worked out (it will verify as INVALID anyway).
    """
    try:
        servers = required_signers(room_version, event_dict)
    except ValueError:
        return []
    valid_at = _valid_at(room_version, event_dict)
    return [(server, key_id, valid_at) for server in sorted(servers)
            for key_id in sorted(_ed25519_signatures(event_dict, server))]


def _check_server(message: bytes, event_dict: Mapping[str, Any], server: str,
                  valid_at: int, key_lookup: KeyLookup) -> str | None:
    """None if ``server``'s signatures are good, else why not."""
    verified = 0
    for key_id, signature_b64 in _ed25519_signatures(event_dict, server).items():
        verify_key = key_lookup(server, key_id, valid_at)
        if verify_key is None:
            continue  # unknown or expired keys are skipped, per the spec
        try:
            signature = decode_base64(signature_b64) if isinstance(signature_b64, str) \
                else b""
        except ValueError:
            signature = b""
        if not verify_signature_bytes(message, signature, verify_key):
            return f"bad signature from {server} with {key_id}"
        verified += 1
    if not verified:
        return f"no signature from {server} with a known key"
    return None


def verify_event_with_reason(room_version: RoomVersion, event_dict: Mapping[str, Any],
                             key_lookup: KeyLookup) -> tuple[VerifyResult, str]:
    """Like :func:`verify_event`, with a reason fit for a log line."""
    try:
        servers = required_signers(room_version, event_dict)
    except ValueError as e:
        return VerifyResult.INVALID, str(e)
    redacted = redact_event_dict(room_version, event_dict)
    redacted.pop("signatures", None)
    try:
        message = encode_canonical_json(redacted, strict=room_version.strict_canonical_json)
    except CanonicalJsonError as e:
        return VerifyResult.INVALID, f"not canonical JSON: {e.message}"
    valid_at = _valid_at(room_version, event_dict)
    for server in sorted(servers):
        failure = _check_server(message, event_dict, server, valid_at, key_lookup)
        if failure is not None:
            return VerifyResult.INVALID, failure
    if not check_content_hash(event_dict):
        return VerifyResult.REDACT, "content hash mismatch"
    return VerifyResult.VALID, "ok"


def verify_event(room_version: RoomVersion, event_dict: Mapping[str, Any],
                 key_lookup: KeyLookup) -> VerifyResult:
    """Check the required signatures, then the content hash.

    INVALID if any required server (see :func:`required_signers`) has no signature by a
    key ``key_lookup`` knows, or any such signature is wrong. Otherwise REDACT if the
    content hash is wrong or missing, else VALID. From room version 5 the lookup is
    asked for keys valid at the event's ``origin_server_ts``.
    """
    return verify_event_with_reason(room_version, event_dict, key_lookup)[0]
