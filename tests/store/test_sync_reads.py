"""Sync's reads over the room stream: room points at a position and changes between
two positions."""

from __future__ import annotations

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
