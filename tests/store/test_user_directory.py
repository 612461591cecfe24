"""User directory search, limited to users the searcher may see."""

from __future__ import annotations

from homeserver.rooms.actor.protocols import Announcement
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB, CAROL, DAVE = ("@alice:x", "@bob:x", "@carol:x", "@dave:x")


def _join(room_id: str, seq: int, user_id: str) -> Announcement:
    return Announcement(room_id, seq, f"${seq}{room_id}{user_id}", "m.room.member",
                        user_id, user_id, "join")


class UserDirectoryTests(StoreTests):
    async def setUp(self) -> None:
        super().setUp()
        ud = self.store.user_directory
        await ud.update_user(ALICE, "Alice Liddell", None)
        await ud.update_user(BOB, "Bob Builder", "mxc://x/bob")
        await ud.update_user(CAROL, "Carol Alison", None)
        await ud.update_user(DAVE, "Dave", None)
        # alice and bob share a private room; carol is in a public room
        await self.store.register_room("!priv:x", "12", ALICE)
        await self.store.register_room("!pub:x", "12", CAROL)
        await self.store.rooms.update_room_stats("!pub:x", join_rule="public")
        await self.store.announce([_join("!priv:x", 1, ALICE), _join("!priv:x", 2, BOB),
                                   _join("!pub:x", 1, CAROL)])

    async def test_visibility(self) -> None:
        """Searchers find room-mates and public-room members, not strangers."""
        ud = self.store.user_directory
        found, limited = await ud.search(ALICE, "b")
        self.assertEqual([u.user_id for u in found], [BOB])
        self.assertFalse(limited)
        found, _ = await ud.search(DAVE, "bob")
        self.assertEqual(found, [])
        found, _ = await ud.search(DAVE, "carol")
        self.assertEqual([u.user_id for u in found], [CAROL])
        found, _ = await ud.search(DAVE, "dave", search_all_users=True)
        self.assertEqual([(u.user_id, u.display_name) for u in found], [(DAVE, "Dave")])

    async def test_matching_and_ranking(self) -> None:
        """Every word must match; prefix matches rank before substring matches."""
        ud = self.store.user_directory
        found, _ = await ud.search(ALICE, "ali")
        self.assertEqual([u.user_id for u in found], [ALICE, CAROL])
        found, _ = await ud.search(ALICE, "ALISON carol")
        self.assertEqual([u.user_id for u in found], [CAROL])
        found, _ = await ud.search(ALICE, "@bob")
        self.assertEqual([(u.user_id, u.avatar_url) for u in found],
                         [(BOB, "mxc://x/bob")])
        self.assertEqual(await ud.search(ALICE, "   "), ([], False))
        self.assertEqual(await ud.search(ALICE, "%"), ([], False))

    async def test_limit_and_removal(self) -> None:
        """Results are limited with a flag; removed users disappear."""
        ud = self.store.user_directory
        found, limited = await ud.search(ALICE, "x", limit=1, search_all_users=True)
        self.assertEqual((len(found), limited), (1, True))
        self.assertTrue(await ud.remove_user(BOB))
        self.assertFalse(await ud.remove_user(BOB))
        self.assertEqual(await ud.search(ALICE, "bob"), ([], False))

    async def test_leaving_hides_user(self) -> None:
        """When the shared room is left the user is no longer found."""
        await self.store.announce([Announcement("!priv:x", 3, "$l", "m.room.member",
                                                BOB, BOB, "leave")])
        self.assertEqual(await self.store.user_directory.search(ALICE, "bob"),
                         ([], False))


UserDirectoryTestsSQLite, UserDirectoryTestsPostgres = on_both_backends(UserDirectoryTests)
