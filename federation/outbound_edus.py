"""Local users' typing, presence and read receipts, on their way to other servers
(spec: Server-Server API, "Typing Notifications", "Presence", "Receipts").

Typing and presence are ephemeral: they go straight to the sender's live queues of
the servers that are up (``FederationSender.send_edu``) and are worthless after a
restart. A public read receipt must not be lost, so it is appended to the federation
outbox and travels like a device-list update (``destinations.OutboxSource`` sends it
to the servers in its room).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from federation.destinations import allowed_by_acl, server_of, servers_of
from homeserver.errors import NotFound
from homeserver.store.outbox import RECEIPT, OutboxEntry

log = Logger()

TYPING = "m.typing"
PRESENCE = "m.presence"
#: the only receipt type other servers see (m.read.private is the user's own)
PUBLIC_READ = "m.read"


class EduSink(Protocol):
    def send_edu(self, destinations: Iterable[str], edu_type: str,
                 content: Mapping[str, Any]) -> None: ...


def typing_content(room_id: str, user_id: str, typing: bool) -> dict[str, Any]:
    return {"room_id": room_id, "user_id": user_id, "typing": typing}


def presence_content(user_id: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """spec "m.presence": ``push`` holds one update per user, its keys those of the
    client's presence content plus ``user_id`` (``last_active_ago`` is required)."""
    update = {"user_id": user_id, "presence": content["presence"],
              "last_active_ago": content.get("last_active_ago", 0)}
    for key in ("currently_active", "status_msg"):
        if content.get(key) is not None:
            update[key] = content[key]
    return {"push": [update]}


def receipt_content(room_id: str, user_id: str, event_id: str,
                    data: Mapping[str, Any]) -> dict[str, Any]:
    """spec "m.receipt": room → receipt type → user → {event_ids, data}."""
    return {room_id: {PUBLIC_READ: {user_id: {"event_ids": [event_id],
                                               "data": dict(data)}}}}


class LocalEdus:
    """Observers for the typing, presence and receipt services (wired in app.py)."""

    def __init__(self, *, server_name: str, sender: EduSink, streams: Any,
                 outbox: Any, now_ms: Callable[[], int],
                 presence_enabled: bool = True,
                 rooms: Callable[[str], Awaitable[Any]] | None = None) -> None:
        """``streams``: ``store.streams`` (who is in a room, who shares one);
        ``outbox``: ``store.federation_outbox``; ``rooms(room_id)``: the room's actor,
        whose server ACL typing notifications obey."""
        self._server_name = server_name
        self._rooms = rooms
        self._sender = sender
        self._streams = streams
        self._outbox = outbox
        self._now_ms = now_ms
        self._presence_enabled = presence_enabled

    def _local(self, user_id: str) -> bool:
        return server_of(user_id) == self._server_name

    def _background(self, work: Awaitable[Any], what: str) -> None:
        defer.ensureDeferred(work).addErrback(
            lambda f: log.failure("federation: {what}", f, what=what))

    def typing_changed(self, room_id: str, user_id: str, typing: bool) -> None:
        if self._local(user_id):
            self._background(self._typing(room_id, user_id, typing), "typing EDU")

    async def _typing(self, room_id: str, user_id: str, typing: bool) -> None:
        members = await self._streams.get_room_members(room_id)
        servers = servers_of(members, self._server_name)
        if self._rooms is not None and servers:
            try:
                servers = await allowed_by_acl(servers, await self._rooms(room_id))
            except NotFound:
                return
        self._sender.send_edu(servers, TYPING, typing_content(room_id, user_id, typing))

    def presence_changed(self, presence: Any) -> None:
        if self._presence_enabled and self._local(presence.user_id):
            self._background(self._presence(presence), "presence EDU")

    async def _presence(self, presence: Any) -> None:
        sharing = await self._streams.users_sharing_a_room_with(presence.user_id)
        self._sender.send_edu(servers_of(sharing, self._server_name), PRESENCE,
                              presence_content(presence.user_id,
                                               presence.content(self._now_ms())))

    async def receipt_sent(self, room_id: str, receipt_type: str, user_id: str,
                           event_id: str, data: Mapping[str, Any]) -> None:
        """Queue a local user's public read receipt durably (awaited by the receipt
        request, so the receipt is in the outbox before it is answered)."""
        if receipt_type != PUBLIC_READ or not self._local(user_id):
            return
        members = await self._streams.get_room_members(room_id)
        if not servers_of(members, self._server_name):
            return   # nobody elsewhere to tell
        await self._outbox.add([OutboxEntry(
            RECEIPT, user_id, receipt_content(room_id, user_id, event_id, data))],
            self._now_ms())
