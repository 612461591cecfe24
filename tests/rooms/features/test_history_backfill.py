"""/messages in a room joined over federation: reaching the oldest events held, the
walk waits for a backfill and reads on into it; a failing backfill still answers
with what is held (spec: Client-Server "GET /rooms/{roomId}/messages"; Server-Server
"Backfilling and retrieving missing events")."""

from twisted.trial import unittest

from federation.backfill import Backfiller
from federation.gaps import GapFiller
from federation.pdu_checks import PduChecker
from homeserver.rooms.features.client_events import ClientEventSerializer
from homeserver.rooms.features.history import RoomHistory
from homeserver.rooms.features.visibility import HistoryVisibility
from tests.fakes.rooms import RoomHarness
from tests.federation.fakes import FakeKeyring
from tests.federation.remote_history import (
    CAROL, REMOTE_KEY, REMOTE_SERVER, RoomHistoryFixture)


async def nobody_ignored(user_id):
    return frozenset()


class MessagesBackfillTest(RoomHistoryFixture, RoomHarness, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.remote_room(25)
        self.history_reads = RoomHistory(
            rooms=self.registry, store=None, visibility=HistoryVisibility(None),
            serializer=ClientEventSerializer(lambda: 1), ignored_users=nobody_ignored)

    def attach(self, limit=100):
        checker = PduChecker(FakeKeyring({(REMOTE_SERVER, REMOTE_KEY.key_id):
                                          REMOTE_KEY.verify_key_bytes}))
        backfiller = Backfiller(server_name="test", client=self.server, clock=self.clock,
                                gaps=GapFiller(client=self.server, checker=checker),
                                limit=limit)
        self.history_reads.attach_backfill(backfiller.backfill)

    def messages(self, limit, from_token=None):
        return self.drive(self.history_reads.messages(
            self.room_id, CAROL, direction="b", from_token=from_token, limit=limit))

    def walk(self, limit):
        """Every event of a backward walk, page by page, newest first."""
        seen, token = [], None
        for _ in range(100):
            page = self.messages(limit, token)
            seen += page["chunk"]
            if "end" not in page:
                return seen
            token = page["end"]
        self.fail("pagination did not end")

    def test_first_call_after_join_shows_earlier_history(self):
        """The first /messages after the join already holds the messages sent before
        it, in order, and the room's create event."""
        self.attach()
        chunk = self.messages(100)["chunk"]
        self.assertEqual([e["event_id"] for e in reversed(chunk)], self.remote_timeline())
        self.assertEqual([e["content"].get("body") for e in reversed(chunk)
                          if e["type"] == "m.room.message"],
                         [f"earlier {i}" for i in range(25)])

    def test_paging_reaches_the_create_event(self):
        """Small pages over small backfills walk the whole history exactly once and
        end after the create event."""
        self.attach(limit=7)
        seen = self.walk(4)
        ids = [e["event_id"] for e in reversed(seen)]
        self.assertEqual(ids, self.remote_timeline())
        self.assertEqual(seen[-1]["type"], "m.room.create")

    def test_failed_backfill_answers_with_what_is_held(self):
        """With the room's servers unreachable /messages still answers: our join."""
        self.attach()
        self.server.down.add(REMOTE_SERVER)
        page = self.messages(10)
        self.assertEqual([e["event_id"] for e in page["chunk"]], [self.join.event_id])

    def test_without_federation_the_walk_ends_at_the_join(self):
        """No backfill attached: the history held is all there is."""
        self.assertEqual([e["event_id"] for e in self.walk(10)], [self.join.event_id])
        self.assertEqual(self.server.calls, [])
