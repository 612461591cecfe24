"""Rooms index, aliases and the public room directory."""

from __future__ import annotations

from homeserver.store.rooms import InvalidPaginationToken
from tests.store.backends import StoreTests, on_both_backends

ALICE = "@alice:example.org"


class RoomsTests(StoreTests):
    async def test_register_room_idempotent(self) -> None:
        """Registering a room twice keeps the first entry."""
        rooms = self.store.rooms
        self.assertTrue(await rooms.register_room("!r:x", "12", ALICE))
        self.assertFalse(await rooms.register_room("!r:x", "10", "@other:x", True))
        await self.store.register_room("!r:x", "11", ALICE)    # RoomStreamWriter
        info = await rooms.get_room("!r:x")
        self.assertEqual((info.room_version, info.creator, info.is_public),
                         ("12", ALICE, False))
        self.assertIsNone(await rooms.get_room("!nope:x"))
        self.assertTrue(await rooms.set_room_public("!r:x", True))
        self.assertTrue((await rooms.get_room("!r:x")).is_public)
        self.assertFalse(await rooms.set_room_public("!nope:x", True))

    async def test_aliases(self) -> None:
        """Aliases map to rooms, are unique, listed per room and deletable."""
        rooms = self.store.rooms
        self.assertTrue(await rooms.create_alias("#a:x", "!r:x", ["x", "y"], ALICE))
        self.assertFalse(await rooms.create_alias("#a:x", "!s:x", ["x"], ALICE))
        await rooms.create_alias("#b:x", "!r:x", ["x"], None)
        alias = await rooms.get_alias("#a:x")
        self.assertEqual((alias.room_id, alias.servers, alias.creator),
                         ("!r:x", ["x", "y"], ALICE))
        self.assertEqual(await rooms.get_aliases_for_room("!r:x"), ["#a:x", "#b:x"])
        self.assertTrue(await rooms.delete_alias("#a:x"))
        self.assertFalse(await rooms.delete_alias("#a:x"))
        self.assertIsNone(await rooms.get_alias("#a:x"))

    async def test_room_stats(self) -> None:
        """The room layer's summary fields are stored and partially updated."""
        rooms = self.store.rooms
        await rooms.register_room("!r:x", "12", ALICE)
        await rooms.update_room_stats("!r:x", name="Room", joined_members=3,
                                      guest_access="can_join")
        await rooms.update_room_stats("!r:x", topic="Hi")
        summary = await rooms.get_room_summary("!r:x")
        self.assertEqual(summary.as_chunk(), {
            "room_id": "!r:x", "name": "Room", "topic": "Hi", "num_joined_members": 3,
            "guest_can_join": True, "world_readable": False})
        with self.assertRaises(TypeError):
            await rooms.update_room_stats("!r:x", bogus=1)

    async def _publish(self, n: int) -> list[str]:
        rooms = self.store.rooms
        ids = []
        for i in range(n):
            room_id = f"!room{i:02d}:x"
            await rooms.register_room(room_id, "12", ALICE, is_public=True)
            await rooms.update_room_stats(room_id, name=f"Room {i}",
                                          joined_members=10 - i // 2)
            ids.append(room_id)
        await rooms.register_room("!private:x", "12", ALICE)
        await rooms.update_room_stats("!private:x", name="Room secret")
        return ids

    async def test_directory_paging(self) -> None:
        """Pages go biggest room first, forwards and back, without overlap."""
        ids = await self._publish(7)
        rooms = self.store.rooms
        page1 = await rooms.list_public_rooms(limit=3)
        self.assertEqual([r.room_id for r in page1.chunk], ids[:3])
        self.assertEqual(page1.total_room_count_estimate, 7)
        self.assertIsNone(page1.prev_batch)
        page2 = await rooms.list_public_rooms(limit=3, since=page1.next_batch)
        self.assertEqual([r.room_id for r in page2.chunk], ids[3:6])
        page3 = await rooms.list_public_rooms(limit=3, since=page2.next_batch)
        self.assertEqual([r.room_id for r in page3.chunk], ids[6:])
        self.assertIsNone(page3.next_batch)
        back = await rooms.list_public_rooms(limit=3, since=page3.prev_batch)
        self.assertEqual([r.room_id for r in back.chunk], ids[3:6])
        back2 = await rooms.list_public_rooms(limit=3, since=back.prev_batch)
        self.assertEqual([r.room_id for r in back2.chunk], ids[:3])
        self.assertIsNone(back2.prev_batch)
        everything = await rooms.list_public_rooms()
        self.assertEqual([r.room_id for r in everything.chunk], ids)

    async def test_directory_filter(self) -> None:
        """The search term matches name, topic or alias, case-insensitively."""
        await self._publish(3)
        rooms = self.store.rooms
        await rooms.update_room_stats("!room02:x", topic="All about CATS",
                                      canonical_alias="#pets:x", room_type="m.space")
        found = await rooms.list_public_rooms(search_term="cats")
        self.assertEqual([r.room_id for r in found.chunk], ["!room02:x"])
        self.assertEqual(found.total_room_count_estimate, 1)
        found = await rooms.list_public_rooms(search_term="PETS")
        self.assertEqual([r.room_id for r in found.chunk], ["!room02:x"])
        found = await rooms.list_public_rooms(search_term="room 1")
        self.assertEqual([r.room_id for r in found.chunk], ["!room01:x"])
        self.assertEqual((await rooms.list_public_rooms(search_term="%")).chunk, [])
        spaces = await rooms.list_public_rooms(room_types=["m.space"])
        self.assertEqual([r.room_id for r in spaces.chunk], ["!room02:x"])
        plain = await rooms.list_public_rooms(room_types=[None])
        self.assertEqual(len(plain.chunk), 2)

    async def test_bad_since_token(self) -> None:
        """A made-up pagination token is rejected."""
        with self.assertRaises(InvalidPaginationToken):
            await self.store.rooms.list_public_rooms(since="garbage")


RoomsTestsSQLite, RoomsTestsPostgres = on_both_backends(RoomsTests)
