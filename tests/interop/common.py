"""Client-side steps the interop suites share, for any server with a blocking
``request(method, path, body, token) -> (status, json)`` (``ServerProcess`` or
``Synapse``): register a user, create a room, send a message, long-poll ``/sync``
until something arrives, poll until a condition holds.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from typing import Any, Callable


def q(value: str) -> str:
    """A path segment, percent-encoded (room IDs, aliases, user IDs)."""
    return urllib.parse.quote(value, safe="")


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0,
             interval: float = 0.3) -> Any:
    """Call ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def call(server, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    """A client API call that must answer 200; its JSON body."""
    status, resp = server.request(method, path, body, token=token)
    if status != 200:
        raise AssertionError(f"{method} {path} -> {status} {resp}")
    return resp


def register(server, prefix: str) -> tuple[str, str]:
    """A fresh user on a server with open registration: (user_id, access token)."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    body = call(server, "POST", "/_matrix/client/v3/register", {
        "username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
    return body["user_id"], body["access_token"]


def register_on_synapse(synapse, prefix: str) -> tuple[str, str]:
    """A fresh Synapse user (registered with the shared secret): (user_id, token)."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    synapse.register(name, "pw-" + name)
    return f"@{name}:{synapse.server_name}", synapse.login(name, "pw-" + name)


def create_room(server, token: str, version: str = "12", **extra) -> str:
    return call(server, "POST", "/_matrix/client/v3/createRoom",
                {"room_version": version, **extra}, token)["room_id"]


def join(server, token: str, room: str, via: str | None = None) -> dict:
    path = f"/_matrix/client/v3/join/{q(room)}"
    if via:
        path += f"?server_name={q(via)}"
    return call(server, "POST", path, {}, token)


def say(server, token: str, room_id: str, text: str) -> str:
    """Send an m.text message; its event ID."""
    return call(server, "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/"
                f"{uuid.uuid4().hex}", {"msgtype": "m.text", "body": text}, token)["event_id"]


def members(server, token: str, room_id: str) -> dict:
    return call(server, "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members",
                None, token)["joined"]


def room_events(sync: dict, room_id: str, section: str = "join") -> list[dict]:
    """The timeline (and state) events of one room in a /sync answer."""
    room = sync.get("rooms", {}).get(section, {}).get(room_id, {})
    return (room.get("state", {}).get("events", [])
            + room.get("timeline", {}).get("events", []))


class SyncCursor:
    """One client's incremental /sync: ``until(pred)`` long-polls, keeping ``since``."""

    def __init__(self, server, token: str) -> None:
        self.server, self.token = server, token
        self.since: str | None = None

    def once(self, timeout_ms: int = 0) -> dict:
        path = f"/_matrix/client/v3/sync?timeout={timeout_ms}"
        if self.since:
            path += f"&since={q(self.since)}"
        body = call(self.server, "GET", path, None, self.token)
        self.since = body["next_batch"]
        return body

    def until(self, pred: Callable[[dict], Any], what: str, timeout: float = 30.0) -> Any:
        """Long-poll until ``pred(sync body)`` is truthy; returns that value."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout:g}s waiting in /sync for {what}")
            result = pred(self.once(int(min(left, 10) * 1000)))
            if result:
                return result


def bodies(sync: dict, room_id: str) -> list[str]:
    """The message bodies of one joined room's timeline in a /sync answer."""
    return [e["content"].get("body") for e in room_events(sync, room_id)
            if e.get("type") == "m.room.message"]


class ServerSteps:
    """Assertions for a trial case driving ``self.ours`` and other servers with blocking
    requests: ``call`` (a request that must answer 200) and ``wait`` (poll until a
    condition holds, failing with our server's log tail)."""

    def call(self, server, method: str, path: str, body: Any, token: str) -> Any:
        status, resp = server.request(method, path, body, token=token)
        self.assertEqual(status, 200, (method, path, resp))
        return resp

    def wait(self, predicate: Callable[[], Any], what: str | Callable[[], str],
             seconds: float = 60) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                what = what() if callable(what) else what
                self.fail(f"timed out after {seconds:g}s waiting for {what}; "
                          f"our log: {self.ours.logs()[-3000:]}")
            time.sleep(0.5)
