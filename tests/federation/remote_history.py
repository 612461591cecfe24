"""A room with history held by another server, joined by one of ours: for the backfill
tests. ``RoomHistoryFixture`` (a mixin over ``RoomHarness``) makes ``remote.example``'s
room with messages, imports it here from our user's join as a send_join answer would,
and ``RemoteServer`` answers federation reads from that server's room DB through
``RoomReads``, as the real endpoints do."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from federation.client import RemoteError
from federation.room_reads import RoomReads
from homeserver.crypto.signing import SigningKey
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version
from homeserver.rooms.rules.creation import initial_room_events
from tests.fakes.rooms import SERVER, remote_event

REMOTE_SERVER = "remote.example"
REMOTE_KEY = SigningKey.from_seed("r1", b"\x07" * 32)
RITA = "@rita:remote.example"
CAROL = "@carol:test"
V1 = "/_matrix/federation/v1"


def received(pdus):
    """Copies of ``pdus`` as another server gets them (the store notes what it decided
    about an event in its PDU's internal_metadata: a copy keeps rooms apart)."""
    return [PDU(p.room_version, json.loads(json.dumps(p.get_dict())), p.event_id)
            for p in pdus]


class RemoteServer:
    """A federation client whose every server answers from ``reads`` (one server's
    room DBs); servers in ``down`` fail. Records ``(destination, path, args)``."""

    def __init__(self, reads: RoomReads, origin: str = SERVER) -> None:
        self.reads = reads
        self.origin = origin
        self.down: set[str] = set()
        self.calls: list[tuple[str, str, Any]] = []

    def backfills(self) -> list[tuple[str, Any]]:
        return [(d, a) for d, p, a in self.calls if p.startswith(f"{V1}/backfill/")]

    async def get_json(self, destination, path, args=None, *, timeout=None):
        self.calls.append((destination, path, args))
        if destination in self.down:
            raise RemoteError(destination, "connection refused")
        parts = [unquote(p) for p in path[len(V1) + 1:].split("/")]
        args = args or {}
        reads, origin = self.reads, self.origin
        if parts[0] == "backfill":
            return await reads.backfill(origin, parts[1], args["v"], args["limit"])
        if parts[0] == "state_ids":
            return await reads.state_ids(origin, parts[1], args.get("event_id"))
        if parts[0] == "state":
            return await reads.state(origin, parts[1], args.get("event_id"))
        if parts[0] == "event":
            return await reads.event(origin, parts[1])
        if parts[0] == "event_auth":
            return await reads.event_auth(origin, parts[1], parts[2])
        raise RemoteError(destination, f"unexpected request {path}")

    async def post_json(self, destination, path, body, args=None, *, timeout=None):
        raise RemoteError(destination, f"unexpected request {path}")


class RoomHistoryFixture:
    """Mixin for a ``RoomHarness`` TestCase: ``self.remote_room(n)``."""

    room_version = "12"
    #: the server our join went through, as ``RemoteMembership`` records it
    joined_via: str | None = None

    def remote_room(self, messages: int, preset: str = "public_chat") -> None:
        """``remote.example``'s room (``self.room_id``) with ``messages`` messages by
        Rita (``self.history``), joined by Carol of ours: imported here
        (``self.ours``) from the state before her join, as a send_join answer gives
        it; ``self.theirs`` is the remote room's actor, ``self.server`` the remote."""
        version = get_room_version(self.room_version)
        self.remote_registry = self.make_registry(
            data_dir=self.data_dir + "-remote", server_name=REMOTE_SERVER,
            signing_key=REMOTE_KEY)
        self.room_id, _ = self.drive(self.remote_registry.create_room(
            RITA, self.room_version, initial_room_events(version, RITA, {"preset": preset})))
        self.theirs = self.drive(self.remote_registry.get(self.room_id))
        self.history = [self.drive(self.theirs.create_event({
            "type": "m.room.message", "sender": RITA,
            "content": {"msgtype": "m.text", "body": f"earlier {i}"}}))
            for i in range(messages)]
        state = self.drive(self.theirs.current_state())
        prevs = list(self.drive(self.theirs.get_events(
            self.drive(self.theirs.forward_extremities()))).values())
        self.join = remote_event(self.room_id, self.room_version, state, prevs,
                                 {"type": "m.room.member", "sender": CAROL,
                                  "state_key": CAROL, "content": {"membership": "join"}},
                                 self.signing_key, SERVER)
        chain = self.drive(self.theirs.auth_chain([e.event_id for e in state.values()]))
        self.drive(self.registry.import_room(self.room_id, self.room_version, self.join,
                                             received(state.values()), received(chain),
                                             joined_via=self.joined_via))
        self.drive(self.theirs.apply_remote_pdus(received([self.join])))
        self.ours = self.drive(self.registry.get(self.room_id))

        async def joined_rooms(server):
            return [self.room_id]

        self.server = RemoteServer(RoomReads(
            server_name=REMOTE_SERVER, rooms=self.remote_registry,
            rooms_joined_by=joined_rooms, now_ms=lambda: 1))

    def timeline(self) -> list[str]:
        """Our room's timeline as /messages walks it, oldest first: event IDs."""
        events, _ = self.drive(self.ours.paginate(None, "b", 1000))
        return [e.event_id for e in reversed(events)]

    def remote_timeline(self) -> list[str]:
        events, _ = self.drive(self.theirs.paginate(None, "b", 1000))
        return [e.event_id for e in reversed(events)]
