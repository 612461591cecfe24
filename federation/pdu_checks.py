"""The checks a PDU passes before it may be handed to its room's actor.

Spec: Server-Server API, "Checks performed on receipt of a PDU", steps 1–3:

1. it is a valid event for its room version, else it is dropped
   (``homeserver.events.validation``);
2. it carries valid signatures of the servers that must sign it (the sender's server;
   from room v8 the ``join_authorised_via_users_server``'s server for restricted
   joins), else it is dropped;
3. its content hash matches, else it is *redacted* and the redacted form is used.

Steps 4–6 (auth against auth events, state before, current state) happen inside the
room's actor (``RoomWriter.apply_remote``). Fetching the signing keys is slow I/O,
so it happens here, outside the actor (DESIGN.md §3): :class:`PduChecker` gathers the
keys a PDU names and then runs the pure :func:`judge` on them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Protocol, Sequence

from twisted.internet import defer

from homeserver.events.hashing import compute_event_id
from homeserver.events.pdu import PDU
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import RoomVersion
from homeserver.events.validation import EventValidationError, validate_event_dict
from homeserver.events.verify import (
    VerifyResult, signing_key_requests, verify_event_with_reason)

#: (server, key_id, valid_at_ts) → the key's bytes, or None when it could not be found
Keys = Mapping[tuple[str, str, int], bytes | None]


class PduDropped(Exception):
    """The PDU fails step 1 or 2: it must not be used at all."""

    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


@dataclasses.dataclass(frozen=True)
class Checked:
    """A PDU that passed the checks; ``redacted`` if its content hash did not match
    and ``pdu`` is the redacted form."""

    pdu: PDU
    redacted: bool = False


def event_id_of(room_version: RoomVersion, event_dict: Any) -> str | None:
    """The event ID ``event_dict`` would have, or None if it cannot be worked out (for
    per-PDU error reports about events too broken to have one)."""
    try:
        return compute_event_id(room_version, event_dict)
    except Exception:  # noqa: BLE001 - any malformation means "no ID"
        return None


def judge(room_version: RoomVersion, event_dict: Any, keys: Keys) -> Checked:
    """Steps 1–3 on one PDU with the keys already at hand. Pure.

    Raises :class:`PduDropped` if it is malformed or a required signature is missing or
    wrong; returns the redacted form (``redacted=True``) on a content hash mismatch.
    """
    event_id = event_id_of(room_version, event_dict)
    try:
        validate_event_dict(room_version, event_dict)
    except EventValidationError as e:
        raise PduDropped(f"malformed event: {e.message}", event_id) from None
    if event_id is None:
        raise PduDropped("malformed event: no event ID can be computed")
    result, reason = verify_event_with_reason(
        room_version, event_dict, lambda server, key_id, at: keys.get((server, key_id, at)))
    if result is VerifyResult.INVALID:
        raise PduDropped(f"signature check failed: {reason}", event_id)
    if result is VerifyResult.REDACT:
        # the reference hash covers the redacted form: the event ID is unchanged
        redacted = redact_event_dict(room_version, event_dict)
        return Checked(PDU(room_version, redacted, event_id), redacted=True)
    return Checked(PDU(room_version, event_dict, event_id))


class KeySource(Protocol):
    """The part of ``federation.keys.Keyring`` used here."""

    async def get_verify_key(self, server_name: str, key_id: str,
                             minimum_valid_until_ts: int | None = None) -> bytes: ...


class PduChecker:
    """Fetches the signing keys PDUs name, then judges them (module docstring)."""

    def __init__(self, keyring: KeySource) -> None:
        self._keyring = keyring

    async def _keys(self, wanted: set[tuple[str, str, int]]) -> dict:
        """The keys, fetched concurrently (one slow server must not serialise the
        others); a key that cannot be had is None."""
        keys: dict[tuple[str, str, int], bytes | None] = {}

        async def one(request: tuple[str, str, int]) -> None:
            server, key_id, at = request
            try:
                keys[request] = await self._keyring.get_verify_key(server, key_id, at)
            except Exception:  # noqa: BLE001 - an unknown key fails the signature check
                keys[request] = None

        await defer.gatherResults([defer.ensureDeferred(one(r)) for r in sorted(wanted)])
        return keys

    async def check(self, room_version: RoomVersion, event_dict: Any) -> Checked:
        """Steps 1–3 on one PDU; raises :class:`PduDropped`."""
        [outcome] = await self.check_many(room_version, [event_dict])
        if isinstance(outcome, PduDropped):
            raise outcome
        return outcome

    async def check_many(self, room_version: RoomVersion, event_dicts: Sequence[Any]
                         ) -> list[Checked | PduDropped]:
        """Steps 1–3 on each PDU, in order: a :class:`Checked` or the
        :class:`PduDropped` saying why it was dropped. Keys are fetched once."""
        wanted: set[tuple[str, str, int]] = set()
        for event_dict in event_dicts:
            if isinstance(event_dict, Mapping):
                try:
                    wanted.update(signing_key_requests(room_version, event_dict))
                except Exception:  # noqa: BLE001 - judge reports the malformation
                    pass
        keys = await self._keys(wanted)
        outcomes: list[Checked | PduDropped] = []
        for event_dict in event_dicts:
            try:
                outcomes.append(judge(room_version, event_dict, keys))
            except PduDropped as e:
                outcomes.append(e)
        return outcomes
