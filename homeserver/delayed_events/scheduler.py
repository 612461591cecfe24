"""MSC4140 delayed events: scheduling, the management actions, and the timer that
sends them (spec: MSC4140 "Cancellable delayed events").

What is scheduled lives in the global DB (:mod:`homeserver.store.delayed_events`),
never only in memory: one timer is armed at the earliest ``send_ts`` found there, on
start too, so an event that fell due while the server was down goes out right after
it comes back, in the order they fell due. A due event is sent through the room's
actor as its owner, exactly like a client's send (auth rules and rate limits apply
then, not when it was scheduled); an error is recorded on it as a failed outcome.

Messages and ordinary state go out with a transaction ID derived from the delay ID,
so a crash between sending and recording the outcome cannot send one twice: the room
answers the retry with the first event.
"""

from __future__ import annotations

import secrets
from typing import Any, Mapping, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from homeserver.delayed_events import rules
from homeserver.delayed_events.rules import CANCELLED, FAILED, SENT, DelayedEventsConfig
from homeserver.errors import BadJson, InvalidParam, LimitExceeded, MatrixError
from homeserver.events.pdu import PDU
from homeserver.rooms.features.service import Txn
from homeserver.store.delayed_events import DelayedEvent, DelayedEvents, TooManyScheduled

log = Logger()

#: the transaction scope of sends made for delayed events (a client's is its device)
TXN_SCOPE = "delayed_event"
#: state types whose sends need RoomService.set_state's own rules
_SET_STATE_TYPES = frozenset({"m.room.member", "m.room.canonical_alias"})
_DUE_BATCH = 100
_RETRY_AFTER_ERROR_S = 5.0


class RoomSender(Protocol):
    async def send_event(self, room_id: str, sender: str, event_type: str,
                         content: Mapping[str, Any], *, state_key: str | None = None,
                         txn: Txn | None = None, ratelimit: bool = False) -> str: ...

    async def set_state(self, room_id: str, sender: str, event_type: str, state_key: str,
                        content: Mapping[str, Any], *, is_guest: bool = False) -> str: ...


class DelayedEventScheduler:
    def __init__(self, *, store: DelayedEvents, rooms: RoomSender, ratelimiter: Any,
                 clock: Any, now_ms: Any, config: DelayedEventsConfig) -> None:
        self._store = store
        self._rooms = rooms
        self._ratelimiter = ratelimiter
        self._clock = clock
        self._now_ms = now_ms
        self.config = config
        self._call: Any = None
        self._running: defer.Deferred | None = None
        self._again = False
        self._stopped = False
        #: delay_id → fires when the work on it in progress is done (see _exclusive)
        self._busy: dict[str, defer.Deferred] = {}
        #: rooms that may have scheduled delayed state events (never missing one, may
        #: hold stale ones), so that state events elsewhere cost no database read;
        #: complete once loaded from the store at start
        self._state_rooms: set[str] = set()
        self._state_rooms_loaded = False
        #: overwrite checks under way (on_event)
        self._observing: set[defer.Deferred] = set()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Send whatever fell due while we were down, then wait for the next."""
        self._stopped = False
        self._fire()

    def stop(self) -> defer.Deferred:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        return self.when_idle()

    def when_idle(self) -> defer.Deferred:
        """Fires once the timer's run in progress, if any, and every action on a
        delayed event under way are done (stop waits for this; so can tests)."""
        running = [d for d in [self._running, *self._busy.values(), *self._observing]
                   if d is not None]
        return defer.DeferredList(running) if running else defer.succeed(None)

    # -- the client API -----------------------------------------------------------------
    async def schedule(self, *, user_id: str, device_id: str | None, room_id: str,
                       event_type: str, state_key: str | None, content: Any,
                       delay_ms: int, txn_key: str | None = None) -> str:
        """Schedule ``content`` to be sent in ``delay_ms``; returns its ``delay_id``."""
        rules.check_delay(self.config, delay_ms)
        if not isinstance(content, Mapping):
            raise BadJson("content must be an object")
        if not event_type:
            raise BadJson("the event type must not be empty")
        if len(_json_bytes(content)) > rules.MAX_CONTENT_BYTES:
            raise MatrixError("event content too large", errcode="M_TOO_LARGE", status=413)
        self._ratelimiter.check("rc_message", user_id)
        now = self._now_ms()
        event = DelayedEvent(
            delay_id="rsd_" + secrets.token_urlsafe(24), user_id=user_id,
            device_id=device_id, room_id=room_id, event_type=event_type,
            state_key=state_key, content=dict(content), delay_ms=delay_ms,
            scheduled_at=now, send_ts=now + delay_ms)
        # ended events are kept a while (MSC4140 "Retention"); trimmed here, where a
        # user's list grows, not on the timer's path
        await self._store.prune_finalised(user_id, older_than=now - rules.FINALISED_RETENTION_MS,
                                          keep=rules.FINALISED_PER_USER)
        try:
            stored, _new = await self._store.add(event, txn_key=txn_key,
                                                 max_scheduled=self.config.max_per_user)
        except TooManyScheduled as e:
            wait = max(1000, (e.next_send_ts or now) - now)
            raise LimitExceeded(-(-wait // 1000) * 1000,
                                "The maximum number of delayed events has been reached")
        if state_key is not None:
            self._state_rooms.add(room_id)
        self._arm_at(stored.send_ts)
        return stored.delay_id

    async def get(self, user_id: str, delay_id: str) -> dict[str, Any]:
        """``GET /delayed_events/{delay_id}``: the owner's view, scheduled or ended."""
        self._ratelimiter.check("rc_delayed_event_mgmt", user_id)
        event = await self._store.get(delay_id)
        if event is None or event.user_id != user_id:
            raise rules.not_found()
        return rules.to_json(event)

    async def list_for_user(self, user_id: str, status: str | None = None) -> dict[str, Any]:
        """``GET /delayed_events``: the user's scheduled events, soonest first; with
        ``status=finalised`` (an earlier revision's filter) the ended ones instead."""
        self._ratelimiter.check("rc_delayed_event_mgmt", user_id)
        if status == "finalised":
            events = await self._store.finalised_for_user(user_id, rules.FINALISED_PER_USER)
        elif status in (None, "scheduled"):
            events = await self._store.scheduled_for_user(user_id)
        else:
            raise InvalidParam("status must be 'scheduled' or 'finalised'")
        return {"delayed_events": [rules.to_json(e) for e in events]}

    async def act(self, delay_id: str, action: str, *, user_id: str | None,
                  client_ip: str) -> None:
        """``POST /delayed_events/{delay_id}[/{action}]``. With an access token only the
        owner's events are found; without one the delay ID is the capability (as
        Synapse 1.163 serves it, so that a service holding it, such as an SFU, can
        restart or send it for a client), rate limited by address."""
        action = rules.parse_action(action)
        self._ratelimiter.check("rc_delayed_event_mgmt", user_id or client_ip)
        await self._exclusive(delay_id, lambda: self._act(delay_id, action, user_id))

    async def _act(self, delay_id: str, action: str, user_id: str | None) -> None:
        if action == "restart":  # the keep-alive: one round trip when all is well
            restarted = await self._store.restart(delay_id, self._now_ms(), owner=user_id)
            if restarted is not None:
                self._arm_at(restarted.send_ts)
                return
        event = await self._store.get(delay_id)
        if event is None or user_id is not None and event.user_id != user_id:
            raise rules.not_found()
        if not event.scheduled:
            rules.answer_on_finalised(action, event.outcome)
        elif action == "cancel":
            await self._finish(event, CANCELLED)
        elif action == "send":
            # errors go to the client and the event stays scheduled (MSC4140)
            event_id = await self._deliver(event)
            await self._finish(event, SENT, event_id=event_id)

    async def _exclusive(self, delay_id: str, work: Any) -> Any:
        """Run ``work()`` while nothing else (the timer, another action, a cancelling
        state event) touches this delayed event; each re-reads the row inside, so a
        cancel can never land while the timer is sending the same event."""
        while delay_id in self._busy:
            await self._busy[delay_id]
        done: defer.Deferred = defer.Deferred()
        self._busy[delay_id] = done
        try:
            return await work()
        finally:
            del self._busy[delay_id]
            done.callback(None)

    # -- state overwritten by someone else ----------------------------------------------
    def on_event(self, event: PDU, _stream_pos: int) -> None:
        """Notifier observer: a state event cancels other users' scheduled delayed
        events for the same state, which would otherwise undo it later. The sender's
        own stay: a MatrixRTC client schedules its leave *before* it posts its join."""
        if not event.is_state() or self._stopped:
            return
        if self._state_rooms_loaded and event.room_id not in self._state_rooms:
            return
        work = defer.ensureDeferred(self._cancel_overwritten(event))
        self._observing.add(work)
        work.addErrback(lambda f: log.failure("cancelling overwritten delayed events", f))
        work.addBoth(lambda _: self._observing.discard(work))

    async def _cancel_overwritten(self, event: PDU) -> None:
        for delay_id in await self._store.scheduled_state_of_others(
                event.room_id, event.type, event.state_key, event.sender):
            await self._exclusive(delay_id, lambda d=delay_id: self._store.finalise(
                d, FAILED, self._now_ms(), error=rules.cancelled_by_state_update()))

    # -- the timer ----------------------------------------------------------------------
    def _arm_at(self, send_ts: int) -> None:
        """Make sure the timer fires no later than ``send_ts``."""
        if self._stopped:
            return
        delay_s = max(0, send_ts - self._now_ms()) / 1000
        if self._call is not None and self._call.active():
            if self._call.getTime() <= self._clock.seconds() + delay_s:
                return
            self._call.reset(delay_s)
        else:
            self._call = self._clock.callLater(delay_s, self._fire)

    def _fire(self) -> None:
        self._call = None
        if self._running is not None:
            self._again = True
            return
        self._running = defer.ensureDeferred(self._send_all_due())
        self._running.addBoth(self._done_running)

    def _done_running(self, result: Any) -> None:
        self._running = None
        if self._again and not self._stopped:
            self._again = False
            self._fire()

    async def _send_all_due(self) -> None:
        try:
            if not self._state_rooms_loaded:
                self._state_rooms |= set(await self._store.rooms_with_scheduled_state())
                self._state_rooms_loaded = True
            while not self._stopped:
                self._again = False
                due = await self._store.due(self._now_ms(), _DUE_BATCH)
                if not due:
                    break
                # in due order per sender and room, senders and rooms side by side
                # (so that a room's actor commits a burst of leaves together)
                chains: dict[tuple[str, str], list[str]] = {}
                for event in due:
                    chains.setdefault((event.room_id, event.user_id), []).append(
                        event.delay_id)
                await defer.gatherResults(
                    [defer.ensureDeferred(self._send_chain(c)) for c in chains.values()],
                    consumeErrors=True)
            if self._stopped:
                return
            following = await self._store.next_send_ts()
        except Exception:
            if self._stopped:
                return
            log.failure("sending due delayed events")
            if not self._stopped:
                self._call = self._clock.callLater(_RETRY_AFTER_ERROR_S, self._fire)
            return
        if following is not None:
            self._arm_at(following)

    async def _send_chain(self, delay_ids: list[str]) -> None:
        for delay_id in delay_ids:
            if not self._stopped:
                await self._exclusive(delay_id, lambda d=delay_id: self._send_due(d))

    async def _send_due(self, delay_id: str) -> None:
        event = await self._store.get(delay_id)
        if event is None or not event.scheduled or event.send_ts > self._now_ms():
            return  # cancelled, sent or restarted while it waited its turn
        try:
            event_id = await self._deliver(event)
        except MatrixError as e:
            await self._finish(event, FAILED, error=e.to_json())
        except Exception:
            log.failure("sending delayed event {delay_id}", delay_id=event.delay_id)
            await self._finish(event, FAILED, error={"errcode": "M_UNKNOWN",
                                                     "error": "Internal server error"})
        else:
            await self._finish(event, SENT, event_id=event_id)

    async def _deliver(self, event: DelayedEvent) -> str:
        """Send it into its room as its owner, through the room's actor."""
        if event.state_key is not None and event.event_type in _SET_STATE_TYPES:
            self._ratelimiter.check("rc_message", event.user_id)
            return await self._rooms.set_state(event.room_id, event.user_id,
                                               event.event_type, event.state_key,
                                               event.content)
        return await self._rooms.send_event(
            event.room_id, event.user_id, event.event_type, event.content,
            state_key=event.state_key, txn=Txn(TXN_SCOPE, event.delay_id), ratelimit=True)

    async def _finish(self, event: DelayedEvent, outcome: str, **details: Any) -> None:
        await self._store.finalise(event.delay_id, outcome, self._now_ms(), **details)


def _json_bytes(content: Mapping[str, Any]) -> bytes:
    import json

    try:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        raise BadJson("content is not valid JSON") from None
