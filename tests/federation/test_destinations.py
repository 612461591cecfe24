"""Who gets what: room events from the room stream, EDUs from the outbox; and a room
with a remote member whose messages reach that server through the sender."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from federation.destinations import OutboxSource, RoomEventSource, federation_form
from federation.sender import FederationSender
from homeserver.crypto.signing import sign_json
from homeserver.store.outbox import (
    DEVICE_LIST_UPDATE, DIRECT_TO_DEVICE, RECEIPT, SIGNING_KEY_UPDATE, OutboxEntry,
)
from homeserver.store.streams import StreamEntry
from tests.fakes.federation import FakeFederationClient, FakeProgress, FakeSource
from tests.fakes.rooms import ALICE, SERVER, RoomHarness, remote_event, remote_key

BOB = "@bob:remote"
CAROL = "@carol:third"


class StreamReader:
    """The reading side of ``Streams`` over the harness's fake room stream."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    async def current_room_stream_pos(self) -> int:
        return len(self._writer.stream)

    async def get_entries(self, since: int, upto: int | None = None, *,
                          room_ids=None, limit: int | None = None) -> list[StreamEntry]:
        end = len(self._writer.stream) if upto is None else upto
        out = [StreamEntry(i + 1, a.room_id, a.room_seq, a.event_id, a.type, a.state_key,
                           a.sender) for i, a in enumerate(self._writer.stream)
               if since < i + 1 <= end]
        return out if limit is None else out[:limit]


class RoomEventSourceTests(RoomHarness, unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.room_id, _ = self.create_room()
        self.actor = self.drive(self.registry.get(self.room_id))
        self.reader = StreamReader(self.stream)
        self.source = RoomEventSource(server_name=SERVER, streams=self.reader,
                                      rooms=self.registry.get)
        self.key = remote_key()

    def remote_join(self, user: str = BOB) -> None:
        state = self.drive(self.actor.current_state())
        prev = list(self.drive(self.actor.get_events(
            self.drive(self.actor.forward_extremities()))).values())
        join = remote_event(self.room_id, self.room_version, state, prev,
                            {"type": "m.room.member", "sender": user, "state_key": user,
                             "content": {"membership": "join"}}, self.key,
                            server=user.split(":")[1])
        self.drive(self.actor.apply_remote_pdus([join]))

    def resolve_last(self) -> Any:
        entry = self.drive(self.reader.get_entries(0))[-1]
        return self.drive(self.source.resolve(entry))

    def test_nobody_remote_nobody_to_send_to(self) -> None:
        """In a room of local users only, our events go nowhere."""
        self.drive(self.actor.create_event(self.message("alone")))
        self.assertIsNone(self.resolve_last())

    def test_servers_with_joined_members(self) -> None:
        """Our event goes to every server with a member joined, never to us."""
        self.remote_join()
        event = self.drive(self.actor.create_event(self.message("hello bob")))
        res = self.resolve_last()
        self.assertEqual(res.destinations, frozenset({"remote"}))
        self.assertEqual(res.payload, federation_form(event))
        self.assertNotIn("unsigned", res.payload)

    def test_remote_users_events_are_not_ours_to_send(self) -> None:
        """An event a remote user sent is not sent on by us."""
        self.remote_join()
        self.assertIsNone(self.resolve_last())   # Bob's own join

    def test_invitee_server_is_told(self) -> None:
        """An invite goes to the invitee's server too, though nobody there is joined."""
        self.remote_join()
        self.drive(self.actor.create_event({
            "type": "m.room.member", "sender": ALICE, "state_key": CAROL,
            "content": {"membership": "invite"}}))
        self.assertEqual(self.resolve_last().destinations,
                         frozenset({"remote", "third"}))

    def test_third_party_invite_redeemed_here_is_sent(self) -> None:
        """A remote inviter's third-party invite of our user, which we wrote after
        /3pid/onbind, is sent to the inviter's server; the inviter's own
        m.room.third_party_invite is not ours to send."""
        self.remote_join()
        levels = dict(self.drive(self.actor.current_state())[
            ("m.room.power_levels", "")].content)
        levels["users"] = {**levels.get("users", {}), BOB: 100}
        self.drive(self.actor.create_event({"type": "m.room.power_levels",
                                            "sender": ALICE, "state_key": "",
                                            "content": levels}))
        identity = remote_key()
        state = self.drive(self.actor.current_state())
        prev = list(self.drive(self.actor.get_events(
            self.drive(self.actor.forward_extremities()))).values())
        stored = remote_event(self.room_id, self.room_version, state, prev, {
            "type": "m.room.third_party_invite", "sender": BOB, "state_key": "tok",
            "content": {"display_name": "d...", "public_key": identity.verify_key_base64,
                        "key_validity_url": "https://id/v"}}, self.key)
        [outcome] = self.drive(self.actor.apply_remote_pdus([stored]))
        self.assertEqual(outcome.status, "accepted", outcome)
        self.assertIsNone(self.resolve_last())
        dave = "@dave:" + SERVER
        signed = sign_json({"mxid": dave, "token": "tok"}, "id.example", identity)
        self.drive(self.actor.create_event({
            "type": "m.room.member", "sender": BOB, "state_key": dave,
            "content": {"membership": "invite", "third_party_invite": {
                "display_name": "d...", "signed": signed}}}))
        self.assertEqual(self.resolve_last().destinations, frozenset({"remote"}))

    def test_kicked_server_is_told(self) -> None:
        """Kicking the last member of a server still sends the kick there."""
        self.remote_join()
        self.drive(self.actor.create_event({
            "type": "m.room.member", "sender": ALICE, "state_key": BOB,
            "content": {"membership": "leave"}}))
        self.assertEqual(self.resolve_last().destinations, frozenset({"remote"}))
        self.drive(self.actor.create_event(self.message("after the kick")))
        self.assertIsNone(self.resolve_last())

    def test_destinations_follow_state_changes_between_messages(self) -> None:
        """Messages under the same state share their destinations; a join, then a
        leave, between messages change them."""
        self.drive(self.actor.create_event(self.message("before")))
        self.assertIsNone(self.resolve_last())
        self.remote_join()
        for text in ("one", "two"):
            self.drive(self.actor.create_event(self.message(text)))
            self.assertEqual(self.resolve_last().destinations, frozenset({"remote"}))
        self.drive(self.actor.create_event({
            "type": "m.room.member", "sender": ALICE, "state_key": BOB,
            "content": {"membership": "leave"}}))
        self.drive(self.actor.create_event(self.message("after")))
        self.assertIsNone(self.resolve_last())

    def test_released_caches_are_computed_again(self) -> None:
        """release_caches (every room asleep) empties the per-state-groups cache; the
        next message gets the same destinations, computed again."""
        self.remote_join()
        self.drive(self.actor.create_event(self.message("one")))
        self.assertEqual(self.resolve_last().destinations, frozenset({"remote"}))
        self.assertTrue(self.source._by_groups)
        self.source.release_caches()
        self.assertFalse(self.source._by_groups)
        self.drive(self.actor.create_event(self.message("two")))
        self.assertEqual(self.resolve_last().destinations, frozenset({"remote"}))

    def test_server_denied_by_the_acl_gets_no_pdus(self) -> None:
        """Once the room's server ACL denies a server, neither the ACL event nor later
        events go there, though its user is still joined; the others still get them."""
        self.remote_join()
        self.remote_join(CAROL)
        self.drive(self.actor.create_event({
            "type": "m.room.server_acl", "sender": ALICE, "state_key": "",
            "content": {"allow": ["*"], "deny": ["third"]}}))
        self.assertEqual(self.resolve_last().destinations, frozenset({"remote"}))
        self.drive(self.actor.create_event(self.message("not for third")))
        self.assertEqual(self.resolve_last().destinations, frozenset({"remote"}))

    def test_message_reaches_the_remote_member_through_the_sender(self) -> None:
        """A room with a remote member: our message becomes a transaction to its
        server, exactly once, and the room's other traffic does not."""
        client, progress = FakeFederationClient(), FakeProgress()
        sender = FederationSender(server_name=SERVER, clock=self.clock, client=client,
                                  progress=progress, pdu_source=self.source,
                                  edu_source=FakeSource("federation_outbox"))
        self.drive(defer.ensureDeferred(sender.start()))
        self.addCleanup(sender.stop)
        self.remote_join()
        event = self.drive(self.actor.create_event(self.message("over the wire")))
        sender.wake("room")
        self.clock.advance(0)
        self.assertEqual([p["content"].get("body") for p in client.delivered("remote")],
                         ["over the wire"])
        self.assertEqual(client.delivered("remote")[0], federation_form(event))
        sender.wake("room")
        self.assertEqual(len(client.sent), 1)
        self.assertEqual(progress.dests["remote"].acked["room"], len(self.stream.stream))


class FakeStreams:
    def __init__(self, rooms: dict[str, list[str]]) -> None:
        self.rooms = rooms

    async def get_room_members(self, room_id: str, memberships=("join",)) -> dict:
        return {u: "join" for u in self.rooms.get(room_id, [])}

    async def users_sharing_a_room_with(self, user_id: str) -> set[str]:
        return {u for members in self.rooms.values() if user_id in members
                for u in members}


class FakeRoom:
    """A room actor's ACL reads: ``acl`` is the content of its server ACL (or None)."""

    def __init__(self, acl: dict | None = None) -> None:
        self.acl = acl

    async def current_state(self, types=None) -> dict:
        if self.acl is None:
            return {}
        return {("m.room.server_acl", ""): type("Acl", (), {"content": self.acl})()}

    async def state_at(self, event_id: str, *, after: bool = False, types=None) -> dict:
        return await self.current_state(types)


def rooms_with_acls(acls: dict[str, dict]) -> Any:
    """``rooms(room_id)`` for rooms whose server ACLs are ``acls`` (others have none)."""
    async def rooms(room_id: str) -> FakeRoom:
        return FakeRoom(acls.get(room_id))
    return rooms


class OutboxSourceTests(unittest.TestCase):
    def setUp(self) -> None:
        self.streams = FakeStreams({"!r:hs": ["@a:hs", "@b:one", "@c:two"],
                                    "!s:hs": ["@a:hs", "@d:three"]})
        self.devices = {("@a:hs", "D1"): {"device_id": "D1", "keys": {"ed25519:D1": "k"},
                                          "unsigned": {"device_display_name": "phone"}}}

        async def device_keys(user: str, device: str):
            return self.devices.get((user, device))

        async def cross_signing(user: str):
            return {"master": {"usage": ["master"]},
                    "self_signing": {"usage": ["self_signing"]},
                    "user_signing": {"usage": ["user_signing"]}}

        self.source = OutboxSource(server_name="hs", outbox=None, streams=self.streams,
                                   rooms=rooms_with_acls({"!r:hs": {
                                       "allow": ["*"], "deny": ["two"]}}),
                                   device_keys=device_keys,
                                   cross_signing_keys=cross_signing)

    def resolve(self, entry: OutboxEntry) -> Any:
        return self.successResultOf(defer.ensureDeferred(self.source.resolve(entry)))

    def test_to_device_goes_to_its_destination(self) -> None:
        """A to-device entry goes to the server it names, content as queued."""
        content = {"sender": "@a:hs", "type": "m.x", "message_id": "m", "messages": {}}
        res = self.resolve(OutboxEntry(DIRECT_TO_DEVICE, "@a:hs", content, "one"))
        self.assertEqual(res.destinations, frozenset({"one"}))
        self.assertEqual(res.payload, {"edu_type": DIRECT_TO_DEVICE, "content": content})

    def test_device_list_update_to_servers_sharing_a_room(self) -> None:
        """A device change goes to every server sharing a room, with the keys."""
        res = self.resolve(OutboxEntry(DEVICE_LIST_UPDATE, "@a:hs",
                                       {"user_id": "@a:hs", "device_id": "D1",
                                        "stream_id": 4}))
        self.assertEqual(res.destinations, frozenset({"one", "two", "three"}))
        content = res.payload["content"]
        self.assertEqual(content["device_display_name"], "phone")
        self.assertEqual(content["keys"], {"device_id": "D1", "keys": {"ed25519:D1": "k"}})
        self.assertEqual((content["stream_id"], content["prev_id"]), (4, []))
        self.assertNotIn("deleted", content)

    def test_deleted_device(self) -> None:
        """An update for a device that is gone says so."""
        res = self.resolve(OutboxEntry(DEVICE_LIST_UPDATE, "@a:hs",
                                       {"user_id": "@a:hs", "device_id": "GONE",
                                        "stream_id": 5}))
        self.assertTrue(res.payload["content"]["deleted"])

    def test_signing_key_update_carries_master_and_self_signing(self) -> None:
        """The signing-key EDU has the master and self-signing keys, nothing private."""
        res = self.resolve(OutboxEntry(SIGNING_KEY_UPDATE, "@a:hs",
                                       {"user_id": "@a:hs", "device_id": None}))
        self.assertEqual(set(res.payload["content"]),
                         {"user_id", "master_key", "self_signing_key"})

    def test_receipt_goes_to_the_rooms_servers(self) -> None:
        """A receipt goes to the servers in its room only."""
        res = self.resolve(OutboxEntry(RECEIPT, "@a:hs", {"!s:hs": {"m.read": {}}}))
        self.assertEqual(res.destinations, frozenset({"three"}))

    def test_receipt_not_to_servers_the_rooms_acl_denies(self) -> None:
        """A receipt in a room whose ACL denies a server does not go there."""
        res = self.resolve(OutboxEntry(RECEIPT, "@a:hs", {"!r:hs": {"m.read": {}}}))
        self.assertEqual(res.destinations, frozenset({"one"}))

    def test_user_alone_goes_nowhere(self) -> None:
        """A user sharing no room with anyone remote has nobody to tell."""
        self.assertIsNone(self.resolve(OutboxEntry(DEVICE_LIST_UPDATE, "@z:hs",
                                                   {"device_id": "D"})))
