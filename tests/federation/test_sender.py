"""The federation sender on a fake clock, with a fake client, progress and streams."""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial import unittest

from federation.sender import MAX_EPHEMERAL, FederationSender
from federation.transaction_queue import MAX_RETRY_MS, Phase
from tests.fakes.federation import FakeFederationClient, FakeProgress, FakeSource

ROOM, OUTBOX = "room", "federation_outbox"


class SenderTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.client = FakeFederationClient()
        self.progress = FakeProgress()
        self.pdus = FakeSource(ROOM)
        self.edus = FakeSource(OUTBOX)
        self.trimmed: list[int] = []
        self.sender = self.make_sender()

    max_age_ms: dict[str, int] | None = None

    def make_sender(self) -> FederationSender:
        async def trim(pos: int) -> None:
            self.trimmed.append(pos)
            self.edus.delete_upto(pos)

        sender = FederationSender(server_name="us", clock=self.clock, client=self.client,
                                  progress=self.progress, pdu_source=self.pdus,
                                  edu_source=self.edus, trim_outbox=trim,
                                  max_age_ms=self.max_age_ms, random=lambda: 0.0)
        self.successResultOf(defer.ensureDeferred(sender.start()))
        self.addCleanup(sender.stop)
        return sender

    def events(self, n: int, *destinations: str, start: int = 0) -> list[str]:
        ids = [f"$e{start + i}" for i in range(n)]
        for event_id in ids:
            self.pdus.add({"event_id": event_id}, destinations)
        return ids

    def wake(self, sender: FederationSender | None = None) -> None:
        (sender or self.sender).on_streams_advanced({ROOM: 0, OUTBOX: 0})
        self.clock.advance(0)   # the read runs in the next reactor turn

    def ids(self, destination: str) -> list[str]:
        return [p["event_id"] for p in self.client.delivered(destination)]


class BatchingTests(SenderTestCase):
    def test_pdus_in_order_at_most_fifty_per_transaction(self) -> None:
        """120 events reach the destination in order, in transactions of ≤ 50 PDUs."""
        ids = self.events(120, "a.example")
        self.wake()
        bodies = self.client.answered("a.example")
        self.assertEqual(self.ids("a.example"), ids)
        self.assertTrue(all(len(b["pdus"]) <= 50 for b in bodies))
        self.assertEqual(len(bodies), 3)
        self.assertTrue(all(b["origin"] == "us" for b in bodies))

    def test_edus_at_most_a_hundred_per_transaction(self) -> None:
        """150 outbox entries go out as transactions of ≤ 100 EDUs, in order."""
        for i in range(150):
            self.edus.add({"edu_type": "m.direct_to_device", "content": {"n": i}},
                          ["a.example"])
        self.wake()
        bodies = self.client.answered("a.example")
        self.assertTrue(all(len(b["edus"]) <= 100 for b in bodies))
        self.assertEqual([e["content"]["n"] for e in self.client.delivered(
            "a.example", "edus")], list(range(150)))

    def test_each_event_only_to_its_destinations(self) -> None:
        """An event goes to the servers resolved for it and to no other."""
        self.events(2, "a.example")
        self.events(1, "a.example", "b.example", start=2)
        self.pdus.add(None)   # e.g. a remote user's event: nobody to send it to
        self.wake()
        self.assertEqual(self.ids("a.example"), ["$e0", "$e1", "$e2"])
        self.assertEqual(self.ids("b.example"), ["$e2"])

    def test_released_caches_lose_nothing(self) -> None:
        """release_caches (every room asleep) empties the resolved-entries cache and
        asks the sources to release theirs; later events still go out, in order."""
        released = []
        self.pdus.release_caches = lambda: released.append(ROOM)
        self.events(3, "a.example")
        self.wake()
        self.assertTrue(self.sender._readers[ROOM].cache)
        self.sender.release_caches()
        self.assertFalse(self.sender._readers[ROOM].cache)
        self.assertEqual(released, [ROOM])
        self.events(2, "a.example", start=3)
        self.wake()
        self.assertEqual(self.ids("a.example"), [f"$e{i}" for i in range(5)])

    def test_txn_ids_unique_per_destination(self) -> None:
        """Every transaction to a destination has its own txnId, across restarts."""
        self.events(120, "a.example")
        self.wake()
        self.sender.stop()
        self.clock.advance(1)
        sender = self.make_sender()
        self.events(60, "a.example", start=120)
        self.wake(sender)
        txns = [t for d, t, _ in self.client.sent if d == "a.example"]
        self.assertEqual(len(txns), 5)
        self.assertEqual(len(set(txns)), len(txns))

    def test_one_transaction_in_flight_per_destination(self) -> None:
        """While a transaction is unanswered no second one goes to that server."""
        held = defer.Deferred()
        self.client.hold["a.example"] = held
        self.events(1, "a.example")
        self.wake()
        self.events(70, "a.example", start=1)
        self.wake()
        self.assertEqual(len(self.client.sent), 1)
        held.callback(None)
        self.assertEqual(self.client.max_in_flight["a.example"], 1)
        self.assertEqual(self.ids("a.example"), [f"$e{i}" for i in range(71)])


class StaleBacklogTests(SenderTestCase):
    """A destination down longer than the age limits: a bounded catch-up."""

    DAY_MS = 24 * 3600 * 1000
    max_age_ms = {ROOM: DAY_MS, OUTBOX: 7 * DAY_MS}

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def pdu(self, event_id: str, room_id: str) -> None:
        self.pdus.add({"event_id": event_id}, ["a.example"], ts=self.now_ms(),
                      stale_key=room_id)

    def edu(self, n: int, stale_key: str | None = None) -> None:
        self.edus.add({"edu_type": "m.x", "content": {"n": n}}, ["a.example"],
                      ts=self.now_ms(), stale_key=stale_key)

    def down_for(self, days: int) -> None:
        self.client.down.add("a.example")
        self.wake()
        self.clock.advance(days * self.DAY_MS / 1000)
        self.client.down.discard("a.example")

    def test_old_events_come_down_to_each_rooms_newest(self) -> None:
        """After two days down, the events older than a day arrive as each room's
        newest (in stream order); the newer ones all arrive, in order."""
        for event_id, room_id in [("$a1", "!a"), ("$b1", "!b"), ("$a2", "!a")]:
            self.pdu(event_id, room_id)
        self.down_for(2)
        self.pdu("$a3", "!a")
        self.pdu("$b2", "!b")
        self.wake()
        self.clock.advance(MAX_RETRY_MS / 1000 * 2)
        self.assertEqual(self.ids("a.example"), ["$b1", "$a2", "$a3", "$b2"])
        self.assertEqual(self.progress.dests["a.example"].acked[ROOM], 5)

    def test_within_the_limit_every_event_arrives(self) -> None:
        """Down for less than the limit: every missed event is caught up."""
        for event_id, room_id in [("$a1", "!a"), ("$b1", "!b"), ("$a2", "!a")]:
            self.pdu(event_id, room_id)
        self.down_for(0)
        self.clock.advance(3600)
        self.assertEqual(self.ids("a.example"), ["$a1", "$b1", "$a2"])

    def test_more_rooms_than_a_transaction_holds(self) -> None:
        """The newest events of 120 rooms go out in transactions of ≤ 50, all of them."""
        for i in range(120):
            self.pdu(f"$old{i}", f"!r{i}")
            self.pdu(f"$new{i}", f"!r{i}")
        self.down_for(2)
        self.clock.advance(MAX_RETRY_MS / 1000 * 2)
        self.assertEqual(self.ids("a.example"), [f"$new{i}" for i in range(120)])
        self.assertTrue(all(len(b["pdus"]) <= 50
                            for b in self.client.answered("a.example")))

    def test_old_edus_dropped_but_each_users_newest_device_update(self) -> None:
        """EDUs older than a week are dropped, except each keyed one's newest (a
        user's last device-list update); the outbox is then trimmed past them."""
        self.edu(0)
        self.edu(1, "m.device_list_update @u:us")
        self.edu(2, "m.device_list_update @u:us")
        self.edu(3, "m.device_list_update @v:us")
        self.down_for(8)
        self.edu(4)
        self.wake()
        self.clock.advance(MAX_RETRY_MS / 1000 * 2)
        self.assertEqual([e["content"]["n"] for e in self.client.delivered(
            "a.example", "edus")], [2, 3, 4])
        self.assertEqual(self.edus.entries, [])


class BackoffTests(SenderTestCase):
    def attempts(self, destination: str) -> int:
        return sum(1 for d, _, _ in self.client.sent if d == destination)

    def test_schedule_doubles_from_five_seconds(self) -> None:
        """Retries come 5 s, 10 s, 20 s… after failures, never past an hour."""
        self.client.down.add("a.example")
        self.events(1, "a.example")
        self.wake()
        self.assertEqual(self.attempts("a.example"), 1)
        self.assertEqual(self.sender.phase_of("a.example"), Phase.BACKOFF)
        for delay in (5, 10, 20, 40):
            self.clock.advance(delay - 0.001)
            before = self.attempts("a.example")
            self.clock.advance(0.001)
            self.assertEqual(self.attempts("a.example"), before + 1)
        for _ in range(12):
            self.clock.advance(MAX_RETRY_MS / 1000)
        before = self.attempts("a.example")
        self.clock.advance(MAX_RETRY_MS / 1000)
        self.assertEqual(self.attempts("a.example"), before + 1)

    def test_success_resets_the_schedule(self) -> None:
        """After a success the next failure backs off 5 s again, and it is saved."""
        self.client.down.add("a.example")
        self.events(1, "a.example")
        self.wake()
        self.clock.advance(5)
        self.clock.advance(10)
        self.assertEqual(self.progress.dests["a.example"].retry_interval_ms, 20_000)
        self.client.down.clear()
        self.clock.advance(20)
        self.assertEqual(self.ids("a.example"), ["$e0"])
        self.assertEqual(self.progress.dests["a.example"].retry_interval_ms, 0)
        self.client.down.add("a.example")
        self.events(1, "a.example", start=1)
        self.wake()
        before = len(self.client.sent)
        self.clock.advance(5)
        self.assertEqual(len(self.client.sent), before + 1)

    def test_backoff_does_not_block_other_destinations(self) -> None:
        """A server that is down delays only itself."""
        self.client.down.add("a.example")
        self.events(3, "a.example", "b.example")
        self.wake()
        self.assertEqual(self.ids("b.example"), ["$e0", "$e1", "$e2"])
        self.events(1, "b.example", "a.example", start=3)
        self.wake()
        self.assertEqual(self.ids("b.example"), ["$e0", "$e1", "$e2", "$e3"])
        self.assertEqual(self.ids("a.example"), [])

    def test_client_error_drops_the_transaction(self) -> None:
        """A 4xx answer is not retried: the next events still go out."""
        self.client.status["a.example"] = 400
        self.events(2, "a.example")
        self.wake()
        self.assertEqual(len(self.client.sent), 1)
        del self.client.status["a.example"]
        self.clock.advance(3600)
        self.assertEqual(len(self.client.sent), 1)   # no retry of the refused one
        self.events(1, "a.example", start=2)
        self.wake()
        self.assertEqual(self.ids("a.example"), ["$e2"])
        self.assertEqual(self.progress.dests["a.example"].acked[ROOM], 3)

    def test_too_many_requests_is_retried(self) -> None:
        """429 backs off and sends the same events again."""
        self.client.status["a.example"] = 429
        self.events(2, "a.example")
        self.wake()
        del self.client.status["a.example"]
        self.clock.advance(5)
        self.assertEqual(self.ids("a.example"), ["$e0", "$e1"])


class CatchUpTests(SenderTestCase):
    def test_every_missed_event_after_an_outage(self) -> None:
        """Events sent while a server was down all arrive, in order, once it is up."""
        self.client.down.add("a.example")
        sent = []
        for i in range(8):   # arriving one by one through the outage
            sent += self.events(10, "a.example", start=i * 10)
            self.wake()
            self.clock.advance(3)
        self.client.down.clear()
        self.clock.advance(3600)
        self.assertEqual(self.ids("a.example"), sent)
        self.assertEqual(self.sender.phase_of("a.example"), Phase.IDLE)
        # live again: the next event goes straight out
        self.events(1, "a.example", start=80)
        self.wake()
        self.assertEqual(self.ids("a.example"), sent + ["$e80"])

    def test_catch_up_skips_other_servers_events(self) -> None:
        """Catch-up re-reads the stream but sends only this server's events."""
        self.client.down.add("a.example")
        self.events(5, "a.example")
        self.events(130, "b.example", start=5)
        self.events(5, "a.example", start=135)
        self.wake()
        self.client.down.clear()
        self.clock.advance(5)
        self.assertEqual(self.ids("a.example"),
                         [f"$e{i}" for i in [0, 1, 2, 3, 4, 135, 136, 137, 138, 139]])
        self.assertEqual(self.progress.dests["a.example"].acked[ROOM], 140)

    def test_in_flight_events_survive_other_traffic_and_a_failure(self) -> None:
        """Events in an unanswered transaction are not counted delivered when the
        reader moves on for others; if it then fails they are sent again."""
        held = defer.Deferred()
        self.client.hold["a.example"] = held
        self.events(1, "a.example")
        self.wake()
        self.events(1, "b.example", start=1)    # a new destination: progress is written
        self.wake()
        self.client.down.add("a.example")
        held.callback(None)                     # the held transaction fails
        self.assertEqual(self.progress.dests["a.example"].acked[ROOM], 0)
        self.client.down.clear()
        self.clock.advance(5)
        self.assertEqual(self.ids("a.example"), ["$e0"])

    def test_stop_saves_the_reader_and_restart_sends_nothing_twice(self) -> None:
        """After a clean stop the reader's position is saved; a restart neither
        re-reads nor re-sends what was delivered."""
        self.events(3, "a.example")
        self.wake()
        self.events(2, "c.example", start=3)    # dispatched, position not yet written
        self.wake()
        self.pdus.add(None)
        self.wake()
        self.successResultOf(self.sender.stop())
        self.assertEqual(self.progress.readers[ROOM], 6)
        self.assertEqual(self.progress.dests["a.example"].acked[ROOM], 6)
        self.make_sender()
        self.assertEqual(self.ids("a.example"), ["$e0", "$e1", "$e2"])
        self.assertEqual(self.ids("c.example"), ["$e3", "$e4"])

    def test_crash_rereads_but_does_not_resend(self) -> None:
        """Without a clean stop the reader re-reads from its saved position, and a
        destination skips what it had acknowledged."""
        self.events(1, "a.example")
        self.wake()
        self.events(4, "a.example", start=1)    # delivered; reader position unsaved
        self.wake()
        self.assertEqual(self.progress.readers[ROOM], 1)
        self.sender._stopped = True             # a crash: nothing more is written
        sender = self.make_sender()
        self.assertEqual(self.ids("a.example"), [f"$e{i}" for i in range(5)])
        self.events(1, "a.example", start=5)
        self.wake(sender)
        self.assertEqual(self.ids("a.example"), [f"$e{i}" for i in range(6)])

    def test_restart_resumes_from_the_durable_position(self) -> None:
        """A new sender over the same progress delivers what the old one had not."""
        self.client.down.add("a.example")
        self.events(3, "a.example", "b.example")
        self.wake()
        self.sender.stop()
        self.events(2, "a.example", "b.example", start=3)   # while we were down
        self.client.down.clear()
        sender = self.make_sender()
        self.assertEqual(self.ids("b.example"), [f"$e{i}" for i in range(5)])
        self.assertEqual(self.ids("a.example"), [])   # still backing off, as saved
        self.clock.advance(5)
        self.assertEqual(self.ids("a.example"), [f"$e{i}" for i in range(5)])
        self.events(1, "a.example", start=5)
        self.wake(sender)
        self.assertEqual(self.ids("a.example"), [f"$e{i}" for i in range(6)])
        self.assertEqual(self.ids("b.example"), [f"$e{i}" for i in range(5)])

    def test_first_start_skips_history(self) -> None:
        """The room stream is read from where it was when federation first started."""
        client, progress = self.client, self.progress
        pdus = FakeSource(ROOM, initial=500)
        sender = FederationSender(server_name="us", clock=self.clock, client=client,
                                  progress=progress, pdu_source=pdus,
                                  edu_source=FakeSource(OUTBOX))
        progress.readers.clear()
        self.successResultOf(defer.ensureDeferred(sender.start()))
        self.addCleanup(sender.stop)
        self.assertEqual(progress.readers[ROOM], 500)
        pdus.add({"event_id": "$new"}, ["a.example"])
        sender.wake(ROOM)
        self.assertEqual(self.ids("a.example"), ["$new"])

    def test_reader_retries_after_a_db_failure(self) -> None:
        """If the progress cannot be saved the reader tries again; nothing is lost."""
        self.progress.fail = True
        self.events(2, "a.example")
        self.wake()
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.ids("a.example"), [])
        self.progress.fail = False
        self.clock.advance(5)
        self.assertEqual(self.ids("a.example"), ["$e0", "$e1"])


class EduTests(SenderTestCase):
    def test_outbox_entries_deleted_once_every_server_has_them(self) -> None:
        """Delivered entries are trimmed, but not past a server still owed them."""
        self.client.down.add("b.example")
        self.edus.add({"edu_type": "m.device_list_update", "content": {}},
                      ["a.example", "b.example"])
        self.edus.add({"edu_type": "m.direct_to_device", "content": {}}, ["a.example"])
        self.wake()
        self.assertEqual(len(self.client.delivered("a.example", "edus")), 2)
        self.assertEqual([pos for pos, _ in self.edus.entries], [1, 2])
        self.client.down.clear()
        self.clock.advance(5)
        self.assertEqual(len(self.client.delivered("b.example", "edus")), 1)
        self.assertEqual(self.edus.entries, [])
        self.assertEqual(self.trimmed[-1], 2)

    def test_ephemeral_edus_only_to_servers_that_are_up(self) -> None:
        """Typing goes to a healthy server at once; one backing off never gets it."""
        self.client.down.add("b.example")
        self.events(1, "b.example")
        self.wake()
        self.sender.send_edu(["a.example", "b.example", "us"], "m.typing",
                             {"room_id": "!r", "user_id": "@u:us", "typing": True})
        self.assertEqual([e["edu_type"] for e in self.client.delivered("a.example", "edus")],
                         ["m.typing"])
        self.client.down.clear()
        self.clock.advance(5)
        self.assertEqual(self.client.delivered("b.example", "edus"), [])
        self.assertEqual(self.ids("b.example"), ["$e0"])
        self.assertNotIn("us", {d for d, _, _ in self.client.sent})

    def test_ephemeral_edus_bounded_while_a_transaction_hangs(self) -> None:
        """While a server does not answer, at most MAX_EPHEMERAL typing EDUs wait for
        it, the newest; they go out once it answers."""
        held = defer.Deferred()
        self.client.hold["a.example"] = held
        self.events(1, "a.example")
        self.wake()
        for n in range(MAX_EPHEMERAL + 50):
            self.sender.send_edu(["a.example"], "m.typing", {"n": n})
        held.callback(None)
        ns = [e["content"]["n"] for e in self.client.delivered("a.example", "edus")]
        self.assertEqual(ns, list(range(50, MAX_EPHEMERAL + 50)))

    def test_ephemeral_destination_then_events_are_durable(self) -> None:
        """A server first met through typing still gets a durable row for events."""
        self.sender.send_edu(["c.example"], "m.typing", {"typing": True})
        self.assertNotIn("c.example", self.progress.dests)
        self.client.down.add("c.example")
        self.events(1, "c.example")
        self.wake()
        self.assertIn("c.example", self.progress.dests)
        self.assertEqual(self.progress.dests["c.example"].acked[ROOM], 0)
