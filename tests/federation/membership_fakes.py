"""Two in-process servers for membership tests: ``test`` holds rooms, ``remote`` joins
them; a fake federation client carries calls straight to the other side's servlets'
domain object (``MembershipServer``), signed-origin included."""

from __future__ import annotations

import urllib.parse
from typing import Any, Sequence

from federation.client import RemoteHttpError, RemoteUnreachable
from federation.event_checks import EventChecker
from federation.membership_client import RemoteMembership
from federation.membership_server import MembershipServer
from homeserver.errors import MatrixError
from homeserver.events.client_format import strip_state_event
from homeserver.rooms.actor.protocols import Announcement


class FakeKeyring:
    def __init__(self, keys: dict[str, Any]) -> None:
        self._keys = keys   # server → SigningKey

    async def get_verify_key(self, server_name: str, key_id: str,
                             minimum_valid_until_ts: int | None = None) -> bytes:
        key = self._keys.get(server_name)
        if key is None or key.key_id != key_id:
            raise KeyError(f"no key {key_id} for {server_name}")
        return key.verify_key_bytes


class NoAuthoriser:
    async def restricted_join_authoriser(self, actor, state, user_id):
        return None


class Users:
    def __init__(self, *user_ids: str) -> None:
        self.user_ids = set(user_ids)

    async def get_user(self, user_id: str):
        return object() if user_id in self.user_ids else None


class Stripped:
    def __init__(self, rooms) -> None:
        self._rooms = rooms

    async def stripped_state(self, room_id, event_id=None, *, members=()):
        actor = await self._rooms.get(room_id)
        state = await actor.current_state(["m.room.create", "m.room.join_rules"])
        return [strip_state_event(e) for e in state.values()]


class MemoryMemberships:
    """``store.remote_memberships`` in memory."""

    def __init__(self) -> None:
        self.rows: list[Any] = []

    async def record(self, user_id, room_id, membership, event_id, room_version, event,
                     stripped_state) -> int:
        from homeserver.store.remote_memberships import RemoteMembership as Row

        self.rows.append(Row(len(self.rows) + 1, user_id, room_id, membership, event_id,
                             room_version, event, list(stripped_state)))
        return len(self.rows)

    async def latest(self, user_id, room_id):
        found = [r for r in self.rows if r.user_id == user_id and r.room_id == room_id]
        return found[-1] if found else None


class Announcements:
    def __init__(self) -> None:
        self.announced: list[Announcement] = []
        self.seeded: dict[str, list[tuple[str, str, str]]] = {}

    async def announce(self, announcements: Sequence[Announcement]) -> list[int]:
        self.announced.extend(announcements)
        return list(range(len(announcements)))

    async def seed_memberships(self, room_id: str, members) -> int:
        self.seeded.setdefault(room_id, []).extend(members)
        return len(self.seeded[room_id])


class RoutingClient:
    """A FederationClient whose requests from ``origin`` reach ``servers[dest]``."""

    def __init__(self, origin: str, servers: dict[str, MembershipServer]) -> None:
        self.origin = origin
        self.servers = servers
        self.calls: list[tuple[str, str, str]] = []

    def _parts(self, path: str) -> list[str]:
        return [urllib.parse.unquote(p) for p in path.split("/")]

    async def _call(self, method: str, destination: str, path: str, coro_factory):
        self.calls.append((method, destination, path))
        if destination not in self.servers:
            raise RemoteUnreachable(destination, "connection refused")
        try:
            return await coro_factory(self.servers[destination])
        except MatrixError as e:
            import json
            raise RemoteHttpError(destination, e.status,
                                  json.dumps(e.to_json()).encode()) from None

    async def get_json(self, destination: str, path: str, args: Any = None) -> Any:
        parts = self._parts(path)
        kind, room_id, user_id = parts[-3], parts[-2], parts[-1]
        membership = kind.split("_", 1)[1]
        versions = (args or {}).get("ver") if kind != "make_leave" else None
        return await self._call("GET", destination, path, lambda s: s.make(
            self.origin, room_id, user_id, membership, versions))

    async def put_json(self, destination: str, path: str, body: Any) -> Any:
        parts = self._parts(path)
        kind, room_id, event_id = parts[-3], parts[-2], parts[-1]
        return await self._call("PUT", destination, path, lambda s: getattr(s, kind)(
            self.origin, room_id, event_id, body))


def build_side(harness, registry, server_name: str, key, keys: dict[str, Any],
               users: Sequence[str], servers: dict[str, MembershipServer]):
    """One server's MembershipServer and RemoteMembership (and their fakes)."""
    checker = EventChecker(FakeKeyring(keys))
    memberships, stream, notified = MemoryMemberships(), Announcements(), []
    client = RoutingClient(server_name, servers)
    now = lambda: int(harness.clock.seconds() * 1000)  # noqa: E731
    remote = RemoteMembership(server_name=server_name, client=client, checker=checker,
                              rooms=registry, memberships=memberships, stream=stream,
                              notify_user=notified.append, signing_key=key, now_ms=now)
    server = MembershipServer(server_name=server_name, rooms=registry, checker=checker,
                              authoriser=NoAuthoriser(), invites=remote,
                              stripped=Stripped(registry), users=Users(*users),
                              signing_key=key, now_ms=now)
    servers[server_name] = server
    return server, remote, memberships, stream, notified, client
