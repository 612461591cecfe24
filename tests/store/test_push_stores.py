"""Push rules, notifications and pushers in the global DB, on both backends."""

from __future__ import annotations

from homeserver.store.notifications import Notification
from homeserver.store.pushers import Pusher
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"


def note(user, room, seq, pos, highlight=False, thread=None):
    return Notification(user, room, seq, f"${seq}", pos, thread, highlight,
                        ["notify", {"set_tweak": "highlight"}] if highlight else ["notify"], 7)


class PushStoreTests(StoreTests):
    async def test_rule_changes_write_account_data(self) -> None:
        """Storing rule changes also stores m.push_rules account data, atomically."""
        rules = self.store.push_rules
        self.assertIsNone(await rules.get_changes(ALICE))
        pos = await rules.set_changes(ALICE, {"custom": {}, "defaults": {}},
                                      {"global": {"override": []}})
        self.assertEqual(await rules.get_changes(ALICE), {"custom": {}, "defaults": {}})
        self.assertEqual(await self.store.account_data.get_account_data(
            ALICE, "m.push_rules"), {"global": {"override": []}})
        self.assertEqual(await self.store.current_position("account_data"), pos)
        self.assertEqual(await rules.get_many([ALICE, BOB]),
                         {ALICE: {"custom": {}, "defaults": {}}, BOB: None})

    async def test_notifications_rows(self) -> None:
        """Notifications are idempotent per user and event, read per room after a seq,
        and paged newest first across rooms."""
        n = self.store.notifications
        await n.add([note(ALICE, "!a:x", 1, 10), note(BOB, "!a:x", 1, 10),
                     note(ALICE, "!a:x", 2, 11, highlight=True, thread="$t")])
        await n.add([note(ALICE, "!a:x", 1, 10), note(ALICE, "!b:x", 1, 12)])
        rows = await n.in_room_after(ALICE, "!a:x", 0, 100)
        self.assertEqual(sorted((r.room_seq, r.highlight, r.thread_id) for r in rows),
                         [(1, False, None), (2, True, "$t")])
        self.assertEqual([r.room_seq for r in await n.in_room_after(ALICE, "!a:x", 1, 100)],
                         [2])
        page = await n.page(ALICE, None, 2, False)
        self.assertEqual([(r.room_id, r.stream_pos) for r in page],
                         [("!b:x", 12), ("!a:x", 11)])
        self.assertEqual(page[1].actions, ["notify", {"set_tweak": "highlight"}])
        self.assertEqual([r.stream_pos for r in await n.page(ALICE, 11, 5, False)], [10])
        self.assertEqual([r.stream_pos for r in await n.page(ALICE, None, 5, True)], [11])
        self.assertEqual(await n.latest_per_room(ALICE), {"!a:x": 2, "!b:x": 1})

    async def test_stored_waits_for_gathering_rows(self) -> None:
        """Rows gather for a moment before their commit; ``stored()`` has them written
        now and returns once they are readable (what GET /notifications waits for)."""
        from twisted.internet import defer

        n = self.store.notifications
        await n.stored()   # nothing pending: at once
        adds = [defer.ensureDeferred(n.add([note(ALICE, "!a:x", seq, 20 + seq)]))
                for seq in (1, 2)]
        self.assertFalse(any(d.called for d in adds))   # still gathering
        await n.stored()
        self.assertEqual([r.room_seq for r in await n.page(ALICE, None, 5, False)], [2, 1])
        await defer.gatherResults(adds)

    async def test_pushers(self) -> None:
        """Pushers are set, replaced, taken over without append, and deleted."""
        p = self.store.pushers
        pusher = Pusher(ALICE, "app", "k", "http", "A", "D", None, "en",
                        {"url": "https://x/_matrix/push/v1/notify"}, 1)
        await p.set(pusher, append=False)
        await p.set(Pusher(BOB, "app", "k", "http", "A", "D", "tag", "en", {}, 2),
                    append=True)
        self.assertEqual(len(await p.for_users([ALICE, BOB])), 2)
        await p.set(Pusher(BOB, "app", "k", "http", "A", "D", None, "fr", {}, 3),
                    append=False)
        self.assertEqual([(x.user_id, x.lang) for x in await p.for_users([ALICE, BOB])],
                         [(BOB, "fr")])
        self.assertTrue(await p.delete(BOB, "app", "k"))
        self.assertFalse(await p.delete(BOB, "app", "k"))


    async def test_progress(self) -> None:
        """Progress never moves back; announced events after it are listed in order."""
        from homeserver.rooms.actor.protocols import Announcement

        progress = self.store.push_progress
        self.assertIsNone(await progress.get("!r:x"))
        await progress.set_many({"!r:x": 5})
        await progress.set_many({"!r:x": 3})
        self.assertEqual(await progress.get("!r:x"), 5)
        positions = await self.store.announce([
            Announcement("!r:x", seq, f"${seq}", "m.room.message", None, ALICE)
            for seq in range(1, 9)])
        self.assertEqual(await progress.announced_after("!r:x", 5, 7, 10),
                         [(6, "$6", positions[5]), (7, "$7", positions[6])])
        self.assertEqual([a[0] for a in await progress.announced_after("!r:x", 0, 8, 2)],
                         [7, 8])

    async def test_forgotten_progress_is_read_again(self) -> None:
        """A forgotten room's progress leaves memory and is read from the DB when
        asked for; a room never recorded is still None, after a forget too."""
        progress = self.store.push_progress
        await progress.set_many({"!r:x": 5, "!s:x": 2})
        self.assertEqual(await progress.get("!r:x"), 5)
        progress.forget("!r:x")
        self.assertNotIn("!r:x", progress._all)
        self.assertEqual(await progress.get("!r:x"), 5)
        self.assertIsNone(await progress.get("!new:x"))
        await progress.set_many({"!r:x": 3})
        self.assertEqual(await progress.get("!r:x"), 5)

    async def test_delete_user(self) -> None:
        """Deactivation's deletes: the user's rule changes with their m.push_rules
        account data, and all their pushers; other users keep theirs."""
        rules = self.store.push_rules
        for user in (ALICE, BOB):
            await rules.set_changes(user, {"custom": {}, "defaults": {}}, {"global": {}})
            for key in ("k1", "k2"):
                await self.store.pushers.set(Pusher(user, "app", f"{user}{key}", "http",
                                                    "A", "D", None, "en", {}, 1),
                                             append=True)
        await rules.delete_user(ALICE)
        self.assertEqual(await self.store.pushers.delete_user(ALICE), 2)
        self.assertEqual(await rules.get_many([ALICE, BOB]),
                         {ALICE: None, BOB: {"custom": {}, "defaults": {}}})
        self.assertIsNone(await self.store.account_data.get_account_data(
            ALICE, "m.push_rules"))
        self.assertEqual([p.user_id for p in await self.store.pushers.for_users(
            [ALICE, BOB])], [BOB, BOB])


PushStoreTestsSQLite, PushStoreTestsPostgres = on_both_backends(PushStoreTests)
