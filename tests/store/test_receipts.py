"""Receipts and presence, each on its own stream."""

from __future__ import annotations

from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"


class ReceiptsTests(StoreTests):
    async def test_receipt_replaced(self) -> None:
        """A newer receipt of the same kind replaces the old one."""
        receipts = self.store.receipts
        p1 = await receipts.set_receipt("!r:x", "m.read", ALICE, "$1", {"ts": 1})
        p2 = await receipts.set_receipt("!r:x", "m.read", ALICE, "$2", {"ts": 2})
        self.assertLess(p1, p2)
        got = await receipts.get_receipt("!r:x", "m.read", ALICE)
        self.assertEqual((got.event_id, got.data, got.thread_id, got.stream_pos),
                         ("$2", {"ts": 2}, None, p2))
        self.assertEqual(len(await receipts.get_receipts_for_room("!r:x")), 1)

    async def test_threads_and_types_are_separate(self) -> None:
        """Threaded, unthreaded and private receipts coexist."""
        receipts = self.store.receipts
        await receipts.set_receipt("!r:x", "m.read", ALICE, "$1", {})
        await receipts.set_receipt("!r:x", "m.read", ALICE, "$2", {}, thread_id="main")
        await receipts.set_receipt("!r:x", "m.read.private", ALICE, "$3", {})
        await receipts.set_receipt("!r:x", "m.read", ALICE, "$4", {}, thread_id="$t")
        rows = await receipts.get_receipts_for_room("!r:x")
        self.assertEqual({(r.receipt_type, r.thread_id, r.event_id) for r in rows}, {
            ("m.read", None, "$1"), ("m.read", "main", "$2"),
            ("m.read.private", None, "$3"), ("m.read", "$t", "$4")})
        got = await receipts.get_receipt("!r:x", "m.read", ALICE, thread_id="main")
        self.assertEqual(got.event_id, "$2")

    async def test_receipts_since(self) -> None:
        """Receipts after a position, optionally only in some rooms."""
        receipts = self.store.receipts
        p1 = await receipts.set_receipt("!r:x", "m.read", ALICE, "$1", {})
        await receipts.set_receipt("!s:x", "m.read", BOB, "$2", {})
        await receipts.set_receipt("!r:x", "m.read", BOB, "$3", {})
        since = await receipts.get_receipts_since(p1)
        self.assertEqual([r.event_id for r in since], ["$2", "$3"])
        only = await receipts.get_receipts_since(0, room_ids=["!s:x"])
        self.assertEqual([r.event_id for r in only], ["$2"])
        self.assertEqual(await receipts.get_receipts_since(0, room_ids=[]), [])
        self.assertEqual(await self.store.current_position("receipts"), 3)


    async def test_prefetch_reads_many_rooms_at_once(self) -> None:
        """prefetch fills the cache for every room and type in one round trip; later
        get_receipt calls make none, and a receipt written after still shows."""
        receipts = self.store.receipts
        await receipts.set_receipt("!a:x", "m.read", ALICE, "$1", {})
        await receipts.set_receipt("!b:x", "m.read.private", ALICE, "$2", {})
        await receipts.set_receipt("!b:x", "m.read", BOB, "$3", {})
        await receipts.set_receipt("!c:x", "m.read", ALICE, "$4", {}, thread_id="$t")
        runs = self.record_runs()
        rooms = ["!a:x", "!b:x", "!c:x"]
        await receipts.prefetch(rooms, ("m.read", "m.read.private"), ALICE)
        self.assertEqual(len(runs), 1)
        got = {(r, t): await receipts.get_receipt(r, t, ALICE)
               for r in rooms for t in ("m.read", "m.read.private")}
        self.assertEqual(len(runs), 1)
        self.assertEqual({k: v.event_id for k, v in got.items() if v is not None},
                         {("!a:x", "m.read"): "$1", ("!b:x", "m.read.private"): "$2"})
        await receipts.prefetch(rooms, ("m.read",), ALICE)  # all cached: no trip
        self.assertEqual(len(runs), 1)
        await receipts.set_receipt("!c:x", "m.read", ALICE, "$5", {})
        self.assertEqual((await receipts.get_receipt("!c:x", "m.read", ALICE)).event_id,
                         "$5")


class PresenceTests(StoreTests):
    async def test_set_and_get(self) -> None:
        """Presence is stored per user and replaced on update."""
        presence = self.store.presence
        await presence.set_presence(ALICE, "online", status_msg="hi",
                                    last_active_ts=5, currently_active=True)
        p = await presence.set_presence(ALICE, "unavailable", last_active_ts=9)
        got = await presence.get_presence(ALICE)
        self.assertEqual((got.state, got.status_msg, got.last_active_ts,
                          got.currently_active, got.stream_pos),
                         ("unavailable", None, 9, False, p))
        self.assertIsNone(await presence.get_presence(BOB))
        with self.assertRaises(ValueError):
            await presence.set_presence(ALICE, "asleep")

    async def test_changes(self) -> None:
        """Changes after a position, for some users, in stream order."""
        presence = self.store.presence
        p1 = await presence.set_presence(ALICE, "online")
        await presence.set_presence(BOB, "online")
        self.assertEqual([s.user_id for s in await presence.get_presence_changes(p1)],
                         [BOB])
        self.assertEqual([s.user_id for s in await presence.get_presence_changes(
            0, user_ids=[ALICE])], [ALICE])
        many = await presence.get_presence_for_users([ALICE, BOB, "@c:x"])
        self.assertEqual(set(many), {ALICE, BOB})
        self.assertEqual(await self.store.current_position("presence"), 2)


ReceiptsTestsSQLite, ReceiptsTestsPostgres = on_both_backends(ReceiptsTests)
PresenceTestsSQLite, PresenceTestsPostgres = on_both_backends(PresenceTests)
