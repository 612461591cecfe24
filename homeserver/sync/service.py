"""``GET /sync`` as a service: filter resolution, presence and the long-poll.

Long-polling (spec: "Syncing": the server holds the request "returning early if an
event occurs") registers with the Notifier *before* building the answer, so a change
committed while the answer is built still wakes the request: nothing can slip
between "nothing new" and "start waiting". A wake-up answers within the reactor turns
it takes to rebuild — there is no poll interval. An answer that stays empty until the
timeout carries the current token (never one behind ``since``).
"""

from __future__ import annotations

import collections
import json
from typing import Any

from twisted.internet import defer

from homeserver.errors import BadJson, InvalidParam, MatrixError
from homeserver.sync.builder import SyncBuilder, SyncRequest
from homeserver.sync.filters import DEFAULT_FILTER, SyncFilter, parse_filter
from homeserver.sync.tokens import StreamToken

_FILTER_CACHE_SIZE = 1000
SET_PRESENCE_VALUES = ("offline", "online", "unavailable")


class Cancellation:
    """Lets the HTTP layer abandon a long-poll when the client goes away."""

    def __init__(self) -> None:
        self.cancelled = False
        #: cancelled because the server stops (the client is still there)
        self.shutdown = False
        self._waiter: defer.Deferred | None = None

    def watch(self, waiter: defer.Deferred) -> None:
        self._waiter = waiter
        if self.cancelled:
            waiter.cancel()

    def cancel(self, *, shutdown: bool = False) -> None:
        self.cancelled = True
        self.shutdown = shutdown
        if self._waiter is not None and not self._waiter.called:
            self._waiter.cancel()


class SyncService:
    def __init__(self, *, builder: SyncBuilder, notifier: Any, presence: Any,
                 store: Any, clock: Any) -> None:
        self._builder = builder
        self._notifier = notifier
        self._presence = presence
        self._store = store
        self._clock = clock
        self._filters: collections.OrderedDict[tuple[str, str], SyncFilter] = \
            collections.OrderedDict()
        #: the long-polls waiting now (ended at shutdown)
        self._waiting: set[Cancellation] = set()

    async def resolve_filter(self, user_id: str, value: str | None) -> SyncFilter:
        """The ``filter`` parameter: inline JSON if it starts with ``{`` (spec), else
        the ID of a filter the user uploaded. Unknown ID: M_INVALID_PARAM (400)."""
        if value is None or value == "":
            return DEFAULT_FILTER
        if value.startswith("{"):
            try:
                body = json.loads(value)
            except ValueError:
                raise BadJson("filter is not valid JSON") from None
            return parse_filter(body)
        key = (user_id, value)
        cached = self._filters.get(key)
        if cached is None:
            stored = await self._store.filters.get_filter(user_id, value)
            if stored is None:
                raise InvalidParam(f"No such filter {value!r}")
            cached = parse_filter(stored)
            self._filters[key] = cached
            while len(self._filters) > _FILTER_CACHE_SIZE:
                self._filters.popitem(last=False)
        self._filters.move_to_end(key)
        return cached

    async def sync(self, req: SyncRequest, *, timeout_ms: int,
                   set_presence: str | None = None,
                   cancellation: Cancellation | None = None) -> dict[str, Any] | None:
        """The response body, or None if the client went away while we waited
        (503 if the server stops meanwhile)."""
        if set_presence is not None and set_presence not in SET_PRESENCE_VALUES:
            raise InvalidParam("set_presence must be offline, online or unavailable")
        cancellation = cancellation or Cancellation()
        await self._presence.connected(req.user_id, set_presence)
        self._waiting.add(cancellation)
        try:
            return await self._sync(req, timeout_ms, cancellation)
        finally:
            self._waiting.discard(cancellation)
            self._presence.disconnected(req.user_id)

    def stop(self) -> None:
        """Server shutdown: end every long-poll (their clients get no answer)."""
        for cancellation in list(self._waiting):
            cancellation.cancel(shutdown=True)

    async def _sync(self, req: SyncRequest, timeout_ms: int,
                    cancellation: Cancellation) -> dict[str, Any] | None:
        # spec: with full_state "the timeout parameter will be ignored"
        if req.since is None or req.full_state or timeout_ms <= 0:
            return (await self._builder.build(req)).body
        deadline = self._clock.seconds() + timeout_ms / 1000.0
        rooms = [m.room_id for m in await self._store.streams.get_rooms_for_user(
            req.user_id)]
        while True:
            remaining_ms = max(0, int((deadline - self._clock.seconds()) * 1000))
            waiter = self._notifier.wait(req.user_id, rooms, remaining_ms)
            if remaining_ms <= 0 or not await self._builder.unchanged_since(req):
                result = await self._builder.build(req)
                if not result.empty or remaining_ms <= 0:
                    _discard(waiter)
                    return result.body
                rooms = list(result.joined_room_ids)
            # else nothing moved since the token: the rooms to watch are as they were
            cancellation.watch(waiter)
            try:
                woken = await waiter
            except defer.CancelledError:
                if cancellation.shutdown:
                    raise MatrixError("The server is shutting down", status=503) from None
                return None
            if not woken:
                return (await self._builder.build(req)).body


def _discard(waiter: defer.Deferred) -> None:
    """Drop a registration we no longer need (cancelling unregisters it)."""
    waiter.addErrback(lambda f: f.trap(defer.CancelledError))
    waiter.cancel()


def parse_since(value: str | None) -> StreamToken | None:
    return None if value is None or value == "" else StreamToken.parse(value)
