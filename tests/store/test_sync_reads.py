"""Sync's reads over the room stream: room points at a position and changes between
two positions."""

from __future__ import annotations

import threading

from twisted.internet import defer

from tests.store.backends import StoreTests, on_both_backends
from tests.store.test_streams import R1, R2, R3, msg


class SyncReadsTests(StoreTests):
    async def test_room_points(self) -> None:
        """Each room's last entry at or before a position; rooms with none absent."""
        p = await self.store.announce([msg(R1, 1), msg(R2, 1), msg(R1, 2), msg(R2, 2)])
        points = await self.store.sync_reads.room_points([R1, R2, R3], p[2])
        self.assertEqual({r: (pt.room_seq, pt.pos) for r, pt in points.items()},
                         {R1: (2, p[2]), R2: (1, p[1])})
        self.assertEqual(points[R1].event_id, msg(R1, 2).event_id)
        self.assertEqual(await self.store.sync_reads.room_points([], p[3]), {})

    async def test_rooms_changed_between(self) -> None:
        """Changes in (since, upto] for the given rooms only, with seq bounds."""
        p = await self.store.announce([msg(R1, 1), msg(R2, 1), msg(R1, 2), msg(R1, 3),
                                       msg(R3, 1), msg(R2, 2)])
        changes = await self.store.sync_reads.rooms_changed_between(p[0], p[4], [R1, R2])
        self.assertEqual({r: (c.min_room_seq, c.max_room_seq, c.count, c.last_pos)
                          for r, c in changes.items()},
                         {R1: (2, 3, 2, p[3]), R2: (1, 1, 1, p[1])})
        self.assertEqual(await self.store.sync_reads.rooms_changed_between(
            p[5], p[5], [R1]), {})


SyncReadsTestsSQLite, SyncReadsTestsPostgres = on_both_backends(SyncReadsTests)


class TailAgreesWithDatabaseTests(StoreTests):
    """The in-memory tail answers as the database would, and falls back to it."""

    def db_only(self):
        from homeserver.store.sync_reads import SyncReads
        return SyncReads(self.db)  # a tail of its own that never records: always a miss

    async def assertAgree(self, rooms: list[str], top: int) -> None:
        ref = self.db_only()
        for since in range(0, top + 1):
            for upto in range(since, top + 1):
                self.assertEqual(
                    await self.store.sync_reads.rooms_changed_between(since, upto, rooms),
                    await ref.rooms_changed_between(since, upto, rooms), (since, upto))
            self.assertEqual(await self.store.sync_reads.room_points(rooms, since),
                             await ref.room_points(rooms, since), since)

    async def test_entries_before_start_and_after(self) -> None:
        """Entries from before this process (unrecorded) and a long run after it,
        longer than the tail keeps: every question gets the database's answer."""
        from homeserver.store import GlobalStore
        await self.store.announce([msg(R1, 1), msg(R2, 1), msg(R1, 2)])
        self.store = GlobalStore(self.db)  # "restart": its tail saw none of them
        await self.store.sync_reads.room_points([R1], 0)  # reads the floor: 3
        p = await self.store.announce([msg(R1, s) for s in range(3, 15)]
                                      + [msg(R3, 1), msg(R1, 15), msg(R3, 2)])
        await self.assertAgree([R1, R2, R3], p[-1])

    async def test_answers_come_from_memory(self) -> None:
        """After the floor is known, recent questions make no database round trip."""
        await self.store.sync_reads.room_points([R1], 0)
        p = await self.store.announce([msg(R1, 1), msg(R2, 1), msg(R1, 2)])
        calls = self.record_runs()
        changes = await self.store.sync_reads.rooms_changed_between(0, p[2], [R1, R2, R3])
        points = await self.store.sync_reads.room_points([R1, R2], p[1])
        self.assertEqual(calls, [])
        self.assertEqual((changes[R1].min_room_seq, changes[R1].max_room_seq,
                          changes[R1].count), (1, 2, 2))
        self.assertNotIn(R3, changes)
        self.assertEqual((points[R1].room_seq, points[R2].room_seq), (1, 1))

    async def test_failed_announce_reads_the_database(self) -> None:
        """A room whose announcement failed is answered from the database after."""
        await self.store.sync_reads.room_points([R1], 0)
        await self.store.announce([msg(R1, 1)])
        real_run = self.db.run_batched

        async def failing_run(fn, *args, **kwargs):
            await real_run(fn, *args)  # committed, but the caller hears of a failure
            raise ConnectionError("lost after commit")

        self.db.run_batched = failing_run
        with self.assertRaises(ConnectionError):
            await self.store.announce([msg(R1, 2)])
        self.db.run_batched = real_run
        changes = await self.store.sync_reads.rooms_changed_between(0, 10, [R1])
        self.assertEqual(changes[R1].max_room_seq, 2)

    async def test_first_caller_of_a_group_commit_sees_the_whole_batch(self) -> None:
        """Announcements committed together are all in the tail (and the memberships
        cache) when the first of their callers resumes (issue #12: a /sync woken by
        that caller took the batch's position but missed the other rooms' events)."""
        from tests.store.test_streams import member
        # the floor, the positions and bob's rooms are all in memory, as in a server
        await self.store.sync_reads.room_points([R1], 0)
        await self.store.current_positions()
        self.assertEqual(await self.store.streams.get_rooms_for_user("@bob:example.org"),
                         [])
        seen: dict = {}
        # a transaction in the pool: the three announcements wait and go together
        # (alone, each would commit at once on the reactor thread: Database.run_batched)
        release = threading.Event()
        busy = defer.ensureDeferred(self.db.run(lambda conn: release.wait(10)))

        async def first_then_sync() -> None:
            await self.store.announce([msg(R1, 1)])
            # what a long-poll woken right now by R1's notification does
            upto = (await self.store.current_positions())["room"]
            seen["changes"] = await self.store.sync_reads.rooms_changed_between(
                0, upto, [R1, R2, R3])
            seen["rooms"] = await self.store.streams.get_rooms_for_user(
                "@bob:example.org")

        calls = [defer.ensureDeferred(first_then_sync()),
                 defer.ensureDeferred(self.store.announce([msg(R2, 1), msg(R2, 2)])),
                 defer.ensureDeferred(self.store.announce(
                     [member(R3, 1, "@bob:example.org", "join")]))]
        release.set()
        await busy
        await defer.gatherResults(calls)
        self.assertEqual({r: (c.min_room_seq, c.max_room_seq)
                          for r, c in seen["changes"].items()},
                         {R1: (1, 1), R2: (1, 2), R3: (1, 1)})
        self.assertEqual([m.room_id for m in seen["rooms"]], [R3])


TailTestsSQLite, TailTestsPostgres = on_both_backends(TailAgreesWithDatabaseTests)
