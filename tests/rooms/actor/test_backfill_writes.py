"""RoomActor.backfill_pdus: history from another server's /backfill, judged as remote
PDUs and stored before the timeline (spec: Server-Server "Backfilling and retrieving
missing events", "Checks performed on receipt of a PDU")."""

from twisted.trial import unittest

from tests.fakes.rooms import RoomHarness, remote_event
from tests.federation.remote_history import (
    REMOTE_KEY, REMOTE_SERVER, RoomHistoryFixture, received)


class BackfillWritesTest(RoomHistoryFixture, RoomHarness, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.remote_room(6)

    def remote_history(self):
        """The remote room's timeline before our join, oldest first (as received)."""
        events, _ = self.drive(self.theirs.paginate(None, "b", 1000))
        return received(e for e in reversed(events) if e.event_id != self.join.event_id)

    def test_whole_history_goes_before_the_join(self):
        """Create event to last message are accepted and read before our join, each
        with the state the remote had at it; new events get negative seqs, the state
        we joined with keeps its seqs, promoted from outliers."""
        history = self.remote_history()
        outcomes = self.drive(self.ours.backfill_pdus(history))
        self.assertEqual({o.status for o in outcomes}, {"accepted"})
        self.assertEqual(self.timeline(), self.remote_timeline())
        for event in history:
            stored = self.drive(self.ours.get_event(event.event_id))
            self.assertEqual(stored.internal_metadata["seq"] < 0,
                             event.type == "m.room.message")
            self.assertEqual(self.drive(self.ours.state_ids_at(event.event_id)),
                             self.drive(self.theirs.state_ids_at(event.event_id)))

    def test_event_without_prev_events_or_state_is_not_placed(self):
        """An event whose prev events we lack, given without the state before it,
        is answered missing_prev and not stored."""
        lone = received([self.history[3]])[0]
        [outcome] = self.drive(self.ours.backfill_pdus([lone]))
        self.assertEqual(outcome.status, "missing_prev")
        self.assertIsNone(self.drive(self.ours.get_event(lone.event_id)))

    def test_history_is_judged_by_the_auth_rules(self):
        """A backfilled message from someone who was never in the room is stored
        rejected and never shown; one already held is a duplicate."""
        self.drive(self.ours.backfill_pdus(self.remote_history()))
        last = self.drive(self.ours.get_event(self.history[-1].event_id))
        state = self.drive(self.ours.state_at(last.event_id, after=True))
        intruder = remote_event(self.room_id, self.room_version, state, [last],
                                {"type": "m.room.message", "sender": "@ivy:remote.example",
                                 "content": {"body": "not a member"}},
                                REMOTE_KEY, REMOTE_SERVER)
        [outcome] = self.drive(self.ours.backfill_pdus([intruder]))
        self.assertEqual(outcome.status, "rejected")
        self.assertNotIn(intruder.event_id, self.timeline())
        [again] = self.drive(self.ours.backfill_pdus([received([self.history[0]])[0]]))
        self.assertEqual(again.status, "duplicate")

