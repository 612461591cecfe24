"""remote_memberships: invites (and rejections) for rooms this server does not hold,
announced on the room stream with ``room_seq = -id``."""

from __future__ import annotations

from homeserver.rooms.actor.protocols import Announcement
from tests.store.backends import StoreTests, on_both_backends

BOB = "@bob:example.org"
ROOM = "!abc"
STRIPPED = [{"type": "m.room.name", "state_key": "", "sender": "@a:remote",
             "content": {"name": "hi"}}]


class RemoteMembershipsTests(StoreTests):
    async def test_record_and_read(self) -> None:
        """Rows come back by (user, room) latest-first and by event ID with their
        stripped state; an event of another room is not answered."""
        rm = self.store.remote_memberships
        first = await rm.record(BOB, ROOM, "invite", "$i", "12", {"type": "m.room.member"},
                                STRIPPED)
        second = await rm.record(BOB, ROOM, "leave", "$l", "12", {"x": 1}, [])
        self.assertLess(first, second)
        latest = await rm.latest(BOB, ROOM)
        self.assertEqual((latest.membership, latest.event_id, latest.event),
                         ("leave", "$l", {"x": 1}))
        self.assertEqual(await rm.stripped_state(ROOM, "$i"), STRIPPED)
        self.assertIsNone(await rm.stripped_state("!other", "$i"))
        self.assertIsNone(await rm.latest(BOB, "!other"))

    async def test_announced_invite_reaches_the_memberships_index(self) -> None:
        """Announced with a negative room_seq, the invite is the user's membership of
        the room (what /sync reads), and the later join of the real room replaces it."""
        rm = self.store.remote_memberships
        row = await rm.record(BOB, ROOM, "invite", "$i", "12", {}, STRIPPED)
        [pos] = await self.store.announce([Announcement(
            ROOM, -row, "$i", "m.room.member", BOB, "@a:remote", "invite")])
        found = await self.store.streams.get_membership(BOB, ROOM)
        self.assertEqual((found.membership, found.event_id, found.stream_pos),
                         ("invite", "$i", pos))
        await self.store.announce([Announcement(ROOM, 1, "$j", "m.room.member", BOB, BOB,
                                                "join")])
        found = await self.store.streams.get_membership(BOB, ROOM)
        self.assertEqual((found.membership, found.event_id), ("join", "$j"))


RemoteMembershipsTestsSQLite, RemoteMembershipsTestsPostgres = \
    on_both_backends(RemoteMembershipsTests)
