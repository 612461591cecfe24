"""A room registry on a fake clock, with a fake room stream, for room layer tests."""

from __future__ import annotations

import os
from typing import Any, Mapping

from twisted.internet import defer, task

from homeserver.crypto.signing import generate_signing_key
from homeserver.events.builder import finalize_event
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version
from homeserver.rooms.actor.registry import RoomRegistry
from homeserver.rooms.rules.auth import auth_types_for_event
from homeserver.rooms.rules.creation import initial_room_events
from tests.fakes.room_stream import FakeRoomStreamWriter, RecordingListener

SERVER = "test"
ALICE = "@alice:test"


class RoomHarness:
    """Mixin for trial TestCases: ``self.registry`` over ``self.clock``/``self.stream``."""

    room_version = "12"
    idle_seconds = 60.0
    max_open = 100

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.stream = FakeRoomStreamWriter()
        self.listener = RecordingListener()
        self.data_dir = os.path.abspath(self.mktemp())
        self.signing_key = generate_signing_key()
        self.registry = self.make_registry()

    def make_registry(self, **overrides: Any) -> RoomRegistry:
        kwargs = dict(data_dir=self.data_dir, server_name=SERVER,
                      signing_key=self.signing_key, clock=self.clock,
                      stream_writer=self.stream, listener=self.listener,
                      idle_seconds=self.idle_seconds, max_open=self.max_open)
        kwargs.update(overrides)
        registry = RoomRegistry(**kwargs)
        self.addCleanup(lambda: self.drive(registry.stop()) if not registry._stopping else None)
        return registry

    def drive(self, awaitable) -> Any:
        """Drive ``awaitable`` on the fake clock (zero-delay calls only) to its result."""
        d = defer.ensureDeferred(awaitable) if not isinstance(awaitable, defer.Deferred) \
            else awaitable
        for _ in range(20):
            if d.called:
                break
            self.clock.advance(0)
        return self.successResultOf(d)

    def drive_failure(self, awaitable, *kinds):
        d = defer.ensureDeferred(awaitable)
        for _ in range(20):
            if d.called:
                break
            self.clock.advance(0)
        return self.failureResultOf(d, *kinds)

    def create_room(self, version: str | None = None, body: Mapping[str, Any] | None = None,
                    registry: RoomRegistry | None = None) -> tuple[str, list[PDU]]:
        version = version or self.room_version
        partials = initial_room_events(get_room_version(version), ALICE,
                                       body or {"preset": "public_chat"})
        return self.drive((registry or self.registry).create_room(ALICE, version, partials))

    def message(self, body: str = "hi", sender: str = ALICE) -> dict[str, Any]:
        return {"type": "m.room.message", "sender": sender,
                "content": {"msgtype": "m.text", "body": body}}


def remote_event(room_id: str, version: str, state: Mapping[tuple[str, str], PDU],
                 prev: list[PDU], partial: Mapping[str, Any], key, server: str = "remote",
                 ts: int = 1) -> PDU:
    """An event built and signed by another server on top of ``prev``/``state``."""
    room_version = get_room_version(version)
    wanted = auth_types_for_event(room_version, partial["type"], partial["sender"],
                                  partial.get("state_key"), partial.get("content", {}))
    event = dict(partial, room_id=room_id, prev_events=[p.event_id for p in prev],
                 auth_events=sorted(state[k].event_id for k in wanted if k in state),
                 depth=max(p.depth for p in prev) + 1)
    return finalize_event(room_version, event, server, key, ts)


def remote_key():
    return generate_signing_key()
