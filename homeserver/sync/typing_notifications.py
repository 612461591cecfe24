"""Typing notifications (spec: Client-Server API, "Typing Notifications").

Who is typing where lives in memory only: it is worthless after a few seconds, so
it is never written to the database. Each change (start, stop, expiry) takes the next
position of an in-memory counter; /sync's token carries that position so an
incremental sync sends ``m.typing`` for exactly the rooms whose typing set changed.

The counter starts at the clock's milliseconds when the server starts, so a token
from before a restart is always behind the new counter (and is answered with the
typing state of every room where someone types now), never ahead of it.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from homeserver.errors import Forbidden

#: a client may ask for any timeout; we keep it typing at most this long
MAX_TIMEOUT_MS = 120_000
DEFAULT_TIMEOUT_MS = 30_000

MembershipLookup = Callable[[str, str], Awaitable["str | None"]]


class TypingNotifications:
    def __init__(self, clock: IReactorTime, notify_room: Callable[[str], None], *,
                 membership: MembershipLookup | None = None) -> None:
        """``notify_room(room_id)`` wakes the room's syncs; ``membership(room, user)``
        answers the user's membership (to refuse non-members)."""
        self._clock = clock
        self._notify_room = notify_room
        self._membership = membership
        self._start = int(clock.seconds() * 1000)
        self._serial = self._start
        #: room_id → user_id → the timer that ends their typing
        self._typing: dict[str, dict[str, IDelayedCall]] = {}
        #: room_id → serial of its last change
        self._changed_at: dict[str, int] = {}
        self._observers: list[Callable[[str, str, bool], None]] = []

    def add_observer(self, observer: Callable[[str, str, bool], None]) -> None:
        """Call ``observer(room_id, user_id, typing)`` on every start and stop (the
        federation sender tells other servers of local users' typing)."""
        self._observers.append(observer)

    @property
    def position(self) -> int:
        return self._serial

    # -- the client API ---------------------------------------------------------------
    async def set_typing(self, requester: str, user_id: str, room_id: str,
                         typing: bool, timeout_ms: int | None = None) -> None:
        """``PUT /rooms/{roomId}/typing/{userId}``: only for oneself, only as a member."""
        if requester != user_id:
            raise Forbidden("Cannot set another user's typing state")
        if self._membership is not None and \
                await self._membership(room_id, user_id) != "join":
            raise Forbidden("You are not in this room")
        if typing:
            self.started_typing(room_id, user_id,
                                DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms)
        else:
            self.stopped_typing(room_id, user_id)

    # -- state changes ----------------------------------------------------------------
    def started_typing(self, room_id: str, user_id: str, timeout_ms: int) -> None:
        timeout = max(0, min(int(timeout_ms), MAX_TIMEOUT_MS)) / 1000.0
        users = self._typing.setdefault(room_id, {})
        timer = users.get(user_id)
        if timer is not None and timer.active():
            # already typing: only the expiry moves, nobody needs to hear about it
            timer.reset(timeout)
            return
        users[user_id] = self._clock.callLater(timeout, self._expire, room_id, user_id)
        self._changed(room_id, user_id, True)

    def stopped_typing(self, room_id: str, user_id: str) -> None:
        users = self._typing.get(room_id)
        timer = users.pop(user_id, None) if users else None
        if timer is None:
            return
        if timer.active():
            timer.cancel()
        if not users:
            del self._typing[room_id]
        self._changed(room_id, user_id, False)

    def _expire(self, room_id: str, user_id: str) -> None:
        users = self._typing.get(room_id)
        if users is None or user_id not in users:
            return
        del users[user_id]
        if not users:
            del self._typing[room_id]
        self._changed(room_id, user_id, False)

    def _changed(self, room_id: str, user_id: str, typing: bool) -> None:
        self._serial += 1
        self._changed_at[room_id] = self._serial
        self._notify_room(room_id)
        for observer in self._observers:
            observer(room_id, user_id, typing)

    def on_room_event(self, event: Any, stream_pos: int) -> None:
        """Notifier observer: someone who leaves a room stops typing in it."""
        if event.type == "m.room.member" and event.state_key \
                and event.membership != "join":
            self.stopped_typing(event.room_id, event.state_key)

    # -- reads (for /sync) ------------------------------------------------------------
    def typing_users(self, room_id: str) -> list[str]:
        return sorted(self._typing.get(room_id, ()))

    def event_for(self, room_id: str) -> dict[str, Any]:
        return {"type": "m.typing", "content": {"user_ids": self.typing_users(room_id)}}

    def rooms_changed(self, since: int | None, room_ids: Iterable[str],
                      upto: int | None = None) -> list[str]:
        """Of ``room_ids``, those whose typing set changed in (since, upto].

        ``since`` None (an initial sync) or from before this process started: the
        rooms where someone is typing now.
        """
        upto = self._serial if upto is None else upto
        if since is None or since < self._start or since > self._serial:
            return [r for r in room_ids if r in self._typing]
        return [r for r in room_ids if since < self._changed_at.get(r, 0) <= upto]

    def stop(self) -> None:
        """Cancel every timer (server shutdown)."""
        for users in self._typing.values():
            for timer in users.values():
                if timer.active():
                    timer.cancel()
        self._typing.clear()
