"""``PUT /_matrix/federation/v1/send/{txnId}``: a transaction of PDUs and EDUs.

Spec: Server-Server API, "Transactions", "PUT /send/{txnId}", "Checks performed on
receipt of a PDU", "Server Access Control Lists (ACLs)".

A transaction is answered once per (origin, txnId): the response is stored, and a
retry gets the stored response without reprocessing (a retry that arrives while the
first copy is still being processed waits for it). PDUs are grouped by room; for
each room we must be joined to, the origin must pass the room's server ACL, then the
PDUs are checked (``pdu_checks``: format, signatures, content hash → redacted),
completed (``gaps``: missing prev events, state, auth events, fetched from the
origin) and handed to the room's actor in one call. The response names every PDU we
could identify: ``{}`` if it was taken (accepted, soft-failed, already known), else
``{"error": why}``. EDUs go to :class:`federation.edus.EduHandlers`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Awaitable, Mapping, Protocol, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from federation.acl import server_allowed
from federation.edus import EduHandlers
from federation.gaps import GapFiller
from federation.pdu_checks import PduChecker, PduDropped, event_id_of
from homeserver.errors import BadJson, Forbidden
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version
from homeserver.rooms.actor.room_writer import Outcome, RemoteOutcome

log = Logger()

MAX_PDUS = 50
MAX_EDUS = 100
#: outcomes the sender need not hear about: the event is ours now
_TAKEN = {Outcome.ACCEPTED, Outcome.SOFT_FAILED, Outcome.DUPLICATE, Outcome.OUTLIER}
ACL_KEY = ("m.room.server_acl", "")
_ANY_V4_PLUS = get_room_version("10")


class TxnStore(Protocol):
    async def get_response(self, origin: str, txn_id: str) -> Any | None: ...
    async def record(self, origin: str, txn_id: str, response: Any) -> None: ...


class Rooms(Protocol):
    def known(self, room_id: str) -> bool: ...
    def get(self, room_id: str) -> Awaitable[Any]: ...


async def room_acl(actor: Any) -> Mapping[str, Any] | None:
    """The content of the room's current ``m.room.server_acl``, if any."""
    acl = (await actor.current_state([ACL_KEY])).get(ACL_KEY)
    return None if acl is None else acl.content


async def refuse_banned(origin: str, actor: Any) -> None:
    """403 M_FORBIDDEN if the room's server ACL bans ``origin`` (spec: "Server Access
    Control Lists": every room-scoped federation request)."""
    if not server_allowed(origin, await room_acl(actor)):
        raise Forbidden("Server is banned from this room by its ACL")


async def joined_here(actor: Any, server_name: str) -> bool:
    """Whether a user of ``server_name`` is joined to the room now."""
    members = await actor.members("join")
    return any(m.split(":", 1)[-1] == server_name for m in members)


class TransactionHandler:
    def __init__(self, *, server_name: str, rooms: Rooms, store: TxnStore,
                 checker: PduChecker, gaps: GapFiller, edus: EduHandlers) -> None:
        self._server_name = server_name
        self._rooms = rooms
        self._store = store
        self._checker = checker
        self._gaps = gaps
        self._edus = edus
        #: (origin, txn_id) → waiters for the copy being processed
        self._inflight: dict[tuple[str, str], list[defer.Deferred]] = {}

    async def on_send(self, origin: str, txn_id: str, body: Any) -> dict[str, Any]:
        """The response to one transaction (module docstring); raises BadJson or
        InvalidParam (400) for a malformed body or too many PDUs/EDUs."""
        pdus, edus = _parse_body(body)
        key = (origin, txn_id)
        recorded = await self._store.get_response(origin, txn_id)
        if recorded is not None:
            return recorded
        if key in self._inflight:
            d: defer.Deferred = defer.Deferred()
            self._inflight[key].append(d)
            return await d
        self._inflight[key] = []
        try:
            response = await self._process(origin, pdus, edus)
            await self._store.record(origin, txn_id, response)
        except BaseException as e:
            for waiter in self._inflight.pop(key):
                waiter.errback(e)
            raise
        for waiter in self._inflight.pop(key):
            waiter.callback(response)
        return response

    async def _process(self, origin: str, pdus: Sequence[Any], edus: Sequence[Any]
                       ) -> dict[str, Any]:
        by_room: dict[str, list[Any]] = defaultdict(list)
        results: dict[str, dict[str, str]] = {}
        for pdu in pdus:
            room_id = pdu.get("room_id") if isinstance(pdu, Mapping) else None
            if isinstance(room_id, str):
                by_room[room_id].append(pdu)
            # else: no room and no room version to compute an ID by: nothing to report
        # rooms concurrently: one room's slow gap filling must not hold up the others
        per_room = await defer.gatherResults(
            [defer.ensureDeferred(self._room_pdus_or_errors(origin, room_id, room_pdus))
             for room_id, room_pdus in by_room.items()], consumeErrors=True)
        for room_results in per_room:
            results.update(room_results)
        for edu in edus:
            await self._edus.dispatch(origin, edu)
        return {"pdus": results}

    async def _room_pdus_or_errors(self, origin: str, room_id: str, event_dicts: list[Any]
                                   ) -> dict[str, dict[str, str]]:
        try:
            return await self._room_pdus(origin, room_id, event_dicts)
        except Exception:  # noqa: BLE001 - answered per PDU, never as a 500
            log.failure("PDUs of {room_id} from {origin}", room_id=room_id, origin=origin)
            return _errors(event_dicts, None, "internal error")

    async def _room_pdus(self, origin: str, room_id: str, event_dicts: list[Any]
                         ) -> dict[str, dict[str, str]]:
        actor = await self._room(room_id)
        if actor is None:
            return _errors(event_dicts, None, f"this server is not in room {room_id}")
        version = actor.room_version
        if not server_allowed(origin, await room_acl(actor)):
            return _errors(event_dicts, version, "server is denied by the room's ACL")
        results: dict[str, dict[str, str]] = {}
        checked: list[PDU] = []
        for outcome in await self._checker.check_many(version, event_dicts):
            if isinstance(outcome, PduDropped):
                if outcome.event_id is not None:
                    results[outcome.event_id] = {"error": outcome.reason}
                log.info("dropped PDU {event_id} from {origin}: {reason}",
                         event_id=outcome.event_id, origin=origin, reason=outcome.reason)
            else:
                checked.append(outcome.pdu)
        if not checked:
            return results
        try:
            completed = await self._gaps.complete(actor, origin, checked)
            outcomes = await actor.apply_remote_pdus(
                completed.pdus, outliers=completed.outliers,
                state_before=completed.state_before)
        except Exception as e:  # noqa: BLE001 - answered per PDU, never as a 500
            log.failure("PDUs of {room_id} from {origin}", room_id=room_id, origin=origin)
            return {**results, **{p.event_id: {"error": f"internal error: {type(e).__name__}"}
                                  for p in checked}}
        by_id = {o.event_id: o for o in outcomes}
        for pdu in checked:
            results[pdu.event_id] = _result(by_id.get(pdu.event_id))
        return results

    async def _room(self, room_id: str) -> Any | None:
        """The room's actor if we are in the room (a local user joined)."""
        if not room_id.startswith("!") or not self._rooms.known(room_id):
            return None
        try:
            actor = await self._rooms.get(room_id)
        except Exception:  # noqa: BLE001 - e.g. a room whose creation never committed
            return None
        return actor if await joined_here(actor, self._server_name) else None


def _result(outcome: RemoteOutcome | None) -> dict[str, str]:
    if outcome is None:
        return {"error": "not processed"}
    if outcome.status in _TAKEN:
        return {}
    reason = {Outcome.MISSING_PREV: "missing prev events that could not be fetched",
              Outcome.MISSING_AUTH: "missing auth events that could not be fetched",
              Outcome.WRONG_ROOM: "event is for another room"}.get(outcome.status)
    return {"error": reason or f"{outcome.status}: {outcome.reason or ''}".rstrip(": ")}


def _errors(event_dicts: Sequence[Any], version: Any, message: str
            ) -> dict[str, dict[str, str]]:
    results = {}
    for event_dict in event_dicts:
        event_id = None
        if version is not None:
            event_id = event_id_of(version, event_dict)
        elif isinstance(event_dict, Mapping) and isinstance(event_dict.get("event_id"), str):
            event_id = event_dict["event_id"]
        if event_id is None:
            # a room we are not in has no version to compute an ID by: v4+ rooms
            # (every current version) share the event ID format
            event_id = event_id_of(_ANY_V4_PLUS, event_dict)
        if event_id is not None:
            results[event_id] = {"error": message}
    return results


def _parse_body(body: Any) -> tuple[list[Any], list[Any]]:
    if not isinstance(body, Mapping):
        raise BadJson("Transaction must be a JSON object")
    pdus, edus = body.get("pdus", []), body.get("edus", [])
    if not isinstance(pdus, list) or not isinstance(edus, list):
        raise BadJson("pdus and edus must be lists")
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise BadJson(f"A transaction holds at most {MAX_PDUS} PDUs and "
                      f"{MAX_EDUS} EDUs")
    if not isinstance(body.get("origin", ""), str):
        raise BadJson("origin must be a string")
    return pdus, edus
