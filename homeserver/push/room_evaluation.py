"""Push rule evaluation of every committed event, per room, in order (spec:
Client-Server API, "Push Notifications": the homeserver evaluates each event against
each recipient's rules).

Where: an observer of the room's committed events. The actor tells its listener
about each event in room order once it is durable and announced; this observer
queues it and one worker per room evaluates the queue in that order, off the write
path: the room's inbox never waits for rule evaluation, the global-DB write of the
notifications or a push gateway. The outcome goes at once to the ``on_evaluated``
observers (the unread counter keeps it in memory until it is stored), then to the
global DB (a room's writes in order, in the background), then to the ``on_stored``
observers (push delivery). /sync asks :meth:`caught_up` before counting, so a client
that hears of an event also sees the counts it causes, without waiting for the DB.

Who: every joined local member except the sender, and the invited user of an invite
(``.m.rule.invite_for_me`` is for them). With what: the room's current member count,
power levels and each recipient's display name, read from the awake actor.
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterable, Mapping

from twisted.internet import defer
from twisted.logger import Logger

from homeserver.events.pdu import PDU
from homeserver.push.evaluator import RoomFacts, SharedEvaluation
from homeserver.push.rules_service import DefaultRuleset
from homeserver.rooms.actor.memory import compact
from homeserver.rooms.rules import power_levels
from homeserver.store.notifications import Notification

log = Logger()

MEMBER = "m.room.member"
_STATE_KEYS = [(MEMBER, None), ("m.room.power_levels", ""), ("m.room.create", "")]
#: rooms whose members and power levels stay cached between their events
_CONTEXTS = 1000
#: progress is written at most this often (a crash re-evaluates at most this much)
_FLUSH_SECONDS = 5.0
#: events evaluated after a restart, per room at most
_MAX_CATCH_UP = 1000


def thread_of(event: Mapping[str, Any]) -> str | None:
    """The thread root an event belongs to (spec: "Threading"), or None (main)."""
    content = event.get("content")
    relates = content.get("m.relates_to") if isinstance(content, Mapping) else None
    if isinstance(relates, Mapping) and relates.get("rel_type") == "m.thread" and \
            isinstance(relates.get("event_id"), str):
        return relates["event_id"]
    return None


def _notification_levels(state: Mapping) -> dict[str, int]:
    levels = {"room": power_levels.notification_level(state, "room")}
    pl = state.get(("m.room.power_levels", ""))
    extra = pl.content.get("notifications") if pl is not None else None
    if isinstance(extra, Mapping):
        for key in extra:
            if isinstance(key, str):
                levels[key] = power_levels.notification_level(state, key)
    return levels


class _RoomContext:
    """What evaluation needs of a room's current state."""

    def __init__(self, state: Mapping, suffix: str) -> None:
        members = {k: e for (t, k), e in state.items() if t == MEMBER}
        joined = [u for u, e in members.items() if e.membership == "join"]
        self.member_count = len(joined)
        self.local_joined = [u for u in joined if u.endswith(suffix)]
        self.names: dict[str, str | None] = {}
        for user_id in self.local_joined:
            name = members[user_id].content.get("displayname")
            self.names[user_id] = name if isinstance(name, str) else None
        # power levels read from the create and power_levels events only
        self.state = {k: e for k, e in state.items() if k[0] != MEMBER}
        self.notification_levels = _notification_levels(self.state)


class RoomPushEvaluator:
    def __init__(self, *, rooms: Any, push_rules: Any, notifications: Any,
                 server_name: str, now_ms: Callable[[], int], progress: Any = None,
                 clock: Any = None) -> None:
        """``push_rules``: the PushRulesService; ``notifications``:
        ``store.notifications``; ``progress``: ``store.push_progress`` and ``clock``
        (for flushing it) to evaluate after a restart what a crash left out."""
        self._progress = progress
        self._clock = clock
        #: rooms whose stored progress was checked by this process (a room leaves it
        #: when it hibernates with nothing pending here, see room_hibernated)
        self._known: set[str] = set()
        #: hibernated rooms to leave ``_known`` once nothing of them is pending
        self._forget_later: set[str] = set()
        #: room → highest seq whose notifications are stored, not yet flushed
        self._dirty: dict[str, int] = {}
        #: the progress being flushed now
        self._flushing: dict[str, int] = {}
        self._flush_call: Any = None
        #: room → seq to catch up to, for a worker started by caught_up
        self._recover_upto: dict[str, int] = {}
        self._rooms = rooms
        self._push_rules = push_rules
        self._notifications = notifications
        self._suffix = ":" + server_name
        self._now_ms = now_ms
        self._on_evaluated: list[Callable[[list[Notification]], Any]] = []
        self._on_stored: list[Callable[[list[Notification], PDU], Any]] = []
        self._on_redacted: list[Callable[[str, str], Any]] = []
        #: room → members and power levels (see _context)
        self._contexts: collections.OrderedDict[str, _RoomContext] = \
            collections.OrderedDict()
        #: room → the write of its latest notifications (writes of a room chain)
        self._writes: dict[str, defer.Deferred] = {}
        self._queues: dict[str, collections.deque[tuple[PDU, int]]] = {}
        #: room → Deferreds waiting for the queue to pass a seq
        self._waiters: dict[str, list[tuple[int, defer.Deferred]]] = {}
        #: room → the seq being evaluated (its queue is empty then)
        self._current: dict[str, int] = {}
        self._stopped = False

    # -- the observer -----------------------------------------------------------------
    def on_room_event(self, event: PDU, stream_pos: int) -> None:
        """Notifier observer: queue a committed event of its room."""
        if self._stopped:
            return
        queue = self._queues.get(event.room_id)
        if queue is None:
            queue = self._queues[event.room_id] = collections.deque()
            queue.append((event, stream_pos))
            self._start(event.room_id)
        else:
            queue.append((event, stream_pos))

    def _start(self, room_id: str) -> None:
        defer.ensureDeferred(self._work(room_id)).addErrback(
            lambda f: log.failure("push evaluation of {room}", f, room=room_id))

    def _needs_recovery(self, room_id: str) -> bool:
        return self._progress is not None and room_id not in self._known

    def caught_up(self, room_id: str, seq: int) -> defer.Deferred:
        """Fires once every queued event of the room up to ``seq`` is evaluated (and,
        the first time this process sees the room, what a crash left unevaluated)."""
        if self._needs_recovery(room_id) and room_id not in self._queues:
            self._queues[room_id] = collections.deque()
            self._recover_upto[room_id] = seq
            self._current[room_id] = 0
            self._start(room_id)
        if self._pending_upto(room_id) > seq or room_id not in self._queues:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._waiters.setdefault(room_id, []).append((seq, d))
        return d

    def _pending_upto(self, room_id: str) -> int:
        """The lowest seq not yet evaluated (a huge number if none is pending)."""
        queue = self._queues.get(room_id)
        lowest = [self._current[room_id]] if room_id in self._current else []
        if queue:
            lowest.append(queue[0][0].internal_metadata.get("seq", 0))
        return min(lowest) if lowest else 2 ** 62

    def stop(self) -> defer.Deferred:
        """Stop evaluating; the returned Deferred fires once progress is flushed."""
        self._stopped = True
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        return defer.ensureDeferred(self._flush())

    # -- the worker -------------------------------------------------------------------
    async def _work(self, room_id: str) -> None:
        queue = self._queues[room_id]
        try:
            if self._needs_recovery(room_id):
                self._current[room_id] = 0
                upto = queue[0][0].internal_metadata.get("seq", 0) - 1 if queue \
                    else self._recover_upto.pop(room_id, 0)
                try:
                    await self._recover(room_id, upto)
                except Exception as e:
                    if self._stopped:
                        log.info("push catch-up of {room} stopped: {e!r}", room=room_id, e=e)
                    else:
                        log.failure("push catch-up of {room}", room=room_id)
                del self._current[room_id]
                self._wake(room_id)
            while queue and not self._stopped:
                event, stream_pos = queue.popleft()
                self._current[room_id] = event.internal_metadata.get("seq", 0)
                await self._handle(room_id, event, stream_pos)
                del self._current[room_id]
                self._wake(room_id)
        finally:
            del self._queues[room_id]
            self._current.pop(room_id, None)
            self._recover_upto.pop(room_id, None)
            self._wake(room_id)

    async def _handle(self, room_id: str, event: PDU, stream_pos: int) -> None:
        try:
            found = await self._evaluate(event, stream_pos)
        except Exception as e:
            # one event's failure must not stop the room's later ones
            if self._stopped:  # shutting down: the rooms refuse (re-evaluated at start)
                log.info("push evaluation of {event_id} stopped: {e!r}",
                         event_id=event.event_id, e=e)
                return
            log.failure("push evaluation of {event_id}", event_id=event.event_id)
            found = []
        if found:
            for observer in self._on_evaluated:
                observer(found)
            # rows of other events need no order among themselves: they join the
            # gathering batch at once, behind the room's earlier writes in it
            self._chain(room_id, event, self._write(found, event), after_previous=False)
        if event.type == "m.room.redaction" and event.redacts:
            self._redacted(room_id, event)
        self._mark(room_id, event.internal_metadata.get("seq", 0))

    # -- progress (see homeserver/store/push_progress.py) ------------------------------
    async def _recover(self, room_id: str, upto: int) -> None:
        """Evaluate the room's announced events after its stored progress, up to
        ``upto``: those a crash left out (at most the newest _MAX_CATCH_UP)."""
        self._known.add(room_id)
        stored = await self._progress.get(room_id)
        if stored is None or stored >= upto:
            return  # a room new to push evaluation starts with its next event
        missing = await self._progress.announced_after(room_id, stored, upto,
                                                        _MAX_CATCH_UP)
        if not missing:
            return
        actor = await self._rooms.get(room_id)
        events = await actor.get_events([event_id for _, event_id, _ in missing])
        for _, event_id, stream_pos in missing:
            if event_id in events:
                await self._handle(room_id, events[event_id], stream_pos)

    def _mark(self, room_id: str, seq: int) -> None:
        """Record ``seq`` as evaluated once the room's earlier writes are stored."""
        if self._progress is None:
            return
        self._known.add(room_id)
        in_flight = self._writes.get(room_id)
        if in_flight is None:
            self._note_progress(room_id, seq)
        else:
            in_flight.addBoth(lambda result: (self._note_progress(room_id, seq), result)[1])

    def _note_progress(self, room_id: str, seq: int) -> None:
        self._dirty[room_id] = max(seq, self._dirty.get(room_id, 0))
        if self._flush_call is None and self._clock is not None and not self._stopped:
            self._flush_call = self._clock.callLater(_FLUSH_SECONDS, self._flush_later)

    def _flush_later(self) -> None:
        self._flush_call = None
        defer.ensureDeferred(self._flush())

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return
        self._flushing = dirty
        try:
            await self._progress.set_many(dirty)
        except Exception as e:
            # at shutdown the DB may stop first: the next start re-evaluates (harmless)
            log.info("push evaluation progress not stored: {e!r}", e=e)
            for room_id, seq in dirty.items():
                self._dirty[room_id] = max(seq, self._dirty.get(room_id, 0))
        finally:
            self._flushing = {}
        for room_id in [r for r in self._forget_later if not self._pending(r)]:
            self._forget_later.discard(room_id)
            self._forget(room_id)

    def _wake(self, room_id: str) -> None:
        waiting = self._waiters.get(room_id)
        if not waiting:
            return
        done_below = self._pending_upto(room_id) if room_id in self._queues else 2 ** 62
        keep = []
        for seq, d in waiting:
            if seq < done_below:
                d.callback(None)
            else:
                keep.append((seq, d))
        if keep:
            self._waiters[room_id] = keep
        else:
            del self._waiters[room_id]

    async def _context(self, event: PDU) -> "_RoomContext":
        """The room's members and power levels, read once and reused until the room's
        next state event (reading every member per message was most of the cost)."""
        room_id = event.room_id
        if event.is_state():
            self._contexts.pop(room_id, None)
        context = self._contexts.get(room_id)
        if context is None:
            actor = await self._rooms.get(room_id)
            state = await actor.current_state(_STATE_KEYS)
            context = _RoomContext(state, self._suffix)
            self._contexts[room_id] = context
            while len(self._contexts) > _CONTEXTS:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(room_id)
        return context

    async def _evaluate(self, event: PDU, stream_pos: int) -> list[Notification]:
        """The notifications ``event`` causes."""
        if event.internal_metadata.get("outlier"):
            return []
        context = await self._context(event)
        recipients = [u for u in context.local_joined if u != event.sender]
        if event.type == MEMBER and event.membership == "invite" and \
                event.state_key.endswith(self._suffix) and event.state_key not in recipients:
            recipients.append(event.state_key)
        if not recipients:
            return []
        facts = RoomFacts(
            member_count=context.member_count,
            sender_power_level=power_levels.user_power_level(event.sender, context.state),
            notification_levels=context.notification_levels)
        rules = await self._push_rules.rulesets(recipients)
        as_dict = event.get_dict()
        thread = thread_of(as_dict)
        seq, ts = event.internal_metadata.get("seq", 0), self._now_ms()
        found = []
        shared = SharedEvaluation(as_dict, facts)
        actions: dict[int, list] = {}  # one list per distinct outcome, shared by rows
        for user_id in recipients:
            result = shared.outcome(rules[user_id], user_id, context.names.get(user_id),
                                    default_rules=isinstance(rules[user_id], DefaultRuleset))
            if result.notify:
                listed = actions.get(id(result))
                if listed is None:
                    listed = actions[id(result)] = list(result.actions)
                found.append(Notification(user_id, event.room_id, seq, event.event_id,
                                          stream_pos, thread, result.highlight, listed, ts))
        return found

    async def _write(self, found: list[Notification], event: PDU) -> None:
        try:
            await self._notifications.add(found)
        except Exception as e:
            if self._stopped:  # the DB stopped first: re-evaluated at the next start
                log.info("notifications of {id} not stored: {e!r}", id=event.event_id, e=e)
            else:
                log.failure("storing notifications of {e}", e=event.event_id)
            return
        for observer in self._on_stored:
            observer(found, event)

    def _redacted(self, room_id: str, redaction: PDU) -> None:
        """A redacted event notifies no more (as Synapse): forget its notifications
        in the counts at once, and in the DB after its own write (same chain)."""
        event_id = redaction.redacts
        for observer in self._on_redacted:
            observer(room_id, event_id)

        async def delete() -> None:
            try:
                await self._notifications.remove_event(room_id, event_id)
            except Exception as e:
                if self._stopped:
                    log.info("notifications of {id} not removed: {e!r}", id=event_id, e=e)
                else:
                    log.failure("removing notifications of {e}", e=event_id)

        self._chain(room_id, redaction, delete())

    def _chain(self, room_id: str, event: PDU, step: Any, *,
               after_previous: bool = True) -> None:
        """Run the coroutine ``step`` after the room's previous DB steps (in order),
        or at once (``after_previous=False``: new rows, which the database's gathered
        batch writes in call order anyway). The room's entry in ``_writes`` fires once
        every step so far is done. Steps never fail (they log)."""
        previous = self._writes.get(room_id)
        if not after_previous:
            step = defer.ensureDeferred(step)   # under way now

        async def run() -> None:
            if previous is not None:
                await previous
            await step

        d = defer.ensureDeferred(run())
        self._writes[room_id] = d

        def written(_: Any) -> None:
            if self._writes.get(room_id) is d:
                del self._writes[room_id]

        d.addBoth(written)

    def compact(self) -> None:
        """Shrink the per-room maps to what they hold now (a memory releaser: after
        a burst of rooms they keep the size of its peak, see rooms/actor/memory.py)."""
        compact(self._known, self._forget_later, self._dirty, self._recover_upto,
                self._contexts, self._writes, self._queues, self._waiters, self._current)

    def room_hibernated(self, room_id: str) -> None:
        """The room left memory: so do its members and power levels (read again from
        its DB when its next event comes) and, once its progress is stored and nothing
        of it is pending here, the note that its stored progress was checked (checked
        again, one global-DB read, when it next has an event or a sync waits on it).
        That note was the last thing every room ever evaluated left in memory: 2,000
        room IDs made during a burst of rooms kept ~10 of the burst's allocator arenas
        resident (bench/README.md, "Memory at rest")."""
        self._contexts.pop(room_id, None)
        if room_id not in self._known:
            return
        if self._pending(room_id):
            self._forget_later.add(room_id)   # at the end of the next flush
        else:
            self._forget(room_id)

    def _forget(self, room_id: str) -> None:
        self._known.discard(room_id)
        if self._progress is not None:
            self._progress.forget(room_id)

    def _pending(self, room_id: str) -> bool:
        """Whether this evaluator holds anything of the room not yet stored: queued or
        running evaluation, waiters, notifications or progress being written."""
        return any(room_id in held for held in (
            self._dirty, self._flushing, self._writes, self._queues, self._current,
            self._recover_upto, self._waiters))

    def add_observer(self, *, evaluated: Callable[[list[Notification]], Any] | None = None,
                     stored: Callable[[list[Notification], PDU], Any] | None = None,
                     redacted: Callable[[str, str], Any] | None = None) -> None:
        """``evaluated(found)``: at once, in room order; ``stored(found, event)``:
        once the notifications are in the global DB; ``redacted(room_id, event_id)``:
        that event's notifications no longer count."""
        if evaluated is not None:
            self._on_evaluated.append(evaluated)
        if stored is not None:
            self._on_stored.append(stored)
        if redacted is not None:
            self._on_redacted.append(redacted)

