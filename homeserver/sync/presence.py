"""Presence (spec: Client-Server API, "Presence").

A local user's presence is ``online``, ``unavailable`` or ``offline``, with the time
of their last pro-active action (``last_active_ago``), ``currently_active`` and an
optional ``status_msg``. It is persisted through ``store.presence`` (the presence
stream, so /sync sends changes) and cached here, this process being its only writer.

Besides explicit ``PUT /presence/{userId}/status``, presence moves on its own. The
machine below lists those automatic moves; a trigger missing for a state leaves the
state as it is (an idle user who keeps syncing stays ``unavailable`` until they act):

- ``sync_online`` / ``sync_unavailable``: a /sync or WebSocket with ``set_presence``;
- ``activity``: the user did something (sent an event); it brings an ``unavailable``
  user back ``online`` but leaves an ``offline`` one offline, as Synapse does: with no
  client syncing nobody is there to talk to (a user joining a room before their first
  /sync must not show as online);
- ``idle``: no activity for ``idle_after_s`` (spec: "Idle timeout", 5 minutes);
- ``disconnected``: no /sync in flight or WebSocket open for ``offline_after_s``.

Timers run on the injected clock, one per user, armed for the earliest of the user's
next idle, currently-active expiry and disconnect deadlines.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable, Iterable, Mapping

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from homeserver.errors import Forbidden, InvalidParam

log = Logger()

ONLINE, UNAVAILABLE, OFFLINE = "online", "unavailable", "offline"
#: states a client may set (spec enum of PUT /presence/{userId}/status)
SETTABLE = (ONLINE, UNAVAILABLE, OFFLINE)

#: (state, trigger) → new state; see the module docstring
TRANSITIONS: Mapping[tuple[str, str], str] = {
    (OFFLINE, "sync_online"): ONLINE,
    (OFFLINE, "sync_unavailable"): UNAVAILABLE,
    (ONLINE, "sync_unavailable"): UNAVAILABLE,
    (UNAVAILABLE, "activity"): ONLINE,
    (ONLINE, "activity"): ONLINE,
    (ONLINE, "idle"): UNAVAILABLE,
    (ONLINE, "disconnected"): OFFLINE,
    (UNAVAILABLE, "disconnected"): OFFLINE,
}

IDLE_AFTER_S = 300.0
OFFLINE_AFTER_S = 30.0
#: ``currently_active`` holds this long after the last activity; activity within it
#: is not written again (spec: "Last active ago" — fewer presence updates)
ACTIVE_WINDOW_MS = 60_000


@dataclasses.dataclass(frozen=True)
class UserPresence:
    user_id: str
    state: str = OFFLINE
    last_active_ts: int | None = None
    status_msg: str | None = None
    currently_active: bool = False

    def content(self, now_ms: int) -> dict[str, Any]:
        """The ``m.presence`` content / GET body (last_active_ago as of ``now_ms``)."""
        body: dict[str, Any] = {"presence": self.state}
        if self.last_active_ts is not None:
            body["last_active_ago"] = max(0, now_ms - self.last_active_ts)
        if self.state == ONLINE:
            body["currently_active"] = self.currently_active
        if self.status_msg is not None:
            body["status_msg"] = self.status_msg
        return body

    def event(self, now_ms: int) -> dict[str, Any]:
        return {"type": "m.presence", "sender": self.user_id,
                "content": self.content(now_ms)}


class PresenceStore:
    """What the service needs of ``homeserver.store.presence.Presence``."""

    async def set_presence(self, user_id: str, state: str, *, status_msg: str | None,
                           last_active_ts: int | None, currently_active: bool) -> int: ...

    async def get_presence(self, user_id: str) -> Any: ...

    async def get_presence_changes(self, since: int, upto: int | None = None, *,
                                   user_ids: Iterable[str] | None = None) -> list: ...


class PresenceService:
    def __init__(self, clock: IReactorTime, store: PresenceStore, *,
                 users_sharing: Callable[[str], Awaitable[set[str]]],
                 notify_users: Callable[[Iterable[str]], None],
                 server_name: str, enabled: bool = True,
                 idle_after_s: float = IDLE_AFTER_S,
                 offline_after_s: float = OFFLINE_AFTER_S) -> None:
        self._clock = clock
        self._store = store
        self._users_sharing = users_sharing
        self._notify_users = notify_users
        self._server_name = server_name
        self.enabled = enabled
        self.idle_after_s = idle_after_s
        self.offline_after_s = offline_after_s
        self._cache: dict[str, UserPresence] = {}
        #: user → number of /sync requests and WebSockets in flight
        self._connections: dict[str, int] = {}
        #: user → when they were last connected (ms)
        self._last_connected: dict[str, int] = {}
        self._timers: dict[str, IDelayedCall] = {}
        self._stopped = False
        self._observers: list[Callable[[UserPresence], None]] = []

    def add_observer(self, observer: Callable[["UserPresence"], None]) -> None:
        """Call ``observer(presence)`` after each change is written (the federation
        sender tells servers sharing a room with the user)."""
        self._observers.append(observer)

    def now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    # -- reads --------------------------------------------------------------------------
    async def current(self, user_id: str) -> UserPresence:
        cached = self._cache.get(user_id)
        if cached is not None:
            return cached
        row = await self._store.get_presence(user_id)
        state = UserPresence(user_id) if row is None else UserPresence(
            user_id, row.state if row.state in SETTABLE else ONLINE, row.last_active_ts,
            row.status_msg, bool(row.currently_active))
        return self._cache.setdefault(user_id, state)

    async def get_presence(self, observer: str, user_id: str) -> dict[str, Any]:
        """``GET /presence/{userId}/status``: visible to the user and whoever shares a
        room with them (spec: presence is published to users sharing a room)."""
        if observer != user_id and user_id not in await self._users_sharing(observer):
            raise Forbidden("You are not allowed to see their presence")
        if not self.enabled:
            return {"presence": OFFLINE}
        return (await self.current(user_id)).content(self.now_ms())

    # -- explicit changes -----------------------------------------------------------------
    async def set_presence(self, requester: str, user_id: str, state: str,
                           status_msg: str | None = None) -> None:
        """``PUT /presence/{userId}/status``; setting a state bumps the activity time."""
        if requester != user_id:
            raise Forbidden("You cannot set the presence state of another user")
        if state not in SETTABLE:
            raise InvalidParam(f"presence must be one of {', '.join(SETTABLE)}")
        if not self.enabled:
            return
        now = self.now_ms()
        # an explicit choice counts as being connected (the disconnect timer restarts)
        self._last_connected[user_id] = now
        await self._write(UserPresence(user_id, state, now, status_msg,
                                       currently_active=state == ONLINE))

    async def user_active(self, user_id: str) -> None:
        """The user did something pro-active (e.g. sent an event)."""
        if not self.enabled:
            return
        before = await self.current(user_id)
        now = self.now_ms()
        if before.state == ONLINE and before.currently_active and \
                before.last_active_ts is not None and \
                now - before.last_active_ts < ACTIVE_WINDOW_MS:
            return  # still currently active: nothing a client needs to hear
        after = TRANSITIONS.get((before.state, "activity"), before.state)
        if after == OFFLINE:
            return  # no client connected (see the module docstring)
        # acting implies a live client: the disconnect timer restarts too
        self._last_connected[user_id] = now
        await self._write(dataclasses.replace(
            before, state=after, last_active_ts=now, currently_active=True))

    def on_room_event(self, event: Any, stream_pos: int) -> None:
        """Notifier observer: a local user's new event is activity (an old one
        announced late, say after a crash, is not)."""
        sender = event.sender
        recent = self.now_ms() - event.origin_server_ts < ACTIVE_WINDOW_MS
        if self.enabled and recent and sender.endswith(":" + self._server_name):
            self._background(self.user_active(sender), "presence activity", sender)

    # -- other servers' users ------------------------------------------------------------
    async def remote_update(self, p: UserPresence) -> bool:
        """A remote user's presence as their server pushed it (``m.presence`` EDU,
        spec: Server-Server API "Presence"). Their server runs their timers, so none
        are armed here, and observers (the federation sender) are not told: we never
        speak for another server's users. Stored only when a local user shares a
        room with them (no one else may see it); False if it was not."""
        if not self.enabled or p.user_id.endswith(":" + self._server_name):
            return False
        watchers = await self._users_sharing(p.user_id)
        local = {u for u in watchers if u.endswith(":" + self._server_name)}
        if not local:
            return False
        if p.state != ONLINE and p.currently_active:
            p = dataclasses.replace(p, currently_active=False)
        self._cache[p.user_id] = p
        await self._store.set_presence(p.user_id, p.state, status_msg=p.status_msg,
                                       last_active_ts=p.last_active_ts,
                                       currently_active=p.currently_active)
        self._notify_users(local)
        return True

    # -- connections (/sync, WebSocket) --------------------------------------------------
    async def connected(self, user_id: str, set_presence: str | None) -> None:
        """A /sync or WebSocket starts; ``set_presence`` as the /sync parameter
        (None means "online"). Pair with :meth:`disconnected`."""
        self._connections[user_id] = self._connections.get(user_id, 0) + 1
        self._last_connected[user_id] = self.now_ms()
        if not self.enabled or set_presence == OFFLINE:
            return
        trigger = "sync_unavailable" if set_presence == UNAVAILABLE else "sync_online"
        before = await self.current(user_id)
        after = TRANSITIONS.get((before.state, trigger))
        if after is not None and after != before.state:
            now = self.now_ms()
            await self._write(dataclasses.replace(
                before, state=after, last_active_ts=now if after == ONLINE else
                before.last_active_ts, currently_active=after == ONLINE))
        else:
            self._arm(await self.current(user_id))

    def disconnected(self, user_id: str) -> None:
        count = self._connections.get(user_id, 0) - 1
        if count > 0:
            self._connections[user_id] = count
        else:
            self._connections.pop(user_id, None)
        self._last_connected[user_id] = self.now_ms()
        cached = self._cache.get(user_id)
        if cached is not None:
            self._arm(cached)

    # -- timers ---------------------------------------------------------------------------
    def _deadlines(self, p: UserPresence) -> list[float]:
        """When (clock seconds) something may change for ``p`` on its own."""
        deadlines = []
        if p.last_active_ts is not None:
            if p.state == ONLINE:
                deadlines.append(p.last_active_ts / 1000 + self.idle_after_s)
                if p.currently_active:
                    deadlines.append((p.last_active_ts + ACTIVE_WINDOW_MS) / 1000)
        if p.state != OFFLINE and not self._connections.get(p.user_id):
            last = self._last_connected.get(p.user_id, self.now_ms())
            deadlines.append(last / 1000 + self.offline_after_s)
        return deadlines

    def _arm(self, p: UserPresence) -> None:
        timer = self._timers.pop(p.user_id, None)
        if timer is not None and timer.active():
            timer.cancel()
        if self._stopped:
            return
        deadlines = self._deadlines(p)
        if deadlines:
            delay = max(0.0, min(deadlines) - self._clock.seconds())
            self._timers[p.user_id] = self._clock.callLater(delay, self._on_timer, p.user_id)

    def _on_timer(self, user_id: str) -> None:
        self._timers.pop(user_id, None)
        self._background(self._apply_timeouts(user_id), "presence timeout", user_id)

    def _background(self, work: Any, what: str, user_id: str) -> None:
        """Run ``work`` unawaited; once stopping, the database may be gone already,
        so a failure then is expected and the change simply not made."""
        if self._stopped:
            work.close()
            return

        def failed(failure: Any) -> None:
            if not self._stopped:
                log.failure("{what} of {user}", failure, what=what, user=user_id)

        defer.ensureDeferred(work).addErrback(failed)

    async def _apply_timeouts(self, user_id: str) -> None:
        p = await self.current(user_id)
        now = self.now_ms()
        after = p
        if not self._connections.get(user_id) and after.state != OFFLINE and \
                now - self._last_connected.get(user_id, now) >= self.offline_after_s * 1000:
            after = dataclasses.replace(after, state=TRANSITIONS[(after.state, "disconnected")],
                                        currently_active=False)
        if after.state == ONLINE and after.last_active_ts is not None:
            if now - after.last_active_ts >= self.idle_after_s * 1000:
                after = dataclasses.replace(after, state=TRANSITIONS[(ONLINE, "idle")],
                                            currently_active=False)
            elif after.currently_active and now - after.last_active_ts >= ACTIVE_WINDOW_MS:
                after = dataclasses.replace(after, currently_active=False)
        if after != p:
            await self._write(after)
        else:
            self._arm(p)

    async def _write(self, p: UserPresence) -> None:
        """Persist, cache, re-arm the timer and tell whoever shares a room."""
        if p.state != ONLINE and p.currently_active:
            p = dataclasses.replace(p, currently_active=False)
        self._cache[p.user_id] = p
        await self._store.set_presence(p.user_id, p.state, status_msg=p.status_msg,
                                       last_active_ts=p.last_active_ts,
                                       currently_active=p.currently_active)
        self._arm(p)
        for observer in self._observers:
            observer(p)
        watchers = await self._users_sharing(p.user_id)
        self._notify_users(watchers | {p.user_id})

    async def restore(self) -> None:
        """At start-up: users the database still shows online time out like anyone
        who has not connected yet (after ``offline_after_s``)."""
        if not self.enabled:
            return
        now = self.now_ms()
        for row in await self._store.get_presence_changes(0):
            # remote users' timers run on their servers, not here
            if row.state != OFFLINE and row.user_id not in self._cache \
                    and row.user_id.endswith(":" + self._server_name):
                p = await self.current(row.user_id)
                self._last_connected.setdefault(row.user_id, now)
                self._arm(p)

    def stop(self) -> None:
        self._stopped = True
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
