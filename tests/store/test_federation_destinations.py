"""The federation sender's durable progress (federation_destinations and the readers)."""

from __future__ import annotations

from homeserver.store.federation_destinations import (
    OUTBOX_STREAM, ROOM_STREAM, DestinationProgress,
)
from tests.store.backends import StoreTests, on_both_backends


class FederationDestinationsTests(StoreTests):
    async def test_reader_and_new_destinations_in_one_step(self) -> None:
        """Advancing a reader records its position and the destinations it met."""
        fd = self.store.federation_destinations
        self.assertEqual(await fd.load(), ({}, {}))
        await fd.advance_reader(ROOM_STREAM, 10, [DestinationProgress(
            "a.example", {ROOM_STREAM: 6, OUTBOX_STREAM: 0})])
        readers, dests = await fd.load()
        self.assertEqual(readers, {ROOM_STREAM: 10})
        self.assertEqual(dests["a.example"].acked, {ROOM_STREAM: 6, OUTBOX_STREAM: 0})
        self.assertEqual(dests["a.example"].retry_interval_ms, 0)

    async def test_caught_up_destinations_move_with_the_reader(self) -> None:
        """Destinations with nothing pending move to the reader's position, never back."""
        fd = self.store.federation_destinations
        await fd.advance_reader(ROOM_STREAM, 5, [
            DestinationProgress("a.example", {ROOM_STREAM: 4, OUTBOX_STREAM: 0}),
            DestinationProgress("b.example", {ROOM_STREAM: 4, OUTBOX_STREAM: 0})])
        await fd.save("b.example", {ROOM_STREAM: 30}, 0, 0)
        await fd.advance_reader(ROOM_STREAM, 20, caught_up=["a.example", "b.example"])
        _, dests = await fd.load()
        self.assertEqual(dests["a.example"].acked[ROOM_STREAM], 20)
        self.assertEqual(dests["b.example"].acked[ROOM_STREAM], 30)

    async def test_save_keeps_the_highest_ack_and_the_retry_state(self) -> None:
        """Saving never moves an acknowledged position back; retry state is replaced."""
        fd = self.store.federation_destinations
        await fd.save("a.example", {ROOM_STREAM: 9, OUTBOX_STREAM: 3}, 1000, 5000)
        await fd.save("a.example", {ROOM_STREAM: 7, OUTBOX_STREAM: 4}, 2000, 10000)
        _, dests = await fd.load()
        row = dests["a.example"]
        self.assertEqual(row.acked, {ROOM_STREAM: 9, OUTBOX_STREAM: 4})
        self.assertEqual((row.retry_last_ts, row.retry_interval_ms), (2000, 10000))

    async def test_outbox_add_and_trim(self) -> None:
        """Entries appended on their own are read back and deleted up to a position."""
        from homeserver.store.outbox import RECEIPT, OutboxEntry

        outbox = self.store.federation_outbox
        last = await outbox.add([OutboxEntry(RECEIPT, "@a:hs", {"!r": {}}),
                                 OutboxEntry(RECEIPT, "@a:hs", {"!s": {}})], 5)
        entries = await outbox.entries(0)
        self.assertEqual([e.pos for e in entries][-1], last)
        self.assertEqual(await outbox.delete_upto(entries[0].pos), 1)
        self.assertEqual([e.content for e in await outbox.entries(0)], [{"!s": {}}])


FederationDestinationsTestsSQLite, FederationDestinationsTestsPostgres = \
    on_both_backends(FederationDestinationsTests)
