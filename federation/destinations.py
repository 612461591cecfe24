"""What the federation sender sends, and to whom: the two positioned streams it reads.

* :class:`RoomEventSource` reads the committed global room stream
  (``homeserver/store/streams.py``) and turns each event created here into a PDU for
  the servers with joined members in the room at that event (spec: Server-Server API,
  "PDUs"; "Room membership" for who must hear of a membership change). Membership is
  read through the room's actor, never from its file.
* :class:`OutboxSource` reads ``federation_outbox`` (``homeserver/store/outbox.py``)
  and turns each entry into an EDU (spec: "EDUs", "Device Management",
  "Send-to-device messaging", "Receipts"); an entry without a destination goes to every
  server that shares a room with its user, worked out when it is read.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

from federation.acl import server_allowed
from homeserver.errors import NotFound
from homeserver.store.outbox import (
    DEVICE_LIST_UPDATE, RECEIPT, SIGNING_KEY_UPDATE, OutboxEntry,
)

MEMBER = "m.room.member"
ACL_KEY = ("m.room.server_acl", "")
#: a member event that changes a remote user's membership to one of these is also
#: sent to that user's server, which may have no one joined (any more / yet)
_TELL_TARGET = ("invite", "leave", "ban", "knock")
#: EDUs of which a user's newest still matters once older ones are stale
_NEWEST_COUNTS = (DEVICE_LIST_UPDATE, SIGNING_KEY_UPDATE)
#: destinations kept per pair of state groups (see RoomEventSource._destinations)
_GROUPS_KEPT = 1_024


def server_of(user_id: str) -> str:
    """The server name part of a (well-formed, already parsed once) user ID."""
    return user_id.split(":", 1)[1]


@dataclasses.dataclass(frozen=True)
class Resolved:
    """One stream entry as sent: its PDU or EDU, and the servers that must get it.

    For the sender's age limit on a catching-up destination: ``ts`` is when the entry
    was made (ms); a stale entry is dropped, unless it has a ``stale_key``: then the
    newest stale entry of each key is still sent (a room's newest event, a user's
    newest device-list update)."""
    payload: Mapping[str, Any]
    destinations: frozenset[str]
    ts: int | None = None
    stale_key: str | None = None


class Source(Protocol):
    """A positioned stream the sender delivers from (see sender.py)."""

    name: str

    async def initial_position(self) -> int:
        """Where the sender starts reading the first time it runs."""

    async def read(self, since: int, upto: int | None, limit: int) -> list[tuple[int, Any]]:
        """Entries at positions in ``(since, upto]`` (``upto`` None: the head), oldest
        first, as ``(pos, entry)``."""

    async def resolve(self, entry: Any) -> Resolved | None:
        """The payload and destinations of an entry; None if it goes nowhere."""


class RoomReader(Protocol):
    """What the sender needs of a room's actor (``rooms.get(room_id)``)."""

    async def get_event(self, event_id: str) -> Any: ...

    async def members(self, membership: str | None = None,
                      at_event: str | None = None) -> Mapping[str, Any]: ...

    async def state_at(self, event_id: str, *, after: bool = False,
                       types: Any = None) -> Mapping[tuple[str, str], Any]: ...

    async def current_state(self, types: Any = None) -> Mapping[tuple[str, str], Any]: ...

    async def state_group_at(self, event_id: str, *, after: bool = False) -> Any: ...


async def allowed_by_acl(servers: Iterable[str], actor: RoomReader,
                         at_event: str | None = None) -> set[str]:
    """``servers`` less those the room's ``m.room.server_acl`` bans (spec: "Server
    Access Control Lists": a banned server gets none of the room's PDUs and EDUs), by
    the ACL after ``at_event``, else the current one."""
    servers = set(servers)
    if not servers:
        return servers
    try:
        state = await (actor.state_at(at_event, after=True, types=[ACL_KEY])
                       if at_event is not None else actor.current_state([ACL_KEY]))
    except NotFound:   # no state known at it: the room's ACL now will do
        state = await actor.current_state([ACL_KEY])
    acl = state.get(ACL_KEY)
    if acl is None:
        return servers
    return {s for s in servers if server_allowed(s, acl.content)}


class RoomEventSource:
    name = "room"

    def __init__(self, *, server_name: str, streams: Any,
                 rooms: Callable[[str], Awaitable[RoomReader]],
                 recent: Any = None) -> None:
        """``streams``: ``store.streams``; ``rooms(room_id)``: the room's actor;
        ``recent``: ``store.streams.recent`` (``RecentEntries``), read before the DB."""
        self._server_name = server_name
        self._streams = streams
        self._recent = recent
        #: (room, state group before, after) → destinations of a non-member event
        self._by_groups: collections.OrderedDict[tuple[str, Any, Any], frozenset[str]] \
            = collections.OrderedDict()
        self._rooms = rooms

    def release_caches(self) -> None:
        """Every room is asleep: forget the destinations computed per state groups
        (the next event of a room computes its own again)."""
        self._by_groups.clear()

    async def initial_position(self) -> int:
        # the history before federation was switched on was never meant for others
        return await self._streams.current_room_stream_pos()

    async def read(self, since: int, upto: int | None, limit: int) -> list[tuple[int, Any]]:
        # the newest entries are in memory (``store.recent_entries``): a live reader,
        # woken once per announcement, reads none of them from the global DB
        entries = None if self._recent is None else self._recent.read(since, upto, limit)
        if entries is None:
            entries = await self._streams.get_entries(since, upto, limit=limit)
        return [(e.pos, e) for e in entries]

    async def resolve(self, entry: Any) -> Resolved | None:
        # the stream holds every timeline event; only ours are ours to send (and the
        # third-party invites we wrote for a remote inviter, see below)
        ours = server_of(entry.sender) == self._server_name
        if not ours and entry.type != MEMBER:
            return None
        try:
            actor = await self._rooms(entry.room_id)
            pdu = await actor.get_event(entry.event_id)
        except NotFound:
            return None
        if pdu is None or any(pdu.internal_metadata.get(flag)
                              for flag in ("outlier", "rejected", "soft_failed")):
            return None
        if not ours and not self._redeemed_here(pdu):
            return None
        servers = await self._destinations(actor, pdu)
        if not servers:
            return None
        return Resolved(federation_form(pdu), servers,
                        ts=pdu.origin_server_ts, stale_key=pdu.room_id)


    async def _destinations(self, actor: RoomReader, pdu: Any) -> frozenset[str]:
        """The servers with members joined before ``pdu`` (and, for a membership
        change, its target's), less ours and those the ACL after it bans. The same
        pair of state groups gives the same answer: a room's messages between two
        state changes are resolved once, not by reading its members per event."""
        key = None
        if pdu.type != MEMBER:
            try:
                key = (pdu.room_id, await actor.state_group_at(pdu.event_id),
                       await actor.state_group_at(pdu.event_id, after=True))
            except NotFound:
                key = None
            if key is not None and key in self._by_groups:
                self._by_groups.move_to_end(key)
                return self._by_groups[key]
        try:
            joined = await actor.members("join", at_event=pdu.event_id)
        except NotFound:   # no state known at it: the room's members now will do
            joined = await actor.members("join")
        servers = {server_of(user_id) for user_id in joined}
        if pdu.type == MEMBER and pdu.state_key:
            target = server_of(pdu.state_key)
            if pdu.membership == "join" or pdu.membership in _TELL_TARGET:
                servers.add(target)
        servers.discard(self._server_name)
        result = frozenset(await allowed_by_acl(servers, actor, pdu.event_id))
        if key is not None:
            self._by_groups[key] = result
            while len(self._by_groups) > _GROUPS_KEPT:
                self._by_groups.popitem(last=False)
        return result

    def _redeemed_here(self, pdu: Any) -> bool:
        """A third-party invite of one of our users that we wrote in the inviter's
        name (``/3pid/onbind``, spec: "Third-party invites"): sent as the remote
        inviter, signed by us, and nobody else will send it."""
        return pdu.membership == "invite" and "third_party_invite" in pdu.content \
            and isinstance(pdu.state_key, str) \
            and server_of(pdu.state_key) == self._server_name \
            and self._server_name in (pdu.get("signatures") or {})


def federation_form(pdu: Any) -> dict[str, Any]:
    """The PDU as another server gets it: our local ``unsigned`` data (transaction
    IDs, relations) is not theirs to see."""
    body = dict(pdu.get_dict())
    body.pop("unsigned", None)
    return body


class OutboxSource:
    name = "federation_outbox"

    def __init__(self, *, server_name: str, outbox: Any, streams: Any,
                 rooms: Callable[[str], Awaitable[RoomReader]] | None = None,
                 device_keys: Callable[[str, str], Awaitable[Mapping[str, Any] | None]]
                 | None = None,
                 cross_signing_keys: Callable[[str], Awaitable[Mapping[str, Any]]]
                 | None = None) -> None:
        """``outbox``: ``store.federation_outbox``; ``device_keys(user, device)``: the
        device's signed keys with ``unsigned.device_display_name`` (None: no such
        device); ``cross_signing_keys(user)``: key type → key; ``rooms(room_id)``: the
        room's actor, whose server ACL a receipt's destinations must pass."""
        self._server_name = server_name
        self._outbox = outbox
        self._streams = streams
        self._rooms = rooms
        self._device_keys = device_keys
        self._cross_signing_keys = cross_signing_keys

    async def initial_position(self) -> int:
        # to-device messages queued before the first start are still owed
        return 0

    async def read(self, since: int, upto: int | None, limit: int) -> list[tuple[int, Any]]:
        return [(e.pos, e) for e in await self._outbox.entries(since, upto, limit)]

    async def resolve(self, entry: OutboxEntry) -> Resolved | None:
        if entry.destination is not None:
            servers = {entry.destination}
        elif entry.edu_type == RECEIPT:
            servers = set()
            for room_id in entry.content:
                servers |= await self._servers_in_room(room_id)
        else:
            users = await self._streams.users_sharing_a_room_with(entry.user_id)
            servers = {server_of(u) for u in users}
        servers.discard(self._server_name)
        if not servers:
            return None
        return Resolved({"edu_type": entry.edu_type,
                         "content": await self._content(entry)}, frozenset(servers),
                        ts=entry.created_ts or None,
                        stale_key=f"{entry.edu_type} {entry.user_id}"
                        if entry.edu_type in _NEWEST_COUNTS else None)

    async def _servers_in_room(self, room_id: str) -> set[str]:
        servers = {server_of(u) for u in await self._streams.get_room_members(room_id)}
        if self._rooms is None or not servers:
            return servers
        try:
            return await allowed_by_acl(servers, await self._rooms(room_id))
        except NotFound:
            return set()

    async def _content(self, entry: OutboxEntry) -> dict[str, Any]:
        content = dict(entry.content)
        if entry.edu_type == DEVICE_LIST_UPDATE and self._device_keys is not None:
            # spec "m.device_list_update": the device's keys as they are now, or
            # ``deleted`` once it is gone; ``prev_id`` was written with the entry
            # (``store.devices.mark_device_lists_changed``; empty in entries queued
            # before it was, which makes the receiver resync)
            content.setdefault("prev_id", [])
            keys = await self._device_keys(entry.user_id, str(content.get("device_id")))
            if keys is None:
                content["deleted"] = True
            else:
                keys = dict(keys)
                unsigned = keys.pop("unsigned", None) or {}
                if unsigned.get("device_display_name") is not None:
                    content["device_display_name"] = unsigned["device_display_name"]
                content["keys"] = keys
        elif entry.edu_type == SIGNING_KEY_UPDATE:
            # spec "m.signing_key_update": the user's master and self-signing keys
            content = {"user_id": entry.user_id}
            if self._cross_signing_keys is not None:
                keys = await self._cross_signing_keys(entry.user_id)
                for key_type in ("master", "self_signing"):
                    if key_type in keys:
                        content[f"{key_type}_key"] = keys[key_type]
        return content


def servers_of(user_ids: Iterable[str], exclude: str) -> set[str]:
    """The servers of ``user_ids`` other than ``exclude``."""
    return {server_of(u) for u in user_ids} - {exclude}
