"""Backfiller: earlier history of a room joined over federation, fetched from a server
of the room (spec: "GET /backfill/{roomId}"), checked outside the actor and stored as
history; which servers are asked, bounds, one backfill per room, failures."""

from twisted.internet import defer
from twisted.trial import unittest

from federation.backfill import BACKFILL_LIMIT, RETRY_SECONDS, Backfiller
from federation.gaps import GapFiller
from federation.pdu_checks import PduChecker
from homeserver.crypto.signing import SigningKey
from homeserver.events.builder import finalize_event
from tests.fakes.rooms import RoomHarness, remote_event
from tests.federation.fakes import FakeKeyring
from tests.federation.remote_history import (
    REMOTE_KEY, REMOTE_SERVER, RITA, RoomHistoryFixture)

FORGER = SigningKey.from_seed("r1", b"\x09" * 32)
DEEP = 2 ** 53


class BackfillTestCase(RoomHistoryFixture, RoomHarness, unittest.TestCase):
    def other_join(self, user_id):
        """A join to our copy of the room by a user of another server."""
        state = self.drive(self.ours.current_state())
        prevs = list(self.drive(self.ours.get_events(
            self.drive(self.ours.forward_extremities()))).values())
        return remote_event(self.room_id, self.room_version, state, prevs,
                            {"type": "m.room.member", "sender": user_id,
                             "state_key": user_id, "content": {"membership": "join"}},
                            FORGER, user_id.split(":")[1])


class JoinedViaTest(BackfillTestCase):
    joined_via = "other.example"

    def test_joined_via_first(self):
        """The server our join went through is asked before the creator's."""
        self.remote_room(1)
        self.drive(self.ours.apply_remote_pdus([self.other_join("@otto:other.example")]))
        backfiller = Backfiller(server_name="test", client=None, clock=self.clock,
                                gaps=None)
        self.assertEqual(self.drive(backfiller.servers(self.ours)),
                         ["other.example", REMOTE_SERVER])


class BackfillerTest(BackfillTestCase):
    def setUp(self):
        super().setUp()
        self.remote_room(30)
        self.backfiller = self.make_backfiller(self.server)

    def make_backfiller(self, client, limit=BACKFILL_LIMIT):
        checker = PduChecker(FakeKeyring({(REMOTE_SERVER, REMOTE_KEY.key_id):
                                          REMOTE_KEY.verify_key_bytes}))
        return Backfiller(server_name="test", client=client, clock=self.clock,
                          gaps=GapFiller(client=client, checker=checker), limit=limit)

    def backfill(self, backfiller=None):
        return self.drive((backfiller or self.backfiller).backfill(self.ours, DEEP))

    def test_history_before_the_join_is_stored_in_order(self):
        """One backfill brings the whole (small) history: our timeline then equals the
        remote's, create event first, our join last."""
        self.assertEqual(self.timeline(), [self.join.event_id])
        self.assertTrue(self.backfill())
        self.assertEqual(self.timeline(), self.remote_timeline())
        [(server, args)] = self.server.backfills()
        self.assertEqual(server, REMOTE_SERVER)
        self.assertEqual(args, {"v": list(self.join.prev_event_ids),
                                "limit": str(BACKFILL_LIMIT)})

    def test_history_is_not_live(self):
        """Backfilled events are not announced to the room stream (so neither /sync
        nor the federation sender sees them), and current state and forward
        extremities stay as they were."""
        announced = len(self.stream.stream)
        state = self.drive(self.ours.current_state_ids())
        self.backfill()
        self.assertEqual(len(self.stream.stream), announced)
        self.assertEqual(self.drive(self.ours.forward_extremities()), [self.join.event_id])
        self.assertEqual(self.drive(self.ours.current_state_ids()), state)
        events, _ = self.drive(self.ours.events_since(0, 100))
        self.assertEqual([e.event_id for e in events], [self.join.event_id])

    def test_pages_go_further_back_until_the_create_event(self):
        """With a small limit each backfill goes one page further back; once the
        create event is reached there is nothing left to ask for."""
        backfiller = self.make_backfiller(self.server, limit=10)
        pages = 0
        while self.backfill(backfiller):
            pages += 1
            self.assertLess(pages, 10)
        self.assertGreaterEqual(pages, 3)
        self.assertEqual(self.timeline(), self.remote_timeline())
        self.assertEqual(self.drive(self.ours.backward_extremities(DEEP, 10)), [])
        asked = len(self.server.backfills())
        self.assertFalse(self.backfill(backfiller))
        self.assertEqual(len(self.server.backfills()), asked)

    def test_creator_server_first_then_others(self):
        """The creator's server is asked first; when it fails the next joined server
        is, and the failure does not escape."""
        self.assertEqual(self.drive(self.backfiller.servers(self.ours)), [REMOTE_SERVER])
        other = "@otto:other.example"
        self.drive(self.ours.apply_remote_pdus([self.other_join(other)]))
        self.assertEqual(self.drive(self.backfiller.servers(self.ours)),
                         [REMOTE_SERVER, "other.example"])
        self.server.down.add(REMOTE_SERVER)
        self.assertTrue(self.backfill())
        self.assertEqual([d for d, _ in self.server.backfills()],
                         [REMOTE_SERVER, "other.example"])

    def test_failure_is_not_retried_at_once(self):
        """All servers failing gives False; the same extremities are not asked about
        again until RETRY_SECONDS have passed."""
        self.server.down.add(REMOTE_SERVER)
        self.assertFalse(self.backfill())
        self.assertFalse(self.backfill())
        self.assertEqual(len(self.server.backfills()), 1)
        self.server.down.clear()
        self.clock.advance(RETRY_SECONDS)
        self.assertTrue(self.backfill())
        self.assertEqual(len(self.server.backfills()), 2)

    def test_one_backfill_per_room(self):
        """Concurrent callers wait for the running backfill and share its result."""
        gate = defer.Deferred()
        real_get = self.server.get_json

        async def slow_get(destination, path, args=None, *, timeout=None):
            await gate
            return await real_get(destination, path, args, timeout=timeout)

        self.server.get_json = slow_get
        first = defer.ensureDeferred(self.backfiller.backfill(self.ours, DEEP))
        second = defer.ensureDeferred(self.backfiller.backfill(self.ours, DEEP))
        self.clock.advance(0)
        self.assertFalse(first.called or second.called)
        gate.callback(None)
        self.assertTrue(self.drive(first))
        self.assertTrue(self.drive(second))
        self.assertEqual(len(self.server.backfills()), 1)

    def test_forged_events_are_dropped(self):
        """A returned event whose signature does not verify is not stored; the rest
        of the answer is (as for inbound PDUs)."""
        forged = finalize_event(self.theirs.room_version, {
            "room_id": self.room_id, "type": "m.room.message", "sender": RITA,
            "content": {"body": "forged"}, "prev_events": [self.history[-1].event_id],
            "auth_events": list(self.history[-1].auth_event_ids),
            "depth": self.history[-1].depth + 1}, REMOTE_SERVER, FORGER, 5)
        real_get = self.server.get_json

        async def with_forgery(destination, path, args=None, *, timeout=None):
            answer = await real_get(destination, path, args, timeout=timeout)
            if "/backfill/" in path:
                answer = dict(answer, pdus=[dict(forged.get_dict())] + answer["pdus"])
            return answer

        self.server.get_json = with_forgery
        self.assertTrue(self.backfill())
        self.assertIsNone(self.drive(self.ours.get_event(forged.event_id)))
        self.assertEqual(self.timeline(), self.remote_timeline())

    def test_bad_content_hash_is_stored_redacted(self):
        """A returned event whose content does not match its hash is kept in its
        redacted form."""
        target = self.history[5]
        real_get = self.server.get_json

        async def tampered(destination, path, args=None, *, timeout=None):
            answer = await real_get(destination, path, args, timeout=timeout)
            if "/backfill/" in path:
                pdus = []
                for pdu in answer["pdus"]:
                    if pdu == dict(target.get_dict()):
                        pdu = dict(pdu, content={"msgtype": "m.text", "body": "changed"})
                    pdus.append(pdu)
                answer = dict(answer, pdus=pdus)
            return answer

        self.server.get_json = tampered
        self.assertTrue(self.backfill())
        stored = self.drive(self.ours.get_event(target.event_id))
        self.assertEqual(stored.content, {})
