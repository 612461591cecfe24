"""Signature and hash checks on events received over federation, with their keys
fetched first (the slow part, outside any room actor).

Spec: server-server API "Checks performed on receipt of a PDU", steps 1-3 (a valid
event, the sending servers' signatures, the content hash: a mismatch means "use the
redacted event"), and "Validating hashes and signatures on received events". The pure
check is ``homeserver.events.verify.verify_event``; this module fetches the keys it
asks for through the :class:`federation.keys.Keyring` and turns event dicts into PDUs.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Protocol

from twisted.internet import defer

from homeserver.errors import BadJson, Forbidden
from homeserver.events.pdu import PDU
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import RoomVersion
from homeserver.events.validation import EventValidationError, validate_event_dict
from homeserver.events.verify import (
    VerifyResult, signing_key_requests, verify_event_with_reason)


class VerifyKeys(Protocol):
    async def get_verify_key(self, server_name: str, key_id: str,
                             minimum_valid_until_ts: int | None = None) -> bytes: ...


class EventChecker:
    def __init__(self, keyring: VerifyKeys) -> None:
        self._keyring = keyring

    async def _keys(self, room_version: RoomVersion,
                    events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, int], bytes]:
        wanted = sorted({r for e in events for r in signing_key_requests(room_version, e)})
        found: dict[tuple[str, str, int], bytes] = {}

        async def one(request: tuple[str, str, int]) -> None:
            server, key_id, valid_at = request
            try:
                found[request] = await self._keyring.get_verify_key(server, key_id,
                                                                   valid_at)
            except Exception:  # noqa: BLE001 - an unknown key only makes the event fail
                pass

        await defer.gatherResults([defer.ensureDeferred(one(r)) for r in wanted],
                                  consumeErrors=True)
        return found

    async def check(self, room_version: RoomVersion, events: Iterable[Any]
                    ) -> tuple[list[PDU], dict[str, str]]:
        """The events that pass (redacted where the content hash is wrong) and, by
        event ID (or position for unparseable ones), why the others were dropped."""
        events = list(events)
        dicts = [e for e in events if isinstance(e, dict)]
        keys = await self._keys(room_version, dicts)
        good: list[PDU] = []
        dropped: dict[str, str] = {}
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                dropped[f"#{index}"] = "not a JSON object"
                continue
            try:
                good.append(self._one(room_version, event, keys))
            except (BadJson, Forbidden) as e:
                dropped[str(event.get("event_id") or f"#{index}")] = e.message
        return good, dropped

    async def check_one(self, room_version: RoomVersion, event: Any) -> PDU:
        """One event that must pass as sent: BadJson if malformed, Forbidden if a
        signature is missing or wrong or the content hash does not match."""
        if not isinstance(event, dict):
            raise BadJson("event must be a JSON object")
        keys = await self._keys(room_version, [event])
        pdu = self._one(room_version, event, keys)
        if pdu.get_dict() is not event and pdu.get_dict() != event:
            raise Forbidden("the event's content hash does not match")
        return pdu

    def _one(self, room_version: RoomVersion, event: dict[str, Any],
             keys: Mapping[tuple[str, str, int], bytes]) -> PDU:
        try:
            raw = validate_event_dict(room_version, event)
        except EventValidationError as e:
            raise BadJson(f"invalid event: {e.message}") from None
        result, reason = verify_event_with_reason(
            room_version, event, lambda s, k, t: keys.get((s, k, t)))
        if result is VerifyResult.INVALID:
            raise Forbidden(f"event failed signature checks: {reason}")
        if result is VerifyResult.REDACT:
            redacted = redact_event_dict(room_version, event)
            return PDU.from_dict(room_version, redacted)
        return PDU.from_dict(room_version, event, raw)
