"""Account data (global and per room) and room tags."""

from __future__ import annotations

from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"


class AccountDataTests(StoreTests):
    async def test_global_and_room_data(self) -> None:
        """Global and per-room items are stored, replaced and kept apart."""
        ad = self.store.account_data
        await ad.set_account_data(ALICE, "m.direct", {"a": 1})
        await ad.set_account_data(ALICE, "m.direct", {"a": 2})
        await ad.set_account_data(ALICE, "m.fully_read", {"event_id": "$e"}, "!r:x")
        self.assertEqual(await ad.get_account_data(ALICE, "m.direct"), {"a": 2})
        self.assertIsNone(await ad.get_account_data(ALICE, "m.direct", "!r:x"))
        self.assertEqual(await ad.get_account_data(ALICE, "m.fully_read", "!r:x"),
                         {"event_id": "$e"})
        snap = await ad.get_all_account_data(ALICE)
        self.assertEqual(snap.global_data, {"m.direct": {"a": 2}})
        self.assertEqual(snap.rooms, {"!r:x": {"m.fully_read": {"event_id": "$e"}}})
        self.assertEqual((await ad.get_all_account_data(BOB)).global_data, {})

    async def test_changes_since(self) -> None:
        """Only items written after a position come back, and positions increase."""
        ad = self.store.account_data
        p1 = await ad.set_account_data(ALICE, "a", {})
        p2 = await ad.set_account_data(ALICE, "b", {})
        p3 = await ad.set_account_data(BOB, "c", {})
        self.assertLess(p1, p2)
        self.assertLess(p2, p3)
        self.assertEqual(await self.store.current_position("account_data"), p3)
        since = await ad.get_all_account_data(ALICE, since=p1)
        self.assertEqual(set(since.global_data), {"b"})
        self.assertEqual(await ad.users_with_account_data_changes(p2), {BOB})
        self.assertEqual(await ad.users_with_account_data_changes(0), {ALICE, BOB})

    async def test_tags(self) -> None:
        """Tags are added, replaced, removed and reported per changed room."""
        ad = self.store.account_data
        p1 = await ad.add_tag(ALICE, "!r:x", "m.favourite", {"order": 0.5})
        await ad.add_tag(ALICE, "!r:x", "u.work", {})
        await ad.add_tag(ALICE, "!r:x", "m.favourite", {"order": 0.1})
        p2 = await ad.add_tag(ALICE, "!s:x", "u.work", {})
        self.assertEqual(await ad.get_tags_for_room(ALICE, "!r:x"),
                         {"m.favourite": {"order": 0.1}, "u.work": {}})
        self.assertEqual(set(await ad.get_tags(ALICE)), {"!r:x", "!s:x"})
        self.assertEqual(await ad.get_tags(ALICE, since=p2 - 1), {"!s:x": {"u.work": {}}})
        p3 = await ad.remove_tag(ALICE, "!s:x", "u.work")
        self.assertGreater(p3, p2)
        self.assertEqual(await ad.get_tags(ALICE, since=p2), {"!s:x": {}})
        self.assertGreater(p2, p1)
        self.assertEqual(await ad.users_with_account_data_changes(p2), {ALICE})


AccountDataTestsSQLite, AccountDataTestsPostgres = on_both_backends(AccountDataTests)
