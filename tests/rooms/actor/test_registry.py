"""RoomRegistry: room creation, wake and hibernation, LRU bound, outbox replay, stop."""

from __future__ import annotations

import dataclasses
import gc
import os
import weakref

from twisted.internet import defer
from twisted.trial import unittest

from homeserver.errors import (
    AuthError, InvalidRoomState, MatrixError, NotFound, UnsupportedRoomVersionError)
from homeserver.rooms.storage.store import RoomStore
from tests.fakes.rooms import ALICE, SERVER, RoomHarness, remote_event


def snapshot(harness: RoomHarness, actor) -> tuple:
    """What a woken room must rebuild exactly: current state, extremities, last seq."""
    return (harness.drive(actor.current_state_ids()),
            harness.drive(actor.forward_extremities()),
            harness.drive(actor.last_seq()))


def crash(registry) -> None:
    """Simulate kill -9: drop every awake room without any clean-up writes."""
    for actor in list(registry._awake.values()):
        actor.closed = True
        for call in (actor._idle_call, actor._flush_call, actor._retry_call):
            if call is not None and call.active():
                call.cancel()
        actor._store._meta.deferred.clear()  # never reached the disk
        actor._store._conn.close()
    registry._awake.clear()
    registry._stopping = True


class CreateRoomTests(RoomHarness, unittest.TestCase):
    def test_v12_room_id_comes_from_the_create_event(self) -> None:
        """A v12 room is named by its create event's hash and has no server part."""
        room_id, events = self.create_room("12")
        self.assertEqual(room_id, "!" + events[0].event_id[1:])
        self.assertNotIn(":", room_id)
        self.assertNotIn("room_id", events[0].get_dict())
        self.assertEqual(events[1].room_id, room_id)

    def test_v10_room_id_is_on_our_server(self) -> None:
        """Before v12 the room ID is random on our server and in every event."""
        room_id, events = self.create_room("10")
        self.assertTrue(room_id.startswith("!") and room_id.endswith(":" + SERVER))
        self.assertEqual({e.room_id for e in events}, {room_id})
        self.assertEqual(events[0].content["creator"], ALICE)

    def test_initial_events_are_one_transaction_then_registered_and_announced(self) -> None:
        """All initial events commit together; the room is indexed, then announced."""
        room_id, events = self.create_room()
        actor = self.drive(self.registry.get(room_id))
        self.assertEqual(actor._store.commit_count, 1)
        self.assertIn(room_id, self.stream.rooms)
        self.assertEqual([a.event_id for a in self.stream.stream],
                         [e.event_id for e in events])
        self.assertEqual(self.stream.memberships[ALICE], {room_id: "join"})
        self.assertTrue(os.path.exists(self.registry.path_for(room_id)))

    def test_refused_initial_event_leaves_nothing(self) -> None:
        """If an initial event fails auth, no file, index entry or announcement remains."""
        partials = [{"type": "m.room.message", "sender": "@eve:test", "content": {}}]
        self.drive_failure(self.registry.create_room(ALICE, "10", partials), AuthError)
        self.assertEqual(self.registry.awake_count, 0)
        self.assertEqual(self.stream.rooms, {})
        self.assertEqual(self.stream.stream, [])
        for root, _dirs, files in os.walk(self.data_dir):
            self.assertEqual(files, [])

    def test_unsupported_room_version(self) -> None:
        """An unknown room version is M_UNSUPPORTED_ROOM_VERSION."""
        self.drive_failure(self.registry.create_room(ALICE, "99", []),
                           UnsupportedRoomVersionError)

    def test_unknown_room_is_not_found(self) -> None:
        """get() of a room this server does not have raises NotFound."""
        self.assertFalse(self.registry.known("!nope:test"))
        self.drive_failure(self.registry.get("!nope:test"), NotFound)


class ImportRoomTests(RoomHarness, unittest.TestCase):
    def test_room_joined_over_federation(self) -> None:
        """A send_join answer becomes a room DB whose state is theirs plus our join."""
        remote = self.make_registry(data_dir=self.data_dir + "-remote", server_name="remote")
        room_id, _ = self.create_room(registry=remote)
        theirs = self.drive(remote.get(room_id))
        state = list(self.drive(theirs.current_state()).values())
        carol = "@carol:test"
        join = remote_event(room_id, self.room_version,
                            self.drive(theirs.current_state()),
                            list(self.drive(theirs.get_events(
                                self.drive(theirs.forward_extremities()))).values()),
                            {"type": "m.room.member", "sender": carol, "state_key": carol,
                             "content": {"membership": "join"}}, self.signing_key, SERVER)
        chain = self.drive(theirs.auth_chain([e.event_id for e in state]))
        outcome = self.drive(self.registry.import_room(room_id, self.room_version, join,
                                                       state, chain))
        self.assertEqual(outcome.status, "accepted")
        ours = self.drive(self.registry.get(room_id))
        self.assertEqual(self.drive(ours.membership(carol)), "join")
        self.assertEqual(self.drive(ours.forward_extremities()), [join.event_id])
        expected = {**self.drive(theirs.current_state_ids()),
                    ("m.room.member", carol): join.event_id}
        self.assertEqual(self.drive(ours.current_state_ids()), expected)
        self.assertEqual([a.event_id for a in self.stream.stream
                          if a.room_id == room_id][-1], join.event_id)
        # the state came in as outliers: not in the timeline
        events, _ = self.drive(ours.events_since(0, 100))
        self.assertEqual([e.event_id for e in events], [join.event_id])

    def test_refused_join_leaves_nothing(self) -> None:
        """If the join is not allowed by the given state, no room is kept."""
        remote = self.make_registry(data_dir=self.data_dir + "-remote", server_name="remote")
        room_id, _ = self.create_room(registry=remote, body={"preset": "private_chat"})
        theirs = self.drive(remote.get(room_id))
        current = self.drive(theirs.current_state())
        join = remote_event(room_id, self.room_version, current,
                            list(self.drive(theirs.get_events(
                                self.drive(theirs.forward_extremities()))).values()),
                            {"type": "m.room.member", "sender": "@carol:test",
                             "state_key": "@carol:test", "content": {"membership": "join"}},
                            self.signing_key, SERVER)
        state = list(current.values())
        chain = self.drive(theirs.auth_chain([e.event_id for e in state]))
        self.drive_failure(self.registry.import_room(room_id, self.room_version, join,
                                                     state, chain), InvalidRoomState)
        self.assertFalse(self.registry.known(room_id))


class HibernationTests(RoomHarness, unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.room_id, _ = self.create_room()
        self.actor = self.drive(self.registry.get(self.room_id))
        for i in range(3):
            self.drive(self.actor.create_event(self.message(str(i))))

    def test_idle_room_hibernates_and_wakes_identical(self) -> None:
        """After idle_seconds the room leaves memory; waking rebuilds the same room."""
        before = snapshot(self, self.actor)
        self.clock.advance(self.idle_seconds + 1)
        self.assertFalse(self.registry.is_awake(self.room_id))
        self.assertTrue(self.actor.closed)
        self.assertTrue(self.registry.known(self.room_id))
        woken = self.drive(self.registry.get(self.room_id))
        self.assertIsNot(woken, self.actor)
        self.assertEqual(snapshot(self, woken), before)
        # and it keeps working where it left off
        pdu = self.drive(woken.create_event(self.message("after")))
        self.assertEqual(list(pdu.prev_event_ids), before[1])

    def test_woken_room_starts_its_wal_in_the_thread_before_its_first_commit(self) -> None:
        """A clean close deletes the room's WAL file; on the first write after the room
        wakes, the file is created (and its header synced) by the thread runner before
        the commit, once; reads do not; a new room's first commit needs none."""
        calls: list[tuple[bool, int]] = []
        registry = self.make_registry(data_dir=self.data_dir + "-wal")

        def in_thread(fn):
            actor = registry._awake.get(room_id)
            fn()
            calls.append((os.path.getsize(wal) > 0,     # its header is written
                          actor._store.commit_count if actor else -1))
            return defer.succeed(None)

        # the closer runs inline here; only this runner is the thread's
        registry._services = dataclasses.replace(registry._services, in_thread=in_thread)
        room_id, _ = self.create_room(registry=registry)
        wal = registry.path_for(room_id) + "-wal"
        actor = self.drive(registry.get(room_id))
        self.drive(actor.create_event(self.message("while new")))
        self.assertEqual(calls, [])           # created here: its WAL is there
        self.clock.advance(self.idle_seconds + 1)
        self.assertFalse(registry.is_awake(room_id))
        self.assertFalse(os.path.exists(wal))  # the clean close deleted it
        woken = self.drive(registry.get(room_id))
        before = snapshot(self, woken)
        self.assertEqual(calls, [])            # reading wakes it without a write
        pdu = self.drive(woken.create_event(self.message("first after waking")))
        self.assertEqual(calls, [(True, 0)])   # the WAL was started before the commit
        self.drive(woken.create_event(self.message("second")))
        self.assertEqual(len(calls), 1)
        self.assertEqual(list(pdu.prev_event_ids), before[1])
        self.assertEqual(self.drive(woken.last_seq()), before[2] + 2)

    def test_awake_map_shrinks_once_rooms_hibernated(self) -> None:
        """After a burst of rooms has hibernated, the registry's maps of awake and
        warm rooms give back the size the burst made them (compacted when memory is
        returned)."""
        import sys

        registry = self.make_registry(data_dir=self.data_dir + "-burst")
        for _ in range(60):
            self.create_room(registry=registry)
        peak = sys.getsizeof(registry._awake), sys.getsizeof(registry._services.warm._rooms)
        registry._memory._trim = lambda: None
        self.clock.advance(self.idle_seconds + 1)
        self.assertEqual(registry.awake_count, 0)
        self.clock.advance(60)      # closes paused: memory is returned
        after = sys.getsizeof(registry._awake), sys.getsizeof(registry._services.warm._rooms)
        self.assertLess(after[0] * 4, peak[0])
        self.assertLess(after[1] * 4, peak[1])

    def test_room_stream_hears_of_hibernation(self) -> None:
        """The room stream is told when a room hibernates (its tail may go)."""
        self.clock.advance(self.idle_seconds - 1)
        self.assertEqual(self.stream.hibernated, [])
        self.clock.advance(2)
        self.assertEqual(self.stream.hibernated, [self.room_id])

    def test_memory_is_returned_after_the_file_closed_elsewhere(self) -> None:
        """With a closer thread, the trim waits until the room's file has really
        closed there (its memory is free only then), however long that takes."""
        closes: list[tuple[defer.Deferred, object]] = []

        def close_in_thread(fn):
            d = defer.Deferred()
            closes.append((d, fn))
            return d

        registry = self.make_registry(data_dir=self.data_dir + "-closer",
                                      close_in_thread=close_in_thread)
        room_id, _ = self.create_room(registry=registry)
        trims = []
        registry._memory._trim = lambda: trims.append(self.clock.seconds())
        self.clock.advance(self.idle_seconds + 1)
        self.assertFalse(registry.is_awake(room_id))
        self.assertEqual(len(closes), 1)
        self.clock.advance(30)          # the closer thread is slow: nothing to trim yet
        self.assertEqual(trims, [])
        done, fn = closes[0]
        fn()
        done.callback(None)
        self.clock.advance(1)
        self.assertEqual(len(trims), 1)

    def test_memory_releasers_run_after_hibernation(self) -> None:
        """What ``add_memory_releaser`` registers (the global DB's page cache) is
        released once rooms have hibernated, with the trim, not before."""
        released = []
        self.registry.add_memory_releaser(lambda: released.append(self.clock.seconds()))
        self.clock.advance(self.idle_seconds - 1)
        self.assertEqual(released, [])
        self.clock.advance(2)
        self.assertFalse(self.registry.is_awake(self.room_id))
        self.clock.advance(1)
        self.assertEqual(len(released), 1)
        woken = self.drive(self.registry.get(self.room_id))   # still has its state
        events, _ = self.drive(woken.events_since(0, 100))
        self.assertEqual([e.content.get("body") for e in events
                          if e.type == "m.room.message"], ["0", "1", "2"])

    def test_failed_close_elsewhere_is_logged_and_still_trims(self) -> None:
        """A close that fails in the closer thread is logged, not left unhandled."""
        closing: list[defer.Deferred] = []

        def close_in_thread(fn):
            fn()
            closing.append(defer.Deferred())
            return closing[-1]

        registry = self.make_registry(data_dir=self.data_dir + "-failing",
                                      close_in_thread=close_in_thread)
        self.create_room(registry=registry)
        trims = []
        registry._memory._trim = lambda: trims.append(True)
        self.clock.advance(self.idle_seconds + 1)
        closing[0].errback(OSError("disk gone"))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.clock.advance(1)
        self.assertEqual(trims, [True])

    def test_activity_postpones_hibernation(self) -> None:
        """Each request restarts the idle countdown."""
        self.clock.advance(self.idle_seconds - 1)
        self.drive(self.actor.get_event("$x"))
        self.clock.advance(self.idle_seconds - 1)
        self.assertTrue(self.registry.is_awake(self.room_id))
        self.clock.advance(2)
        self.assertFalse(self.registry.is_awake(self.room_id))

    def test_subscribers_keep_a_room_awake(self) -> None:
        """A room with live subscribers never hibernates; it may once they leave."""
        self.actor.subscribe()
        self.clock.advance(self.idle_seconds * 5)
        self.assertTrue(self.registry.is_awake(self.room_id))
        self.actor.unsubscribe()
        self.clock.advance(self.idle_seconds + 1)
        self.assertFalse(self.registry.is_awake(self.room_id))

    def test_stale_handle_is_forwarded(self) -> None:
        """A caller holding a hibernated actor reaches the one fresh actor, not a second."""
        self.clock.advance(self.idle_seconds + 1)
        pdu = self.drive(self.actor.create_event(self.message("late")))
        self.assertEqual(self.registry.awake_count, 1)
        fresh = self.drive(self.registry.get(self.room_id))
        self.assertEqual(self.drive(fresh.forward_extremities()), [pdu.event_id])

    def test_concurrent_gets_wake_once(self) -> None:
        """Two requests for a sleeping room share one wake, even while it replays."""
        self.stream.fail_with = RuntimeError("global DB down")
        self.drive_failure(self.actor.create_event(self.message("backlog")), RuntimeError)
        self.flushLoggedErrors(RuntimeError)
        crash(self.registry)
        self.stream.fail_with, self.stream.hold = None, defer.Deferred()
        registry = self.make_registry()
        a = defer.ensureDeferred(registry.get(self.room_id))
        b = defer.ensureDeferred(registry.get(self.room_id))
        self.assertNoResult(a)  # waiting on the replay's announce
        self.assertNoResult(b)
        hold, self.stream.hold = self.stream.hold, None
        hold.callback(None)
        self.assertIs(self.successResultOf(a), self.successResultOf(b))
        self.assertEqual(registry.awake_count, 1)


class LruTests(RoomHarness, unittest.TestCase):
    max_open = 2

    def test_least_recently_used_idle_room_is_closed(self) -> None:
        """Beyond max_open the least recently fetched idle room closes its DB."""
        first, _ = self.create_room()
        second, _ = self.create_room()
        self.drive(self.registry.get(first))  # first is now the most recent
        third, _ = self.create_room()
        self.assertEqual(self.registry.awake_count, 2)
        self.assertFalse(self.registry.is_awake(second))
        self.assertTrue(self.registry.is_awake(first) and self.registry.is_awake(third))
        self.drive(self.registry.get(second))
        self.assertFalse(self.registry.is_awake(first))

    def test_busy_room_is_never_evicted(self) -> None:
        """A room with queued work stays open even over the cap, and closes later."""
        first, _ = self.create_room()
        actor = self.drive(self.registry.get(first))
        pending = defer.ensureDeferred(actor.create_event(self.message("queued")))
        self.assertTrue(actor.busy)
        self.create_room()
        self.create_room()  # both runs flush the queued write too (same clock)
        self.successResultOf(pending)
        self.assertLessEqual(self.registry.awake_count, 3)
        fourth, _ = self.create_room()
        self.assertEqual(self.registry.awake_count, 2)
        self.assertTrue(self.registry.is_awake(fourth))

    def test_subscribed_room_is_not_evicted(self) -> None:
        """A room with live subscribers is skipped by LRU eviction."""
        first, _ = self.create_room()
        actor = self.drive(self.registry.get(first))
        actor.subscribe()
        self.create_room()
        self.create_room()
        self.assertTrue(self.registry.is_awake(first))
        self.assertFalse(actor.closed)


class WarmTests(RoomHarness, unittest.TestCase):
    max_warm = 2

    def make_registry(self, **overrides):
        return super().make_registry(max_warm=self.max_warm, **overrides)

    def cached(self, actor) -> int:
        return len(actor._store._events)

    def test_rooms_beyond_max_warm_shed_their_caches_and_stay_awake(self) -> None:
        """Only the max_warm most recently used awake rooms keep decoded events in
        memory; a cold room stays open and answers from its DB, then is warm again."""
        rooms = [self.create_room()[0] for _ in range(3)]
        actors = [self.drive(self.registry.get(r)) for r in rooms]
        for actor in actors[1:]:
            self.drive(actor.current_state())
        self.assertEqual(self.cached(actors[0]), 0)
        self.assertGreater(self.cached(actors[1]), 0)
        self.assertGreater(self.cached(actors[2]), 0)
        self.assertTrue(all(self.registry.is_awake(r) for r in rooms))
        state = self.drive(actors[0].current_state())   # warm again: rooms[1] goes cold
        self.assertEqual(state[("m.room.create", "")].sender, ALICE)
        self.assertGreater(self.cached(actors[0]), 0)
        self.assertEqual(self.cached(actors[1]), 0)
        pdu = self.drive(actors[1].create_event(self.message("after a cold spell")))
        self.assertEqual(self.drive(actors[1].get_event(pdu.event_id)).event_id,
                         pdu.event_id)


class OutboxTests(RoomHarness, unittest.TestCase):
    def test_replay_after_crash_between_commit_and_announce(self) -> None:
        """Events committed but never announced reach the stream exactly once on wake."""
        room_id, _ = self.create_room()
        actor = self.drive(self.registry.get(room_id))
        self.stream.fail_with = RuntimeError("global DB down")
        self.drive_failure(actor.create_event(self.message("lost?")), RuntimeError)
        self.flushLoggedErrors(RuntimeError)
        seq = self.drive(actor.last_seq())
        crash(self.registry)
        self.stream.fail_with = None
        self.assertNotIn(seq, self.stream.seqs(room_id))

        registry = self.make_registry()
        woken = self.drive(registry.get(room_id))
        seqs = self.stream.seqs(room_id)
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertEqual(seqs[-1], seq)
        self.assertEqual(self.listener.events[-1][0].content["body"], "lost?")
        self.assertEqual(woken._store.last_announced_seq, seq)

    def test_replay_after_crash_between_announce_and_record(self) -> None:
        """Announced events whose record was lost are re-announced without duplicates."""
        room_id, events = self.create_room()
        actor = self.drive(self.registry.get(room_id))
        self.drive(actor.create_event(self.message("announced")))
        crash(self.registry)  # last_announced_seq was still only in memory
        calls = self.stream.announce_calls
        registry = self.make_registry()
        self.drive(registry.get(room_id))
        self.assertGreater(self.stream.announce_calls, calls)  # it did replay...
        seqs = self.stream.seqs(room_id)
        self.assertEqual(seqs, sorted(set(seqs)))  # ...and nothing is in twice
        self.assertEqual(len(seqs), len(events) + 1)

    def test_crashed_creation_is_not_a_room(self) -> None:
        """A DB file with no committed room (crash mid-creation) is NotFound."""
        room_id = "!half:test"
        store = RoomStore.open(self.registry.path_for(room_id), create=True)
        store.close()
        self.drive_failure(self.registry.get(room_id), NotFound)


class StopTests(RoomHarness, unittest.TestCase):
    def test_stop_drains_inboxes_then_closes(self) -> None:
        """stop() lets queued writes commit and answer, then closes every room DB."""
        room_id, _ = self.create_room()
        actor = self.drive(self.registry.get(room_id))
        pending = defer.ensureDeferred(actor.create_event(self.message("last words")))
        stopped = self.registry.stop()
        self.assertNoResult(stopped)
        self.clock.advance(0)
        self.successResultOf(stopped)
        self.assertEqual(self.successResultOf(pending).content["body"], "last words")
        self.assertTrue(actor.closed)
        self.assertEqual(self.registry.awake_count, 0)
        failure = self.drive_failure(self.registry.get(room_id), MatrixError)
        self.assertEqual(failure.value.status, 503)
        # the bookkeeping deferred to the next commit was written on close
        store = RoomStore.open(self.registry.path_for(room_id))
        self.addCleanup(store.close)
        self.assertEqual(store.last_announced_seq, store.last_seq())


def open_paths() -> set[str]:
    """The files this process has open (Linux: /proc/self/fd)."""
    paths = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(os.path.join("/proc/self/fd", fd)))
        except OSError:
            pass  # closed while listing
    return paths


class ReleaseTests(RoomHarness, unittest.TestCase):
    """A room that leaves memory (idle or evicted) leaves nothing behind: no actor,
    no store, no SQLite connection, no open file, and no acknowledged event lost.

    The garbage collector is off: a room's objects must go by reference counting, at
    once, not at the next full collection (a burst of rooms would pile up until then)."""

    max_open = 2

    def setUp(self) -> None:
        if not os.path.isdir("/proc/self/fd"):
            raise unittest.SkipTest("needs /proc/self/fd to see open files")
        super().setUp()
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)

    def held(self, room_id: str) -> tuple[weakref.ref, weakref.ref, weakref.ref]:
        """Weak references to the awake room's actor, store and connection."""
        actor = self.drive(self.registry.get(room_id))
        return (weakref.ref(actor), weakref.ref(actor._store),
                weakref.ref(actor._store._conn))

    def assertReleased(self, room_id: str, refs) -> None:
        self.assertEqual([ref() for ref in refs], [None, None, None])
        path = self.registry.path_for(room_id)
        self.assertFalse({p for p in open_paths() if p.startswith(path)})

    def test_evicted_room_is_released(self) -> None:
        """A room closed by max_open leaves no actor, connection or open file."""
        first, _ = self.create_room()
        refs = self.held(first)
        self.assertTrue(any(p.startswith(self.registry.path_for(first))
                            for p in open_paths()))
        self.create_room()
        self.create_room()
        self.assertFalse(self.registry.is_awake(first))
        self.assertReleased(first, refs)

    def test_hibernated_room_is_released(self) -> None:
        """A room that hibernated after idle_seconds leaves nothing in memory."""
        room_id, _ = self.create_room()
        refs = self.held(room_id)
        self.clock.advance(self.idle_seconds + 1)
        self.assertReleased(room_id, refs)

    def test_acknowledged_events_survive_hibernation(self) -> None:
        """Every send that was answered is in the woken room, in order, and in the
        stream: including those queued in the turn the idle timer fell due."""
        room_id, _ = self.create_room()
        actor = self.drive(self.registry.get(room_id))
        sent = [self.drive(actor.create_event(self.message(f"m{i}"))).event_id
                for i in range(3)]
        self.clock.advance(self.idle_seconds - 1)
        late = [defer.ensureDeferred(actor.create_event(self.message(f"late{i}")))
                for i in range(2)]
        self.clock.advance(1)     # the idle timer and the queued flush fall due
        sent += [self.successResultOf(d).event_id for d in late]
        self.clock.advance(self.idle_seconds + 1)
        self.assertFalse(self.registry.is_awake(room_id))
        woken = self.drive(self.registry.get(room_id))
        events, _more = self.drive(woken.events_since(0, 100))
        messages = [e.event_id for e in events if e.type == "m.room.message"]
        self.assertEqual(messages, sent)
        announced = {a.event_id for a in self.stream.stream}
        self.assertTrue(set(sent) <= announced)

    def test_hibernation_observers_hear_idle_and_evicted_rooms(self) -> None:
        """Caches outside the room (push evaluation's members) hear when a room leaves
        memory, by eviction or by idling, so they can let go of it too."""
        heard: list[str] = []
        self.registry.add_hibernation_observer(heard.append)
        first, _ = self.create_room()
        second, _ = self.create_room()
        third, _ = self.create_room()
        self.assertEqual(heard, [first])
        self.clock.advance(self.idle_seconds + 1)
        self.assertEqual(sorted(heard[1:]), sorted([second, third]))
