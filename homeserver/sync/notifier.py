"""Wakes long-polling /sync requests and WebSocket streams the moment something they
care about happens (DESIGN.md §3: the Notifier).

A listener registers the user it syncs for and the rooms it watches; ``notify_room``
wakes every listener watching that room, ``notify_user`` every listener of that user
(invites, account data, to-device, presence of people they share rooms with is
routed through the rooms). Waking is immediate: no poll interval anywhere.

Woken listeners run in the reactor turn after the change, at most
``WAKE_PER_TURN`` of them per turn (a message to a big room must not hold the reactor
while thousands of answers are built). A woken /sync usually builds its whole answer
in the call that wakes it, and sends it at once (``homeserver.http.server.send_now``).
"""

from __future__ import annotations

import collections
from typing import Any, Callable, Iterable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from homeserver.events.pdu import PDU

log = Logger()

#: woken listeners run per reactor turn, the rest in the next
WAKE_PER_TURN = 32


class _Listener:
    __slots__ = ("user_id", "room_ids", "callback", "fired")

    def __init__(self, user_id: str, room_ids: frozenset[str], callback: Callable[[], None]):
        self.user_id = user_id
        self.room_ids = room_ids
        self.callback = callback
        self.fired = False


class Notifier:
    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._by_user: dict[str, set[_Listener]] = {}
        self._by_room: dict[str, set[_Listener]] = {}
        #: extra callbacks told about every announced room event (push, federation…)
        self._event_observers: list[Callable[[PDU, int], None]] = []
        #: woken listeners' callbacks not run yet, and the call that runs the next
        self._woken: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_call: Any = None

    # -- registration -----------------------------------------------------------------
    def listen(self, user_id: str, room_ids: Iterable[str],
               callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (at most once per registration) on any relevant change.

        Returns a function that unregisters. WebSocket streams re-register after each
        wake with the user's current rooms.
        """
        listener = _Listener(user_id, frozenset(room_ids), callback)
        self._by_user.setdefault(user_id, set()).add(listener)
        for room_id in listener.room_ids:
            self._by_room.setdefault(room_id, set()).add(listener)
        return lambda: self._remove(listener)

    def wait(self, user_id: str, room_ids: Iterable[str], timeout_ms: int) -> defer.Deferred:
        """A Deferred firing True on a relevant change, or False after ``timeout_ms``."""
        def cancelled(_d: defer.Deferred) -> None:
            # the client went away: drop the registration at once
            unregister()
            if timer.active():
                timer.cancel()

        d: defer.Deferred = defer.Deferred(cancelled)

        def woken() -> None:
            if timer.active():
                timer.cancel()
            if not d.called:
                d.callback(True)

        def timed_out() -> None:
            unregister()
            if not d.called:
                d.callback(False)

        unregister = self.listen(user_id, room_ids, woken)
        timer = self._clock.callLater(max(timeout_ms, 0) / 1000.0, timed_out)
        return d

    def add_event_observer(self, observer: Callable[[PDU, int], None]) -> None:
        self._event_observers.append(observer)

    # -- waking -----------------------------------------------------------------------
    def on_room_event(self, event: PDU, stream_pos: int) -> None:
        """RoomListener: a room event is durable and in the room stream.

        Observers hear of it before anyone is woken: a woken /sync runs to its answer
        in this same call when everything it reads is in memory, so what observers keep
        about the event (the push evaluator's pending work, which unread counts wait
        for; typing stopped by a message) must be there already. Before, a long-poll
        woken by a mention answered with the counts from before it, and the room was
        not sent again when they caught up.
        """
        for observer in self._event_observers:
            try:
                observer(event, stream_pos)
            except Exception:
                log.failure("room event observer {observer!r} failed", observer=observer)
        self.notify_room(event.room_id)
        if event.type == "m.room.member" and event.state_key:
            # the target may not be watching the room yet (an invite, a join elsewhere)
            self.notify_user(event.state_key)

    def notify_room(self, room_id: str) -> None:
        self._fire(self._by_room.get(room_id, ()))

    def notify_user(self, user_id: str) -> None:
        self._fire(self._by_user.get(user_id, ()))

    def notify_users(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            self.notify_user(user_id)

    def _fire(self, listeners: Iterable[_Listener]) -> None:
        for listener in list(listeners):
            if not listener.fired:
                listener.fired = True
                self._remove(listener)
                self._woken.append(listener.callback)
        if self._woken and self._wake_call is None:
            self._wake_call = self._clock.callLater(0, self._wake_next)

    def _wake_next(self) -> None:
        self._wake_call = None
        turn = [self._woken.popleft() for _ in range(min(WAKE_PER_TURN, len(self._woken)))]
        if self._woken:  # first: a callback may notify again
            self._wake_call = self._clock.callLater(0, self._wake_next)
        for callback in turn:
            try:
                callback()
            except Exception:
                log.failure("woken listener failed")

    def _remove(self, listener: _Listener) -> None:
        users = self._by_user.get(listener.user_id)
        if users is not None:
            users.discard(listener)
            if not users:
                del self._by_user[listener.user_id]
        for room_id in listener.room_ids:
            rooms = self._by_room.get(room_id)
            if rooms is not None:
                rooms.discard(listener)
                if not rooms:
                    del self._by_room[room_id]

    @property
    def listener_count(self) -> int:
        return sum(len(v) for v in self._by_user.values())
