"""Completing PDUs received over federation before they go to their room's actor.

Spec: Server-Server API, "Checks performed on receipt of a PDU" (the event must have
its auth events, and the state before it must be known), "POST /get_missing_events",
"GET /state_ids", "GET /state", "GET /event", "GET /event_auth".

Everything here is slow I/O and runs outside the actor's inbox (DESIGN.md §3); the
actor then receives PDUs it can place (``RoomActor.apply_remote_pdus``). For one room
and one sending server, :meth:`GapFiller.complete`:

1. asks the origin for the events between our forward extremities and the PDUs whose
   prev events we lack (``/get_missing_events``, bounded by ``limit`` and
   ``min_depth``) and adds those it returns to the batch;
2. for each prev event still missing (a gap too wide to fill), fetches that event and
   the state before it (``/state_ids`` then ``/event`` for what we lack, or ``/state``
   when we lack much), so the actor places it on the given state and the PDU after it
   on its prev events — state resolution across forks stays in the actor;
3. fetches auth events nobody has yet (``/event_auth``).

Every fetched event passes the same checks as the PDUs themselves (``pdu_checks``).
Fetches are bounded; what cannot be completed is left for the actor to answer
``MISSING_PREV`` / ``MISSING_AUTH``. Remote failures never escape as our errors.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Iterable, Mapping, Protocol, Sequence
from urllib.parse import quote

from twisted.logger import Logger

from federation.pdu_checks import Checked, PduChecker, PduDropped
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion

log = Logger()

#: events asked for per /get_missing_events (Synapse asks for 10 too)
MISSING_EVENTS_LIMIT = 10
#: how far below the batch's shallowest event /get_missing_events may go
MISSING_EVENTS_DEPTH = 20
#: prev events whose state we fetch per batch; beyond that the PDUs stay MISSING_PREV
MAX_GAPS = 3
#: lacking more than this many events of a /state_ids answer, fetch /state instead
MAX_SINGLE_FETCHES = 20
#: /event_auth calls per batch
MAX_AUTH_FETCHES = 5


class RemoteJson(Protocol):
    """The part of ``federation.client.FederationClient`` used here."""

    def get_json(self, destination: str, path: str, args: Any = None, *,
                 timeout: float | None = None) -> Awaitable[Any]: ...

    def post_json(self, destination: str, path: str, body: Any, args: Any = None, *,
                  timeout: float | None = None) -> Awaitable[Any]: ...


class RoomEvents(Protocol):
    """The reads of ``RoomActor`` used here."""

    room_id: str
    room_version: RoomVersion

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, PDU]: ...
    async def forward_extremities(self) -> list[str]: ...


@dataclasses.dataclass
class Completed:
    """What to hand to ``RoomActor.apply_remote_pdus``."""

    pdus: list[PDU]
    outliers: list[PDU]
    state_before: dict[str, list[PDU]]



def _place(event_id: str, state: list[PDU], auth: list[PDU],
           state_before: dict[str, list[PDU]], outliers: dict[str, PDU]) -> None:
    """Record the state before ``event_id``; it and its auth events go in first."""
    state_before[event_id] = state
    for event in (*state, *auth):
        outliers.setdefault(event.event_id, event)


def _pdu_list(body: Any, key: str) -> list[Any]:
    value = body.get(key) if isinstance(body, dict) else None
    return value if isinstance(value, list) else []


class GapFiller:
    def __init__(self, *, client: RemoteJson, checker: PduChecker,
                 timeout: float = 60.0) -> None:
        self._client = client
        self._checker = checker
        self._timeout = timeout

    async def complete(self, room: RoomEvents, origin: str, pdus: Sequence[PDU]
                       ) -> Completed:
        """The batch completed as far as the origin lets us (module docstring)."""
        version = room.room_version
        batch: dict[str, PDU] = {p.event_id: p for p in pdus}
        outliers: dict[str, PDU] = {}
        state_before: dict[str, list[PDU]] = {}

        missing = await self._missing_prevs(room, batch)
        if missing:
            for pdu in await self._missing_events(room, origin, batch, missing):
                batch.setdefault(pdu.event_id, pdu)
            missing = await self._missing_prevs(room, batch)
        for prev_id in sorted(missing)[:MAX_GAPS]:
            got = await self._gap(room, origin, prev_id)
            if got is None:
                continue
            prev, state, auth = got
            batch[prev.event_id] = prev
            _place(prev.event_id, state, auth, state_before, outliers)
        return await self._finish(room, origin, batch, outliers, state_before)

    async def _finish(self, room: RoomEvents, origin: str, batch: dict[str, PDU],
                      outliers: dict[str, PDU], state_before: dict[str, list[PDU]]
                      ) -> Completed:
        """The batch with the auth events nobody has fetched (``/event_auth``)."""
        await self._fill_auth(room, origin, batch, outliers)
        for event_id in batch:
            outliers.pop(event_id, None)
        return Completed(list(batch.values()), list(outliers.values()), state_before)

    # -- prev events ------------------------------------------------------------------
    async def _missing_prevs(self, room: RoomEvents, batch: Mapping[str, PDU]) -> set[str]:
        wanted = {p for pdu in batch.values() for p in pdu.prev_event_ids} - set(batch)
        known = await room.get_events(wanted) if wanted else {}
        return wanted - set(known)

    async def _missing_events(self, room: RoomEvents, origin: str,
                              batch: Mapping[str, PDU], missing: set[str]) -> list[PDU]:
        latest = sorted(e for e, pdu in batch.items()
                        if set(pdu.prev_event_ids) & missing)
        min_depth = max(0, min(p.depth for p in batch.values()) - MISSING_EVENTS_DEPTH)
        body = {"earliest_events": await room.forward_extremities(),
                "latest_events": latest, "limit": MISSING_EVENTS_LIMIT,
                "min_depth": min_depth}
        try:
            answer = await self._client.post_json(
                origin, f"/_matrix/federation/v1/get_missing_events/{quote(room.room_id, '')}",
                body, timeout=self._timeout)
        except Exception as e:  # noqa: BLE001 - the gap is then filled from state
            log.info("get_missing_events from {origin} failed: {e}", origin=origin, e=e)
            return []
        events = _pdu_list(answer, "events")[:MISSING_EVENTS_LIMIT]
        return [c.pdu for c in await self.checked(room, events)]

    async def complete_history(self, room: RoomEvents, origin: str, pdus: Sequence[PDU]
                               ) -> Completed:
        """A ``/backfill`` answer from ``origin``, completed for
        ``RoomActor.backfill_pdus``: the state before each of its oldest events (those
        whose prev events are neither in the answer nor held with state here), fetched
        as for a gap (``/state_ids``, then ``/event`` or ``/state``; at most
        ``MAX_GAPS``), and auth events nobody has (``/event_auth``). An event whose
        state cannot be had is left for the actor to answer ``MISSING_PREV``."""
        batch: dict[str, PDU] = {p.event_id: p for p in pdus}
        outliers: dict[str, PDU] = {}
        state_before: dict[str, list[PDU]] = {}
        cited = {p for pdu in batch.values() for p in pdu.prev_event_ids} - set(batch)
        held = await room.get_events(cited) if cited else {}
        with_state = {i for i, e in held.items() if not e.internal_metadata.get("outlier")}
        frontier = [pdu for pdu in sorted(batch.values(), key=lambda p: p.depth)
                    if set(pdu.prev_event_ids) - set(batch) - with_state]
        for pdu in frontier[:MAX_GAPS]:
            got = await self._state_at(room, origin, pdu.event_id)
            if got is None:
                continue
            _place(pdu.event_id, *got, state_before, outliers)
        return await self._finish(room, origin, batch, outliers, state_before)

    async def _gap(self, room: RoomEvents, origin: str, prev_id: str
                   ) -> tuple[PDU, list[PDU], list[PDU]] | None:
        """The missing event ``prev_id``, the state before it and that state's auth
        chain, from the origin; None if it will not give them."""
        prev = await self._event(room, origin, prev_id)
        if prev is None:
            return None
        got = await self._state_at(room, origin, prev_id)
        return None if got is None else (prev, *got)

    async def _state_at(self, room: RoomEvents, origin: str, event_id: str
                        ) -> tuple[list[PDU], list[PDU]] | None:
        """The state before ``event_id`` and the auth events of that state we lack,
        from the origin; None if it will not give them."""
        try:
            ids = await self._client.get_json(
                origin, f"/_matrix/federation/v1/state_ids/{quote(room.room_id, '')}",
                {"event_id": event_id}, timeout=self._timeout)
            state_ids = [i for i in _pdu_list(ids, "pdu_ids") if isinstance(i, str)]
            auth_ids = [i for i in _pdu_list(ids, "auth_chain_ids") if isinstance(i, str)]
            if not state_ids:
                return None
            have = await room.get_events([*state_ids, *auth_ids])
            lacking = [i for i in dict.fromkeys([*state_ids, *auth_ids]) if i not in have]
            if len(lacking) > MAX_SINGLE_FETCHES:
                fetched = await self._state(room, origin, event_id)
            else:
                fetched = {}
                for lacking_id in lacking:
                    event = await self._event(room, origin, lacking_id)
                    if event is not None:
                        fetched[lacking_id] = event
            events = {**have, **fetched}
            if any(i not in events for i in state_ids):
                return None  # a state event we cannot get: we cannot place prev
            state = [events[i] for i in state_ids]
            auth = [events[i] for i in auth_ids if i in fetched]
            return state, auth
        except Exception as e:  # noqa: BLE001 - the PDU stays MISSING_PREV
            log.info("state before {event_id} from {origin} failed: {e}",
                     event_id=event_id, origin=origin, e=e)
            return None

    async def _state(self, room: RoomEvents, origin: str, event_id: str) -> dict[str, PDU]:
        answer = await self._client.get_json(
            origin, f"/_matrix/federation/v1/state/{quote(room.room_id, '')}",
            {"event_id": event_id}, timeout=self._timeout)
        events = _pdu_list(answer, "pdus") + _pdu_list(answer, "auth_chain")
        return {c.pdu.event_id: c.pdu for c in await self.checked(room, events)}

    async def _event(self, room: RoomEvents, origin: str, event_id: str) -> PDU | None:
        """One event of this room from the origin, checked, with the ID we asked for."""
        try:
            answer = await self._client.get_json(
                origin, f"/_matrix/federation/v1/event/{quote(event_id, '')}",
                timeout=self._timeout)
        except Exception as e:  # noqa: BLE001
            log.info("event {event_id} from {origin} failed: {e}", event_id=event_id,
                     origin=origin, e=e)
            return None
        for checked in await self.checked(room, _pdu_list(answer, "pdus")[:1]):
            if checked.pdu.event_id == event_id:
                return checked.pdu
        return None

    # -- auth events ------------------------------------------------------------------
    async def _fill_auth(self, room: RoomEvents, origin: str, batch: dict[str, PDU],
                         outliers: dict[str, PDU]) -> None:
        for _ in range(MAX_AUTH_FETCHES):
            everything = {**outliers, **batch}
            cited = {a for e in everything.values() for a in e.auth_event_ids}
            wanted = cited - set(everything)
            known = await room.get_events(wanted) if wanted else {}
            lacking = wanted - set(known)
            if not lacking:
                return
            needy = next(e for e in sorted(everything.values(), key=lambda e: e.depth)
                         if set(e.auth_event_ids) & lacking)
            try:
                answer = await self._client.get_json(
                    origin, f"/_matrix/federation/v1/event_auth/"
                    f"{quote(room.room_id, '')}/{quote(needy.event_id, '')}",
                    timeout=self._timeout)
            except Exception as e:  # noqa: BLE001 - the actor answers MISSING_AUTH
                log.info("event_auth from {origin} failed: {e}", origin=origin, e=e)
                return
            got = [c.pdu for c in await self.checked(room, _pdu_list(answer, "auth_chain"))]
            new = [e for e in got if e.event_id not in everything]
            if not new:
                return
            for event in new:
                outliers[event.event_id] = event

    async def checked(self, room: RoomEvents, event_dicts: Sequence[Any]) -> list[Checked]:
        """Those of ``event_dicts`` that pass the checks and belong to this room."""
        outcomes = await self._checker.check_many(room.room_version, event_dicts)
        kept = []
        for outcome in outcomes:
            if isinstance(outcome, PduDropped):
                log.info("dropped fetched event {event_id}: {reason}",
                         event_id=outcome.event_id, reason=outcome.reason)
            elif outcome.pdu.room_id == room.room_id:
                kept.append(outcome)
        return kept
