"""RoomActor: event creation, group commit, output gate, failures, remote PDUs.

Every test runs against a v12 room and a v10 room (room IDs from the create event's
hash versus ``!x:server``; create event implied versus cited in auth_events).
"""

from __future__ import annotations

import sqlite3

from twisted.internet import defer
from twisted.trial import unittest

from homeserver.errors import AuthError, Forbidden, InvalidParam, NotFound
from homeserver.rooms.actor.room_writer import Outcome
from homeserver.rooms.rules.power_levels import CREATE_KEY
from tests.fakes.rooms import ALICE, RoomHarness, remote_event, remote_key

BOB = "@bob:remote"


class ActorTestsMixin(RoomHarness):
    def setUp(self) -> None:
        super().setUp()
        self.room_id, self.initial = self.create_room()
        self.actor = self.drive(self.registry.get(self.room_id))

    def commits(self) -> list[str]:
        """Start recording the COMMIT statements SQLite executes for this room."""
        seen: list[str] = []
        self.actor._store._conn.set_trace_callback(
            lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
        return seen

    # -- local events -------------------------------------------------------------------
    def test_event_builds_on_extremities(self) -> None:
        """A local event's prev_events are the extremities and depth is one deeper."""
        last = self.initial[-1]
        pdu = self.drive(self.actor.create_event(self.message()))
        self.assertEqual(list(pdu.prev_event_ids), [last.event_id])
        self.assertEqual(pdu.depth, last.depth + 1)
        self.assertEqual(self.drive(self.actor.forward_extremities()), [pdu.event_id])
        self.assertEqual(pdu.room_id, self.room_id)

    def test_auth_events_follow_the_room_version(self) -> None:
        """auth_events name power levels and membership; the create event only pre-v12."""
        pdu = self.drive(self.actor.create_event(self.message()))
        state = self.drive(self.actor.current_state_ids())
        expected = {state[("m.room.power_levels", "")], state[("m.room.member", ALICE)]}
        if self.room_version != "12":
            expected.add(state[CREATE_KEY])
        self.assertEqual(set(pdu.auth_event_ids), expected)

    def test_group_commit_is_one_transaction(self) -> None:
        """Writes queued in one reactor turn commit in a single SQLite transaction."""
        commits = self.commits()
        ds = [defer.ensureDeferred(self.actor.create_event(self.message(str(i))))
              for i in range(5)]
        self.assertEqual(commits, [])
        self.clock.advance(0)
        self.assertEqual(len(commits), 1)
        events = [self.successResultOf(d) for d in ds]
        self.assertEqual([e.content["body"] for e in events], ["0", "1", "2", "3", "4"])
        # applied one at a time, in order: each builds on the one before
        for before, after in zip(events, events[1:]):
            self.assertEqual(list(after.prev_event_ids), [before.event_id])

    def test_output_gate(self) -> None:
        """The request fires only after its event is committed AND announced."""
        self.stream.hold = defer.Deferred()
        d = defer.ensureDeferred(self.actor.create_event(self.message("gated")))
        self.assertNoResult(d)
        self.clock.advance(0)
        # committed: another connection sees it, yet the client has no answer
        other = sqlite3.connect(self.registry.path_for(self.room_id))
        self.addCleanup(other.close)
        self.assertEqual(other.execute(
            "SELECT count(*) FROM events WHERE type = 'm.room.message'").fetchone()[0], 1)
        self.assertNoResult(d)
        self.assertNotIn("gated", [e.content.get("body") for e, _ in self.listener.events])
        self.stream.hold, hold = None, self.stream.hold
        hold.callback(None)
        pdu = self.successResultOf(d)
        self.assertEqual(self.stream.stream[-1].event_id, pdu.event_id)
        self.assertEqual(self.listener.events[-1][0].event_id, pdu.event_id)

    def test_auth_failure_fails_only_its_request(self) -> None:
        """A refused event fails alone; the rest of its batch commits."""
        commits = self.commits()
        good1 = defer.ensureDeferred(self.actor.create_event(self.message("1")))
        bad = defer.ensureDeferred(self.actor.create_event(self.message("x", "@eve:test")))
        good2 = defer.ensureDeferred(self.actor.create_event(self.message("2")))
        self.clock.advance(0)
        self.failureResultOf(bad, AuthError)
        first, second = self.successResultOf(good1), self.successResultOf(good2)
        self.assertEqual(list(second.prev_event_ids), [first.event_id])
        self.assertEqual(len(commits), 1)

    def test_txn_key_makes_retries_idempotent(self) -> None:
        """The same transaction key returns the same event, in one batch or later."""
        key = f"{ALICE}/DEV/t1"
        a = defer.ensureDeferred(self.actor.create_event(self.message("once"), key))
        b = defer.ensureDeferred(self.actor.create_event(self.message("once"), key))
        self.clock.advance(0)
        c = self.drive(self.actor.create_event(self.message("once"), key))
        ids = {self.successResultOf(a).event_id, self.successResultOf(b).event_id, c.event_id}
        self.assertEqual(len(ids), 1)
        self.assertEqual([x.event_id for x in self.stream.stream].count(c.event_id), 1)

    def test_redactions(self) -> None:
        """Own events can be redacted; others' need the redact level; readers see pruned."""
        self.join(BOB)
        msg = self.drive(self.actor.create_event(self.message("secret")))
        self.drive_failure(self.actor.create_event(
            {"type": "m.room.redaction", "sender": BOB, "content": {},
             "redacts": msg.event_id}), Forbidden)
        self.drive(self.actor.create_event({"type": "m.room.redaction", "sender": ALICE,
                                          "content": {}, "redacts": msg.event_id}))
        self.assertEqual(self.drive(self.actor.get_event(msg.event_id)).content, {})
        original = self.drive(self.actor.get_event(msg.event_id, original=True))
        self.assertEqual(original.content["body"], "secret")

    def join(self, user: str) -> None:
        self.drive(self.actor.create_event({"type": "m.room.member", "sender": user,
                                          "state_key": user,
                                          "content": {"membership": "join"}}))

    # -- reads --------------------------------------------------------------------------
    def test_state_queries(self) -> None:
        """Current state (filtered), membership, members and the state at an event."""
        self.join(BOB)
        topic = self.drive(self.actor.create_event(
            {"type": "m.room.topic", "sender": ALICE, "state_key": "",
             "content": {"topic": "t"}}))
        self.assertEqual(set(self.drive(self.actor.current_state(["m.room.member"]))),
                         {("m.room.member", ALICE), ("m.room.member", BOB)})
        self.assertEqual(self.drive(self.actor.membership(BOB)), "join")
        self.assertIsNone(self.drive(self.actor.membership("@nobody:test")))
        self.assertEqual(set(self.drive(self.actor.members("join"))), {ALICE, BOB})
        before = self.drive(self.actor.state_at(topic.event_id))
        after = self.drive(self.actor.state_at(topic.event_id, after=True))
        self.assertNotIn(("m.room.topic", ""), before)
        self.assertEqual(after[("m.room.topic", "")].event_id, topic.event_id)
        self.assertEqual(set(self.drive(self.actor.members(at_event=topic.event_id))),
                         {ALICE, BOB})
        self.drive_failure(self.actor.state_at("$unknown"), NotFound)
        create = self.initial[0].event_id
        self.assertEqual(self.drive(self.actor.state_at(create)), {})  # nothing before it
        self.assertEqual(set(self.drive(self.actor.state_ids_at(create, after=True))),
                         {CREATE_KEY})

    def test_sync_and_pagination(self) -> None:
        """events_since feeds sync; /messages tokens page both ways and are opaque."""
        sent = [self.drive(self.actor.create_event(self.message(str(i)))) for i in range(5)]
        seq = sent[0].internal_metadata["seq"]
        events, limited = self.drive(self.actor.events_since(seq, 3))
        self.assertEqual([e.event_id for e in events], [e.event_id for e in sent[2:]])
        self.assertTrue(limited)
        page, token = self.drive(self.actor.paginate(None, "b", 3))
        self.assertEqual([e.event_id for e in page], [e.event_id for e in sent[:1:-1]])
        page2, _ = self.drive(self.actor.paginate(token, "b", 2))
        self.assertEqual([e.event_id for e in page2], [sent[1].event_id, sent[0].event_id])
        forward, _ = self.drive(self.actor.paginate(
            self.drive(self.actor.token_before(sent[3].event_id)), "f", 10))
        self.assertEqual([e.event_id for e in forward], [e.event_id for e in sent[3:]])
        self.drive_failure(self.actor.paginate("garbage", "b", 1), InvalidParam)

    def test_announce_failure_is_retried(self) -> None:
        """A failed announce fails the request, keeps the event and is retried later."""
        self.stream.fail_with = RuntimeError("global DB down")
        failure = self.drive_failure(self.actor.create_event(self.message("durable")))
        failure.trap(RuntimeError)
        self.flushLoggedErrors(RuntimeError)
        self.stream.fail_with = None
        self.clock.advance(1)
        bodies = [e.content.get("body") for e, _ in self.listener.events]
        self.assertEqual(bodies.count("durable"), 1)
        seqs = self.stream.seqs(self.room_id)
        self.assertEqual(len(seqs), len(set(seqs)))

    # -- remote events ------------------------------------------------------------------
    def remote(self, partial, prev=None, state=None):
        state = state or self.drive(self.actor.current_state())
        if prev is None:
            prev = list(self.drive(self.actor.get_events(
                self.drive(self.actor.forward_extremities()))).values())
        return remote_event(self.room_id, self.room_version, state, prev, partial,
                            self.remote_key)

    def test_remote_events_accepted_rejected_and_duplicate(self) -> None:
        """Remote PDUs are judged one by one; a bad one never stops the others."""
        self.remote_key = remote_key()
        join = self.remote({"type": "m.room.member", "sender": BOB, "state_key": BOB,
                            "content": {"membership": "join"}})
        outcomes = self.drive(self.actor.apply_remote_pdus([join]))
        self.assertEqual([o.status for o in outcomes], [Outcome.ACCEPTED])
        msg = self.remote(self.message("from bob", BOB))
        eve = self.remote(self.message("from eve", "@eve:remote"))
        orphan = remote_event(self.room_id, self.room_version,
                              self.drive(self.actor.current_state()), [msg],
                              self.message("orphan", BOB), self.remote_key)
        outcomes = self.drive(self.actor.apply_remote_pdus([msg, eve, join, orphan][::-1]))
        by_id = {o.event_id: o.status for o in outcomes}
        self.assertEqual(by_id[msg.event_id], Outcome.ACCEPTED)
        self.assertEqual(by_id[eve.event_id], Outcome.REJECTED)
        self.assertEqual(by_id[join.event_id], Outcome.DUPLICATE)
        self.assertEqual(by_id[orphan.event_id], Outcome.ACCEPTED)  # sorted by depth
        self.assertEqual(self.drive(self.actor.membership(BOB)), "join")
        announced = [a.event_id for a in self.stream.stream]
        self.assertIn(msg.event_id, announced)
        self.assertNotIn(eve.event_id, announced)

    def test_soft_fail_against_current_state(self) -> None:
        """An event allowed by its past but not by the current state is soft-failed."""
        self.remote_key = remote_key()
        join = self.remote({"type": "m.room.member", "sender": BOB, "state_key": BOB,
                            "content": {"membership": "join"}})
        self.drive(self.actor.apply_remote_pdus([join]))
        state_then = self.drive(self.actor.current_state())
        self.drive(self.actor.create_event({"type": "m.room.member", "sender": ALICE,
                                          "state_key": BOB, "content": {"membership": "ban"}}))
        sneaky = self.remote(self.message("after ban", BOB), prev=[join], state=state_then)
        [outcome] = self.drive(self.actor.apply_remote_pdus([sneaky]))
        self.assertEqual(outcome.status, Outcome.SOFT_FAILED)
        self.assertNotIn(sneaky.event_id, [a.event_id for a in self.stream.stream])
        self.assertEqual(self.drive(self.actor.membership(BOB)), "ban")

    def test_fork_resolves_current_state(self) -> None:
        """Two remote branches leave two extremities and a resolved current state."""
        self.remote_key = remote_key()
        join = self.remote({"type": "m.room.member", "sender": BOB, "state_key": BOB,
                            "content": {"membership": "join"}})
        self.drive(self.actor.apply_remote_pdus([join]))
        state = self.drive(self.actor.current_state())
        topic = self.drive(self.actor.create_event(
            {"type": "m.room.topic", "sender": ALICE, "state_key": "",
             "content": {"topic": "ours"}}))
        side = self.remote({"type": "m.room.name", "sender": BOB, "state_key": "",
                            "content": {"name": "n"}}, prev=[join], state=state)
        # BOB lacks the power to name the room: rejected, extremities unchanged
        [outcome] = self.drive(self.actor.apply_remote_pdus([side]))
        self.assertEqual(outcome.status, Outcome.REJECTED)
        branch = self.remote(self.message("branch", BOB), prev=[join], state=state)
        self.drive(self.actor.apply_remote_pdus([branch]))
        self.assertEqual(set(self.drive(self.actor.forward_extremities())),
                         {topic.event_id, branch.event_id})
        current = self.drive(self.actor.current_state_ids())
        self.assertEqual(current[("m.room.topic", "")], topic.event_id)
        merged = self.drive(self.actor.create_event(self.message("merge")))
        self.assertEqual(set(merged.prev_event_ids), {topic.event_id, branch.event_id})
        self.assertEqual(self.drive(self.actor.forward_extremities()), [merged.event_id])


    def test_membership_changed_by_resolution_reaches_the_index(self) -> None:
        """A remote event placed on the state its server sent (our gap filling), in
        which Bob has left, resolves Bob to leave in current state; the memberships
        index learns it from that event's announcement, though the event is Carol's
        message and Bob's leave came only as an outlier."""
        self.remote_key, carol = remote_key(), "@carol:remote"

        def remote(partial, prev, state, ts):
            return remote_event(self.room_id, self.room_version, state, prev, partial,
                                self.remote_key, ts=ts)

        def join(user, ts):
            return remote({"type": "m.room.member", "sender": user, "state_key": user,
                           "content": {"membership": "join"}},
                          list(self.drive(self.actor.get_events(
                              self.drive(self.actor.forward_extremities()))).values()),
                          self.drive(self.actor.current_state()), ts)

        self.drive(self.actor.apply_remote_pdus([join(BOB, 1)]))
        carol_join = join(carol, 2)
        self.drive(self.actor.apply_remote_pdus([carol_join]))
        self.assertEqual(self.stream.memberships[BOB][self.room_id], "join")
        state = self.drive(self.actor.current_state())
        leave = remote({"type": "m.room.member", "sender": BOB, "state_key": BOB,
                        "content": {"membership": "leave"}}, [carol_join], state, 3)
        after_leave = {**state, leave.state_pair: leave}
        msg = remote(self.message("bob is gone", carol), [leave], after_leave, 4)
        outcomes = self.drive(self.actor.apply_remote_pdus(
            [msg], outliers=[leave], state_before={msg.event_id: list(after_leave.values())}))
        self.assertEqual([o.status for o in outcomes], [Outcome.OUTLIER, Outcome.ACCEPTED])
        self.assertEqual(self.drive(self.actor.membership(BOB)), "leave")
        self.assertEqual(self.stream.memberships[BOB][self.room_id], "leave")
        self.assertEqual(self.stream.memberships[carol][self.room_id], "join")
        announced = [a for a in self.stream.stream if a.event_id == msg.event_id]
        self.assertEqual([a.member_changes for a in announced],
                         [((BOB, "leave", leave.event_id),)])
        # announced once: a later event does not carry it again
        self.drive(self.actor.create_event(self.message("after")))
        self.assertEqual(self.stream.stream[-1].member_changes, ())


class ActorV12Tests(ActorTestsMixin, unittest.TestCase):
    room_version = "12"


class ActorV10Tests(ActorTestsMixin, unittest.TestCase):
    room_version = "10"
