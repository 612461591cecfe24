"""Local users' typing, presence and receipts turned into EDUs for other servers."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from federation.outbound_edus import LocalEdus, presence_content
from homeserver.sync.presence import UserPresence
from tests.federation.test_destinations import FakeStreams, rooms_with_acls


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[set[str], str, dict]] = []

    def send_edu(self, destinations, edu_type: str, content) -> None:
        self.sent.append((set(destinations), edu_type, dict(content)))


class FakeOutbox:
    def __init__(self) -> None:
        self.entries: list[Any] = []

    async def add(self, entries, now_ms: int) -> int:
        self.entries += entries
        return len(self.entries)


class LocalEdusTests(unittest.TestCase):
    def setUp(self) -> None:
        self.sink, self.outbox = RecordingSink(), FakeOutbox()
        self.streams = FakeStreams({"!r:hs": ["@a:hs", "@b:one"], "!s:hs": ["@a:hs"],
                                    "!acl:hs": ["@e:hs", "@b:one", "@c:two"]})
        self.edus = self.make()

    def make(self, presence_enabled: bool = True) -> LocalEdus:
        return LocalEdus(server_name="hs", sender=self.sink, streams=self.streams,
                         outbox=self.outbox, now_ms=lambda: 10_000,
                         presence_enabled=presence_enabled,
                         rooms=rooms_with_acls({"!acl:hs": {"allow": ["one"]}}))

    def test_typing_of_local_users_only(self) -> None:
        """A local user's typing goes to the room's servers; a remote user's does not."""
        self.edus.typing_changed("!r:hs", "@a:hs", True)
        self.edus.typing_changed("!r:hs", "@b:one", True)
        self.assertEqual(self.sink.sent, [({"one"}, "m.typing", {
            "room_id": "!r:hs", "user_id": "@a:hs", "typing": True})])

    def test_typing_not_to_servers_the_rooms_acl_denies(self) -> None:
        """Typing in a room whose ACL allows only one of its servers goes there only."""
        self.edus.typing_changed("!acl:hs", "@e:hs", True)
        self.assertEqual([d for d, _, _ in self.sink.sent], [{"one"}])

    def test_presence_to_servers_sharing_a_room(self) -> None:
        """Presence goes to servers sharing a room, unless presence is disabled."""
        p = UserPresence("@a:hs", "online", last_active_ts=9_000, currently_active=True)
        self.edus.presence_changed(p)
        self.assertEqual(self.sink.sent, [({"one"}, "m.presence", {"push": [{
            "user_id": "@a:hs", "presence": "online", "last_active_ago": 1000,
            "currently_active": True}]})])
        self.make(presence_enabled=False).presence_changed(p)
        self.assertEqual(len(self.sink.sent), 1)

    def test_presence_content_defaults(self) -> None:
        """last_active_ago is always present (the spec requires it)."""
        self.assertEqual(presence_content("@a:hs", {"presence": "offline"}),
                         {"push": [{"user_id": "@a:hs", "presence": "offline",
                                    "last_active_ago": 0}]})

    def test_public_receipts_go_to_the_outbox(self) -> None:
        """m.read in a room with remote members is queued durably; private receipts
        and rooms without remote members are not."""
        def send(*args: Any) -> None:
            self.successResultOf(defer.ensureDeferred(self.edus.receipt_sent(*args)))

        send("!r:hs", "m.read", "@a:hs", "$e", {"ts": 5})
        send("!r:hs", "m.read.private", "@a:hs", "$e", {"ts": 5})
        send("!s:hs", "m.read", "@a:hs", "$e", {"ts": 5})
        send("!r:hs", "m.read", "@b:one", "$e", {"ts": 5})
        [entry] = self.outbox.entries
        self.assertEqual(entry.edu_type, "m.receipt")
        self.assertEqual(entry.content, {"!r:hs": {"m.read": {"@a:hs": {
            "event_ids": ["$e"], "data": {"ts": 5}}}}})
