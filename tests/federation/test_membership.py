"""Membership across two in-process servers: ``test`` holds the rooms and serves
make_*/send_*/invite (``MembershipServer``), ``remote`` joins, is invited and rejects
invites through ``RemoteMembership`` (spec: server-server "Joining Rooms", "Inviting
to a room", "Leaving Rooms (Rejecting Invites)")."""

from __future__ import annotations

import os

from twisted.trial import unittest

from homeserver.crypto.signing import generate_signing_key
from federation.client import RemoteHttpError, RemoteUnreachable
from homeserver.errors import (
    BadJson, Forbidden, IncompatibleRoomVersion, MatrixError, NotFound, UnknownError)
from homeserver.events.builder import finalize_event
from homeserver.events.room_versions import get_room_version
from tests.fakes.rooms import ALICE, SERVER, RoomHarness
from tests.federation.membership_fakes import build_side

BOB = "@bob:remote"


class _TwoServers(RoomHarness):
    room_version = "12"

    def setUp(self) -> None:
        super().setUp()
        self.remote_key = generate_signing_key("r1")
        self.remote_registry = self.make_registry(
            data_dir=os.path.abspath(self.mktemp()), server_name="remote",
            signing_key=self.remote_key)
        keys = {SERVER: self.signing_key, "remote": self.remote_key}
        servers: dict = {}
        (self.server, self.ours, self.our_memberships, _s, _n,
         self.our_client) = build_side(self, self.registry, SERVER, self.signing_key, keys,
                                       [ALICE], servers)
        (self.remote_server, self.theirs, self.their_memberships, self.their_stream,
         self.their_notified, self.their_client) = build_side(
            self, self.remote_registry, "remote", self.remote_key, keys, [BOB], servers)

    def membership(self, registry, room_id: str, user_id: str):
        return self.drive(self.drive(registry.get(room_id)).membership(user_id))


class MembershipTests(_TwoServers, unittest.TestCase):

    # -- joins ------------------------------------------------------------------------
    def _remote_join(self, version: str) -> None:
        room_id, _ = self.create_room(version)
        self.drive(self.theirs.join(room_id, BOB, [SERVER], {"membership": "join"}))
        self.assertEqual(self.membership(self.registry, room_id, BOB), "join")
        self.assertEqual(self.membership(self.remote_registry, room_id, BOB), "join")
        ours = self.drive(self.drive(self.registry.get(room_id)).current_state_ids())
        theirs = self.drive(self.drive(self.remote_registry.get(room_id)).current_state_ids())
        self.assertEqual(theirs, ours)
        # the state came as outliers: the joiner's side indexes the room's other members
        self.assertEqual({u: m for u, m, _ in self.their_stream.seeded[room_id]},
                         {ALICE: "join"})

    def test_join_public_room_v12(self) -> None:
        """A remote user joins a v12 room: both servers hold the same current state."""
        self._remote_join("12")

    def test_join_public_room_v10(self) -> None:
        """The same in room version 10 (room ID with a server part)."""
        self._remote_join("10")

    def test_join_via_fallback_server(self) -> None:
        """An unreachable server is skipped; the next one in the list is used."""
        room_id, _ = self.create_room()
        self.drive(self.theirs.join(room_id, BOB, ["down.example", SERVER],
                                    {"membership": "join"}))
        self.assertEqual(self.membership(self.remote_registry, room_id, BOB), "join")
        self.assertEqual([c[1] for c in self.their_client.calls][:2],
                         ["down.example", SERVER])

    def test_join_private_room_forbidden(self) -> None:
        """make_join answers 403 for an invite-only room; the joiner keeps nothing."""
        room_id, _ = self.create_room(body={"preset": "private_chat"})
        self.drive_failure(self.theirs.join(room_id, BOB, [SERVER], {}), Forbidden)
        self.assertFalse(self.remote_registry.known(room_id))

    def test_join_without_servers_is_not_found(self) -> None:
        """A v12 room ID names no server: without via servers or an invite, 404."""
        room_id, _ = self.create_room()
        self.drive_failure(self.theirs.join(room_id, BOB, [], {}), NotFound)

    def test_make_join_incompatible_version(self) -> None:
        """make_join with ``ver`` not including the room's version: 400 and the version."""
        room_id, _ = self.create_room()
        failure = self.drive_failure(
            self.server.make("remote", room_id, BOB, "join", ["9"]),
            IncompatibleRoomVersion)
        self.assertEqual(failure.value.to_json()["room_version"], "12")

    def test_make_join_for_another_servers_user(self) -> None:
        """A server may not ask for a template for a user of another server."""
        room_id, _ = self.create_room()
        self.drive_failure(self.server.make("remote", room_id, "@eve:evil", "join", ["12"]),
                           Forbidden)

    def test_make_join_unknown_room(self) -> None:
        """make_join for a room we do not hold: 404."""
        self.drive_failure(self.server.make("remote", "!nope", BOB, "join", ["12"]),
                           NotFound)

    def test_server_denied_by_the_acl_is_refused(self) -> None:
        """A server the room's ACL denies gets 403 for make_join, make_leave,
        make_knock and send_join."""
        room_id, _ = self.create_room()
        self.drive(self.drive(self.registry.get(room_id)).create_event({
            "type": "m.room.server_acl", "sender": ALICE, "state_key": "",
            "content": {"allow": ["*"], "deny": ["remote"]}}))
        for membership in ("join", "leave", "knock"):
            failure = self.drive_failure(
                self.server.make("remote", room_id, BOB, membership, ["12"]), Forbidden)
            self.assertIn("ACL", failure.value.message)
        self.drive_failure(self.server.send_join("remote", room_id, "$x", {}), Forbidden)

    def test_make_join_template(self) -> None:
        """The template cites our extremities, the room's auth events, and the version."""
        room_id, events = self.create_room()
        answer = self.drive(self.server.make("remote", room_id, BOB, "join", ["10", "12"]))
        self.assertEqual(answer["room_version"], "12")
        event = answer["event"]
        self.assertEqual((event["type"], event["sender"], event["state_key"],
                          event["content"]), ("m.room.member", BOB, BOB,
                                              {"membership": "join"}))
        self.assertEqual(event["prev_events"], [events[-1].event_id])
        self.assertNotIn("signatures", event)

    def _signed_join(self, room_id: str, key, server: str = "remote"):
        template = self.drive(self.server.make("remote", room_id, BOB, "join", ["12"]))
        return finalize_event(get_room_version("12"), template["event"], server, key,
                              int(self.clock.seconds() * 1000))

    def test_send_join_answers_state_and_auth_chain(self) -> None:
        """send_join puts the join in the room and answers the state before it."""
        room_id, events = self.create_room()
        join = self._signed_join(room_id, self.remote_key)
        answer = self.drive(self.server.send_join("remote", room_id, join.event_id,
                                                  dict(join.get_dict())))
        self.assertEqual(answer["members_omitted"], False)
        self.assertEqual(answer["servers_in_room"], ["remote", SERVER])
        self.assertEqual({e["type"] for e in answer["state"]},
                         {e.type for e in events if e.is_state()})
        self.assertEqual(self.membership(self.registry, room_id, BOB), "join")

    def test_send_join_bad_signature(self) -> None:
        """A join not signed by the sender's server's key is refused (403), not stored."""
        room_id, _ = self.create_room()
        join = self._signed_join(room_id, generate_signing_key("r1"))
        self.drive_failure(self.server.send_join("remote", room_id, join.event_id,
                                                 dict(join.get_dict())), Forbidden)
        self.assertIsNone(self.membership(self.registry, room_id, BOB))

    def test_send_join_wrong_event_id(self) -> None:
        """The path's event ID must be the event's: 400 M_BAD_JSON otherwise."""
        room_id, _ = self.create_room()
        join = self._signed_join(room_id, self.remote_key)
        self.drive_failure(self.server.send_join("remote", room_id, "$other",
                                                 dict(join.get_dict())), BadJson)

    def test_send_join_from_another_origin(self) -> None:
        """A join relayed by a server other than the sender's is refused (403)."""
        room_id, _ = self.create_room()
        join = self._signed_join(room_id, self.remote_key)
        self.drive_failure(self.server.send_join("elsewhere", room_id, join.event_id,
                                                 dict(join.get_dict())), Forbidden)

    # -- invites and rejections -------------------------------------------------------
    def _invite_bob(self, version: str = "12") -> str:
        room_id, _ = self.create_room(version, body={"preset": "private_chat"})
        actor = self.drive(self.registry.get(room_id))
        self.drive(self.ours.invite(actor, ALICE, BOB, {"membership": "invite"}, []))
        return room_id

    def test_invite_remote_user(self) -> None:
        """Inviting a remote user: both servers sign; the invitee's server keeps the
        invite for a room it does not hold and announces it for /sync."""
        room_id = self._invite_bob()
        self.assertEqual(self.membership(self.registry, room_id, BOB), "invite")
        invite = self.drive(self.drive(self.registry.get(room_id)).current_state(
            [("m.room.member", BOB)]))[("m.room.member", BOB)]
        self.assertEqual(set(invite.get("signatures")), {SERVER, "remote"})
        [row] = self.their_memberships.rows
        self.assertEqual((row.user_id, row.room_id, row.membership, row.event_id),
                         (BOB, room_id, "invite", invite.event_id))
        self.assertEqual(row.stripped_state[-1]["state_key"], BOB)
        [announced] = self.their_stream.announced
        self.assertEqual((announced.room_seq, announced.membership), (-1, "invite"))
        self.assertEqual(self.their_notified, [BOB])
        self.assertFalse(self.remote_registry.known(room_id))

    def test_invite_unknown_user(self) -> None:
        """Their server does not know the user: our client hears our error, no invite."""
        room_id, _ = self.create_room(body={"preset": "private_chat"})
        actor = self.drive(self.registry.get(room_id))
        self.drive_failure(self.ours.invite(actor, ALICE, "@nobody:remote",
                                            {"membership": "invite"}, []), UnknownError)
        self.assertIsNone(self.membership(self.registry, room_id, "@nobody:remote"))

    def test_invite_not_allowed(self) -> None:
        """An invite the auth rules refuse is not sent anywhere (403)."""
        room_id, _ = self.create_room(body={"preset": "private_chat"})
        actor = self.drive(self.registry.get(room_id))
        self.drive_failure(self.ours.invite(actor, "@mallory:test", BOB,
                                            {"membership": "invite"}, []), Forbidden)
        self.assertEqual(self.our_client.calls, [])

    def test_join_after_invite_uses_inviters_server(self) -> None:
        """An invited user joins a v12 room with no servers given: via the inviter's."""
        room_id = self._invite_bob()
        self.drive(self.theirs.join(room_id, BOB, [], {"membership": "join"}))
        self.assertEqual(self.membership(self.registry, room_id, BOB), "join")

    def test_reject_invite(self) -> None:
        """Rejecting an invite to a room we do not hold: make_leave/send_leave on the
        inviting server, and the leave replaces the invite here."""
        room_id = self._invite_bob("10")
        self.drive(self.theirs.leave(room_id, BOB))
        self.assertEqual(self.membership(self.registry, room_id, BOB), "leave")
        self.assertEqual([r.membership for r in self.their_memberships.rows],
                         ["invite", "leave"])
        self.assertEqual([a.room_seq for a in self.their_stream.announced], [-1, -2])
        self.assertFalse(self.remote_registry.known(room_id))

    def test_invite_wrong_room_version(self) -> None:
        """An invite in a room version we do not know: 400 M_INCOMPATIBLE_ROOM_VERSION."""
        self.drive_failure(self.remote_server.invite(SERVER, "!r", "$e", {
            "room_version": "999", "event": {}}), IncompatibleRoomVersion)

    # -- knocks -----------------------------------------------------------------------
    def test_knock(self) -> None:
        """make_knock/send_knock on a knockable room: the knock is in, stripped state out."""
        room_id, _ = self.create_room(body={"preset": "private_chat"})
        actor = self.drive(self.registry.get(room_id))
        self.drive(actor.create_event({"type": "m.room.join_rules", "sender": ALICE,
                                       "state_key": "", "content": {"join_rule": "knock"}}))
        template = self.drive(self.server.make("remote", room_id, BOB, "knock", ["12"]))
        knock = finalize_event(get_room_version("12"), template["event"], "remote",
                               self.remote_key, int(self.clock.seconds() * 1000))
        answer = self.drive(self.server.send_knock("remote", room_id, knock.event_id,
                                                   dict(knock.get_dict())))
        self.assertIn("m.room.join_rules", [e["type"] for e in answer["knock_room_state"]])
        self.assertEqual(self.membership(self.registry, room_id, BOB), "knock")


class RemoteKnockTests(_TwoServers, unittest.TestCase):
    def test_knock_on_remote_room(self) -> None:
        """Our user knocks on a room held elsewhere: the knock is in that room, and
        here it is kept with the knock_room_state answered, for /sync rooms.knock."""
        room_id, _ = self.create_room(body={"preset": "private_chat"})
        actor = self.drive(self.registry.get(room_id))
        self.drive(actor.create_event({"type": "m.room.join_rules", "sender": ALICE,
                                       "state_key": "", "content": {"join_rule": "knock"}}))
        self.drive(self.theirs.knock(room_id, BOB, [SERVER], "let me in"))
        self.assertEqual(self.membership(self.registry, room_id, BOB), "knock")
        [row] = self.their_memberships.rows
        self.assertEqual(row.membership, "knock")
        self.assertEqual([(e["type"], e["state_key"]) for e in row.stripped_state][-1],
                         ("m.room.member", BOB))
        self.assertIn("m.room.join_rules", [e["type"] for e in row.stripped_state])
        self.assertFalse(self.remote_registry.known(room_id))

    def test_knock_refused(self) -> None:
        """A room whose join rule is not knock: make_knock is 403, nothing kept."""
        room_id, _ = self.create_room(body={"preset": "private_chat"})
        self.drive_failure(self.theirs.knock(room_id, BOB, [SERVER]), Forbidden)
        self.assertEqual(self.their_memberships.rows, [])


class HandshakeTests(_TwoServers, unittest.TestCase):
    """The make_*/send_* sequence join, knock and leave share: the next server after
    one that fails, and what the client hears when a send_* fails."""

    def _knockable_room(self) -> str:
        room_id, _ = self.create_room(body={"preset": "private_chat"})
        actor = self.drive(self.registry.get(room_id))
        self.drive(actor.create_event({"type": "m.room.join_rules", "sender": ALICE,
                                       "state_key": "", "content": {"join_rule": "knock"}}))
        return room_id

    def _invited_room(self) -> str:
        room_id, _ = self.create_room("10", body={"preset": "private_chat"})
        actor = self.drive(self.registry.get(room_id))
        self.drive(self.ours.invite(actor, ALICE, BOB, {"membership": "invite"}, []))
        return room_id

    def _sends_fail(self, error: Exception) -> None:
        """Every PUT from the remote side fails with ``error`` (make_* still works)."""
        async def put_json(destination, path, body):
            self.their_client.calls.append(("PUT", destination, path))
            raise error
        self.their_client.put_json = put_json

    def _destinations(self) -> list[tuple[str, str]]:
        return [(method, destination) for method, destination, _ in self.their_client.calls]

    def test_knock_via_fallback_server(self) -> None:
        """A knock skips an unreachable server and goes through the next one."""
        room_id = self._knockable_room()
        self.drive(self.theirs.knock(room_id, BOB, ["down.example", SERVER]))
        self.assertEqual(self.membership(self.registry, room_id, BOB), "knock")
        self.assertEqual(self._destinations(),
                         [("GET", "down.example"), ("GET", SERVER), ("PUT", SERVER)])

    def test_leave_via_fallback_server(self) -> None:
        """Rejecting an invite skips an unreachable server, then uses the inviter's."""
        room_id = self._invited_room()
        self.drive(self.theirs.leave(room_id, BOB, ["down.example"]))
        self.assertEqual(self.membership(self.registry, room_id, BOB), "leave")
        self.assertEqual(self._destinations(),
                         [("GET", "down.example"), ("GET", SERVER), ("PUT", SERVER)])

    def test_leave_without_servers_is_not_found(self) -> None:
        """No server to reject an invite through (none given, no invite kept): 404."""
        self.drive_failure(self.theirs.leave("!nowhere", BOB), NotFound)
        self.assertEqual(self.their_client.calls, [])

    def test_send_knock_refused_is_forbidden(self) -> None:
        """send_knock answered 403: the client hears 403, and nothing is kept."""
        room_id = self._knockable_room()
        self._sends_fail(RemoteHttpError(SERVER, 403, b"{}"))
        failure = self.drive_failure(self.theirs.knock(room_id, BOB, [SERVER]), Forbidden)
        self.assertIn("refused the knock", failure.value.message)
        self.assertEqual(self.their_memberships.rows, [])

    def test_send_join_unreachable_is_502(self) -> None:
        """send_join cannot reach the server: our own 502, the room not imported."""
        room_id, _ = self.create_room()
        self._sends_fail(RemoteUnreachable(SERVER, "connection reset"))
        failure = self.drive_failure(self.theirs.join(room_id, BOB, [SERVER], {}),
                                     MatrixError)
        self.assertEqual((failure.value.errcode, failure.value.status), ("M_UNKNOWN", 502))
        self.assertFalse(self.remote_registry.known(room_id))

    def test_send_leave_refused_is_unknown(self) -> None:
        """send_leave answered 403: M_UNKNOWN (a rejection's failure is never ours to
        call forbidden), and the invite stays."""
        room_id = self._invited_room()
        self._sends_fail(RemoteHttpError(SERVER, 403, b"{}"))
        failure = self.drive_failure(self.theirs.leave(room_id, BOB), UnknownError)
        self.assertEqual(failure.value.errcode, "M_UNKNOWN")
        self.assertEqual([r.membership for r in self.their_memberships.rows], ["invite"])


class _Alice:
    """An authoriser that vouches with the room's creator (a local member who may
    invite), as MembershipService does for a restricted room."""

    async def restricted_join_authoriser(self, actor, state, user_id):
        return ALICE


class RestrictedJoinTests(_TwoServers, unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.server._authoriser = _Alice()

    def test_restricted_join_is_cosigned(self) -> None:
        """A restricted room: the template names our authorising member, our server
        co-signs the join in send_join, and the joiner imports the co-signed event."""
        room_id, _ = self.create_room(body={"preset": "private_chat"})
        actor = self.drive(self.registry.get(room_id))
        self.drive(actor.create_event({
            "type": "m.room.join_rules", "sender": ALICE, "state_key": "",
            "content": {"join_rule": "restricted", "allow": [
                {"type": "m.room_membership", "room_id": "!elsewhere"}]}}))
        self.drive(self.theirs.join(room_id, BOB, [SERVER], {"membership": "join"}))
        join = self.drive(self.drive(self.remote_registry.get(room_id)).current_state(
            [("m.room.member", BOB)]))[("m.room.member", BOB)]
        self.assertEqual(join.content["join_authorised_via_users_server"], ALICE)
        self.assertEqual(set(join.get("signatures")), {SERVER, "remote"})
        self.assertEqual(self.membership(self.registry, room_id, BOB), "join")
