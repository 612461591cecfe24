"""Delivery of notifications to HTTP push gateways (spec: Push Gateway API,
``POST /_matrix/push/v1/notify``; Client-Server API, "Push Notifications", "HTTP
notification protocol").

Each pusher has its own queue and worker, so a slow or failing gateway delays only its
own pushes and never a room or another user. A failed attempt (network error, or an
answer other than 2xx) is retried after 1, 2, 4 … seconds (at most
:data:`MAX_BACKOFF`); after :data:`MAX_ATTEMPTS` the notification is dropped (the
gateway is told of the next one, whose counts are current). Pushkeys the gateway
answers as ``rejected`` lose their pusher (spec: the homeserver must stop sending).

The HTTP client (``post(url, body) -> (status, json)``) and the clock are injected;
:func:`treq_post` is the real one.
"""

from __future__ import annotations

import collections
from typing import Any, Awaitable, Callable, Mapping, Sequence

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from homeserver.events.pdu import PDU
from homeserver.http.outbound import AddressPolicy, FilteringReactor
from homeserver.store.notifications import Notification
from homeserver.store.pushers import Pusher

log = Logger()

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0
MAX_ATTEMPTS = 10
#: pending pushes kept per pusher while its gateway is down (oldest dropped first)
MAX_QUEUE = 100
_HIGH_PRIORITY_TYPES = frozenset({"m.room.encrypted", "m.call.invite"})

Post = Callable[[str, Mapping[str, Any]], Awaitable[tuple[int, Any]]]


def tweaks_of(actions: Sequence[Any]) -> dict[str, Any]:
    """The ``set_tweak`` actions as a dict (``highlight`` defaults to true)."""
    tweaks: dict[str, Any] = {}
    for action in actions:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            tweaks[action["set_tweak"]] = action.get(
                "value", True if action["set_tweak"] == "highlight" else None)
    return {k: v for k, v in tweaks.items() if v is not None}


def notification_body(event: PDU, pusher: Pusher, actions: Sequence[Any], unread: int,
                      *, sender_display_name: str | None,
                      room_name: str | None) -> dict[str, Any]:
    """The ``notification`` a gateway receives (Push Gateway API, ``/notify``)."""
    tweaks = tweaks_of(actions)
    data = {k: v for k, v in pusher.data.items() if k != "url"}
    device = {"app_id": pusher.app_id, "pushkey": pusher.pushkey,
              "pushkey_ts": pusher.pushkey_ts // 1000, "data": data, "tweaks": tweaks}
    high = event.type in _HIGH_PRIORITY_TYPES or bool(tweaks.get("highlight")) \
        or "sound" in tweaks
    note: dict[str, Any] = {"event_id": event.event_id, "room_id": event.room_id,
                            "counts": {"unread": unread}, "devices": [device],
                            "prio": "high" if high else "low"}
    if pusher.data.get("format") != "event_id_only":
        note.update({"type": event.type, "sender": event.sender,
                     "content": dict(event.content)})
        if sender_display_name:
            note["sender_display_name"] = sender_display_name
        if room_name:
            note["room_name"] = room_name
        if event.type == "m.room.member" and event.state_key is not None:
            note["user_is_target"] = event.state_key == pusher.user_id
    return {"notification": note}


class PushDelivery:
    def __init__(self, *, pushers: Any, clock: IReactorTime, post: Post,
                 unread_count: Callable[[str], Awaitable[int]],
                 describe: Callable[[PDU], Awaitable[tuple[str | None, str | None]]]
                 ) -> None:
        """``pushers``: ``store.pushers``; ``unread_count(user)``: the badge count;
        ``describe(event)``: (sender display name, room name)."""
        self._pushers = pushers
        self._clock = clock
        self._post = post
        self._unread_count = unread_count
        self._describe = describe
        self._queues: dict[tuple[str, str, str], collections.deque] = {}
        self._running: set[tuple[str, str, str]] = set()
        #: room → the dispatch of its latest notified event (see on_notified)
        self._dispatching: dict[str, defer.Deferred] = {}
        self._stopped = False
        #: for tests and metrics: pushes given up after MAX_ATTEMPTS
        self.dropped = 0

    def on_notified(self, found: list[Notification], event: PDU) -> None:
        """Evaluator observer: push the event to the notified users' gateways. A
        room's events are dispatched one after the other, so they reach each pusher's
        queue in room order."""
        if self._stopped:
            return
        room_id = event.room_id
        previous = self._dispatching.get(room_id)

        async def dispatch() -> None:
            if previous is not None:
                await previous
            await self._dispatch(found, event)

        d = defer.ensureDeferred(dispatch()).addErrback(self._failed, event.event_id)
        self._dispatching[room_id] = d

        def finished(_: Any) -> None:
            if self._dispatching.get(room_id) is d:
                del self._dispatching[room_id]

        d.addBoth(finished)

    def stop(self) -> None:
        self._stopped = True

    def _failed(self, failure: Any, event_id: str) -> None:
        if self._stopped:  # shutting down: the DB may have stopped first
            log.info("push dispatch of {e} stopped: {f}", e=event_id, f=failure.value)
        else:
            log.failure("push dispatch of {e}", failure, e=event_id)

    async def _dispatch(self, found: list[Notification], event: PDU) -> None:
        pushers = await self._pushers.for_users([n.user_id for n in found])
        if not pushers:
            return
        by_user = {n.user_id: n for n in found}
        sender_name, room_name = await self._describe(event)
        badges: dict[str, int] = {}
        for pusher in pushers:
            n = by_user[pusher.user_id]
            if pusher.user_id not in badges:
                badges[pusher.user_id] = await self._unread_count(pusher.user_id)
            body = notification_body(event, pusher, n.actions, badges[pusher.user_id],
                                     sender_display_name=sender_name, room_name=room_name)
            self._enqueue(pusher, body)

    def _enqueue(self, pusher: Pusher, body: dict[str, Any]) -> None:
        key = (pusher.user_id, pusher.app_id, pusher.pushkey)
        queue = self._queues.setdefault(key, collections.deque())
        queue.append((pusher, body))
        while len(queue) > MAX_QUEUE:
            queue.popleft()
            self.dropped += 1
        if key not in self._running:
            self._running.add(key)
            defer.ensureDeferred(self._work(key)).addErrback(
                lambda f: log.failure("push worker", f))

    async def _work(self, key: tuple[str, str, str]) -> None:
        queue = self._queues[key]
        try:
            while queue and not self._stopped:
                pusher, body = queue[0]
                if await self._send(pusher, body):
                    if queue and queue[0][1] is body:
                        queue.popleft()
                else:
                    queue.clear()  # the pusher is gone: nothing more for it
        finally:
            self._running.discard(key)
            if not queue:
                self._queues.pop(key, None)

    async def _send(self, pusher: Pusher, body: dict[str, Any]) -> bool:
        """Deliver one push with retries; False if the pusher was rejected."""
        delay = FIRST_BACKOFF
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                status, answer = await self._post(pusher.data["url"], body)
            except Exception as e:  # network errors, timeouts: retried
                status, answer = 0, None
                log.info("push to {url} failed: {e}", url=pusher.data.get("url"), e=e)
            if 200 <= status < 300:
                rejected = answer.get("rejected") if isinstance(answer, dict) else None
                if isinstance(rejected, list) and pusher.pushkey in rejected:
                    await self._pushers.delete(pusher.user_id, pusher.app_id,
                                               pusher.pushkey)
                    return False
                return True
            if attempt == MAX_ATTEMPTS or self._stopped:
                break
            await task.deferLater(self._clock, delay, lambda: None)
            delay = min(delay * 2, MAX_BACKOFF)
        self.dropped += 1
        log.warn("giving up a push to {url} after {n} attempts",
                 url=pusher.data.get("url"), n=MAX_ATTEMPTS)
        return True


def treq_post(reactor: Any, policy: AddressPolicy, timeout: float = 30.0,
              pool: Any = None) -> Post:
    """The real gateway client: treq over the reactor, JSON in and out. treq (and
    with it TLS) loads on the first push, not at start (see homeserver/reactor.py).
    A gateway whose address ``policy`` blocks (private and loopback ranges unless
    ``ip_range_whitelist`` allows them) is never connected to: the attempt fails
    like a name that does not resolve, and is retried and dropped like any other."""
    clients: list[Any] = []

    async def post(url: str, body: Mapping[str, Any]) -> tuple[int, Any]:
        import treq
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool

        if not clients:
            agent = Agent(FilteringReactor(reactor, policy),
                          pool=pool if pool is not None else HTTPConnectionPool(reactor))
            clients.append(HTTPClient(agent))
        response = await clients[0].post(url, json=dict(body), timeout=timeout)
        try:
            answer = await treq.json_content(response)
        except Exception:
            answer = None
        return response.code, answer

    return post
