"""Stream positions: per-stream counters, commit-ordered across connections."""

from __future__ import annotations

import threading

from homeserver.rooms.actor.protocols import Announcement
from homeserver.store import STREAMS, positions
from homeserver.store.streams import _announce
from tests.store.backends import StoreTests, on_both_backends


def _msg(room_id: str, seq: int) -> Announcement:
    return Announcement(room_id, seq, f"${room_id}{seq}", "m.room.message", None,
                        "@a:example.org")


class PositionTests(StoreTests):
    async def test_all_streams_start_at_zero(self) -> None:
        """Every stream has a position, 0 before anything is written."""
        self.assertEqual(await self.store.current_positions(), {s: 0 for s in STREAMS})
        for stream in STREAMS:
            self.assertEqual(await self.store.current_position(stream), 0)

    async def test_unknown_stream(self) -> None:
        """Asking for a stream that does not exist is an error."""
        with self.assertRaises(positions.UnknownStream):
            await self.store.current_position("typing")

    async def test_streams_are_independent(self) -> None:
        """Writing one stream leaves the others' positions alone."""
        await self.store.account_data.set_account_data("@a:x", "m.t", {})
        await self.store.account_data.set_account_data("@a:x", "m.t", {"v": 1})
        got = await self.store.current_positions()
        self.assertEqual(got["account_data"], 2)
        self.assertEqual({k: v for k, v in got.items() if k != "account_data"},
                         {s: 0 for s in STREAMS if s != "account_data"})

    def test_writers_commit_in_position_order(self) -> None:
        """A second writer (as from another process) waits until the first commits."""
        # so a reader that has seen position N never later sees a smaller one appear
        engine = self.db.engine
        conn_a = engine.connect()
        self.addCleanup(conn_a.close)
        txn_a = conn_a.begin()
        pos_a = _announce(conn_a, [_msg("!a:x", 1)])[0]
        result: dict[str, int] = {}

        def writer_b() -> None:
            with engine.connect() as conn_b, conn_b.begin():
                result["b"] = _announce(conn_b, [_msg("!b:x", 1)])[0]

        thread = threading.Thread(target=writer_b)
        thread.start()
        thread.join(0.5)
        self.assertTrue(thread.is_alive(), "writer B did not wait for A's commit")
        with engine.connect() as reader:
            self.assertEqual(positions.read_position(reader, "room"), 0)
        txn_a.commit()
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertGreater(result["b"], pos_a)
        with engine.connect() as reader:
            self.assertEqual(positions.read_position(reader, "room"), result["b"])

    async def test_position_survives_deletes(self) -> None:
        """Deleting delivered to-device messages does not move the position back."""
        pos = await self.store.to_device.add_messages(
            [("@a:x", "D", {"type": "t", "sender": "@b:x", "content": {}})])
        await self.store.to_device.delete_messages_upto("@a:x", "D", pos)
        self.assertEqual(await self.store.current_position("to_device"), pos)
        again = await self.store.to_device.add_messages(
            [("@a:x", "D", {"type": "t", "sender": "@b:x", "content": {}})])
        self.assertGreater(again, pos)


PositionTestsSQLite, PositionTestsPostgres = on_both_backends(PositionTests)
