"""Outbound backfill: a room's earlier history, fetched from a server in the room.

Spec: Server-Server API, "Backfilling and retrieving missing events",
"GET /_matrix/federation/v1/backfill/{roomId}".

A room joined over federation starts at our join: what came before is held only as
the state it was joined with (outliers). When ``/messages`` walking back reaches the
oldest events we hold (``RoomHistory`` calls :meth:`Backfiller.backfill`) and the
room has backward extremities there (``RoomActor.backward_extremities``: events the
timeline cites but does not hold), a server of the room is asked for up to
``BACKFILL_LIMIT`` events before them. Every returned PDU gets the same checks as an
inbound one (``pdu_checks``: signatures; a content-hash mismatch means the redacted
form), the oldest of them the state before them and missing auth events are fetched
(``GapFiller.complete_history``), all outside the actor's inbox; then
``RoomActor.backfill_pdus`` judges them by the auth rules and stores them as history:
before the timeline, never announced to ``/sync`` or sent on to other servers, with
current state and forward extremities untouched. ``/messages`` then reads on into
them. What the remote gives us is governed by its history visibility; what our users
see of it by ours, as for any event.

Servers asked, among those with members joined now: the one we joined the room
through (the room's ``joined_via``), the room creator's (it has the whole history),
then the others, the longest-standing member first; at most ``MAX_SERVERS``, a failure
or an empty answer moving on to the next. One backfill runs at a time per room
(concurrent callers wait for it and share its result), and one that brought nothing is
not repeated for the same extremities for ``RETRY_SECONDS``. Failures are logged, never
raised: ``/messages`` answers with what we hold.
"""

from __future__ import annotations

from typing import Any, Awaitable, Iterable, Mapping, Protocol, Sequence
from urllib.parse import quote

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from federation.gaps import GapFiller, RemoteJson
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.actor.room_writer import Outcome, RemoteOutcome

log = Logger()

#: events asked for per /backfill request (Synapse asks for 100 too)
BACKFILL_LIMIT = 100
#: backward extremities named per request (the deepest first)
MAX_EXTREMITIES = 20
#: servers tried per backfill
MAX_SERVERS = 3
#: a backfill that brought nothing is not retried for the same extremities before this
RETRY_SECONDS = 60.0
#: what got into the room's DAG (a duplicate or an outlier is no progress)
_STORED = {Outcome.ACCEPTED, Outcome.REJECTED, Outcome.SOFT_FAILED}


class HistoryRoom(Protocol):
    """The parts of ``RoomActor`` used here."""

    room_id: str
    room_version: RoomVersion

    async def get_events(self, event_ids: Iterable[str]) -> dict[str, PDU]: ...
    async def forward_extremities(self) -> list[str]: ...
    async def backward_extremities(self, depth: int, limit: int) -> list[str]: ...
    async def members(self, membership: str | None = None) -> dict[str, PDU]: ...
    async def read(self, query: Any) -> Any: ...
    async def current_state(self, types: Any = None) -> dict[tuple[str, str], PDU]: ...
    def backfill_pdus(self, pdus: Sequence[PDU], *, outliers: Sequence[PDU] = (),
                      state_before: Mapping[str, Sequence[PDU]] | None = None
                      ) -> Awaitable[list[RemoteOutcome]]: ...


def _server_of(user_id: str) -> str:
    return user_id.split(":", 1)[-1]


class Backfiller:
    def __init__(self, *, server_name: str, client: RemoteJson, gaps: GapFiller, clock: IReactorTime, limit: int = BACKFILL_LIMIT,
                 timeout: float = 30.0) -> None:
        self._server_name = server_name
        self._client = client
        self._gaps = gaps
        self._clock = clock
        self._limit = limit
        self._timeout = timeout
        #: room_id → callers waiting for the backfill running in that room
        self._running: dict[str, list[defer.Deferred]] = {}
        #: room_id → (extremities, when) of the last backfill that brought nothing
        self._barren: dict[str, tuple[frozenset[str], float]] = {}

    async def backfill(self, room: HistoryRoom, depth: int) -> bool:
        """Fetch history before the backward extremities cited from no deeper than
        ``depth`` and store it; whether anything new got into the room. Never raises."""
        room_id = room.room_id
        if room_id in self._running:
            waiter: defer.Deferred = defer.Deferred()
            self._running[room_id].append(waiter)
            return await waiter
        self._running[room_id] = []
        result = False
        try:
            result = await self._backfill(room, depth)
        except Exception:  # noqa: BLE001 - /messages answers with what we hold
            log.failure("backfill of {room_id} failed", room_id=room_id)
        finally:
            for waiter in self._running.pop(room_id):
                waiter.callback(result)
        return result

    async def _backfill(self, room: HistoryRoom, depth: int) -> bool:
        extremities = await room.backward_extremities(depth, MAX_EXTREMITIES)
        if not extremities:
            return False
        key, now = frozenset(extremities), self._clock.seconds()
        barren = self._barren.get(room.room_id)
        if barren is not None and barren[0] == key and now - barren[1] < RETRY_SECONDS:
            return False
        for server in (await self.servers(room))[:MAX_SERVERS]:
            pdus = await self._fetch(room, server, extremities)
            if not pdus:
                continue
            done = await self._gaps.complete_history(room, server, pdus)
            outcomes = await room.backfill_pdus(done.pdus, outliers=done.outliers,
                                                state_before=done.state_before)
            wanted = {p.event_id for p in done.pdus}
            if any(o.status in _STORED for o in outcomes if o.event_id in wanted):
                self._barren.pop(room.room_id, None)
                return True
            log.info("backfill of {room_id} from {server} brought nothing new",
                     room_id=room.room_id, server=server)
        self._barren[room.room_id] = (key, now)
        return False

    async def servers(self, room: HistoryRoom) -> list[str]:
        """The servers to ask, best first (module docstring)."""
        joined = await room.members("join")
        create = (await room.current_state([("m.room.create", "")])).get(
            ("m.room.create", ""))
        creator = _server_of(create.sender) if create is not None else None
        via = await room.read(lambda store: store.get_meta("joined_via"))
        since: dict[str, int] = {}
        for user_id, event in joined.items():
            server = _server_of(user_id)
            if server != self._server_name:
                since[server] = min(since.get(server, event.depth), event.depth)
        return sorted(since, key=lambda s: (s != via, s != creator, since[s], s))

    async def _fetch(self, room: HistoryRoom, server: str, extremities: list[str]
                     ) -> list[PDU]:
        """The checked PDUs of ``server``'s /backfill answer ([] on failure)."""
        try:
            answer = await self._client.get_json(
                server, f"/_matrix/federation/v1/backfill/{quote(room.room_id, '')}",
                {"v": extremities, "limit": str(self._limit)}, timeout=self._timeout)
        except Exception as e:  # noqa: BLE001 - the next server is asked
            log.info("backfill of {room_id} from {server} failed: {e}",
                     room_id=room.room_id, server=server, e=e)
            return []
        events = answer.get("pdus") if isinstance(answer, dict) else None
        if not isinstance(events, list):
            return []
        return [c.pdu for c in await self._gaps.checked(room, events[:self._limit])]
