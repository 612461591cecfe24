"""The room stream (announce, positions, changes) and the memberships index."""

from __future__ import annotations

from twisted.internet import defer

from homeserver.rooms.actor.protocols import Announcement
from tests.store.backends import StoreTests, on_both_backends

R1, R2, R3 = "!one:example.org", "!two:example.org", "!three:example.org"
ALICE, BOB, CAROL = "@alice:example.org", "@bob:example.org", "@carol:example.org"


def msg(room_id: str, seq: int, sender: str = ALICE) -> Announcement:
    return Announcement(room_id=room_id, room_seq=seq, event_id=f"$e{seq}{room_id[1:4]}",
                        type="m.room.message", state_key=None, sender=sender)


def member(room_id: str, seq: int, user_id: str, membership: str,
           sender: str | None = None) -> Announcement:
    return Announcement(room_id=room_id, room_seq=seq,
                        event_id=f"$m{seq}{room_id[1:4]}{user_id[1:4]}",
                        type="m.room.member", state_key=user_id,
                        sender=sender or user_id, membership=membership)


class RoomStreamTests(StoreTests):
    async def test_positions_are_increasing(self) -> None:
        """Positions grow in announcement order, across calls and rooms."""
        first = await self.store.announce([msg(R1, 1), msg(R1, 2), msg(R2, 1)])
        second = await self.store.announce([msg(R2, 2), msg(R1, 3)])
        everything = first + second
        self.assertEqual(everything, sorted(everything))
        self.assertEqual(len(set(everything)), 5)
        self.assertEqual(await self.store.streams.current_room_stream_pos(),
                         everything[-1])
        self.assertEqual(await self.store.current_position("room"), everything[-1])

    async def test_announce_is_idempotent(self) -> None:
        """Re-announcing a (room_id, room_seq) returns its position and adds nothing."""
        first = await self.store.announce([msg(R1, 1), msg(R1, 2)])
        current = await self.store.current_position("room")
        again = await self.store.announce([msg(R1, 1), msg(R1, 2)])
        self.assertEqual(again, first)
        self.assertEqual(await self.store.current_position("room"), current)
        mixed = await self.store.announce([msg(R1, 2), msg(R1, 3)])
        self.assertEqual(mixed[0], first[1])
        self.assertGreater(mixed[1], current)
        entries = await self.store.streams.get_entries(0)
        self.assertEqual([(e.room_id, e.room_seq) for e in entries],
                         [(R1, 1), (R1, 2), (R1, 3)])

    async def test_recent_entries_match_the_database(self) -> None:
        """The entries held in memory for the sender's reader are the database's,
        replays and concurrent announcements included."""
        await self.store.announce([msg(R1, 1), msg(R2, 1)])
        await defer.gatherResults([
            defer.ensureDeferred(self.store.announce([msg(R1, 2), msg(R1, 1)])),
            defer.ensureDeferred(self.store.announce([msg(R2, 2), msg(R3, 1)]))])
        from_db = await self.store.streams.get_entries(0)
        self.assertEqual(len(from_db), 5)
        self.assertEqual(self.store.streams.recent.read(0, None, 100), from_db)
        self.assertEqual(self.store.streams.recent.read(2, 4, 100), from_db[2:4])

    async def test_duplicate_within_one_batch(self) -> None:
        """The same seq twice in one batch gets one position."""
        positions = await self.store.announce([msg(R1, 1), msg(R1, 1)])
        self.assertEqual(positions[0], positions[1])
        self.assertEqual(len(await self.store.streams.get_entries(0)), 1)

    async def test_empty_announce(self) -> None:
        """Announcing nothing returns nothing and moves no position."""
        self.assertEqual(await self.store.announce([]), [])
        self.assertEqual(await self.store.current_position("room"), 0)

    async def test_concurrent_announces_get_distinct_positions(self) -> None:
        """Announcements racing from many rooms get distinct, gap-free positions."""
        ds = [defer.ensureDeferred(self.store.announce([msg(f"!r{i}:x", 1),
                                                        msg(f"!r{i}:x", 2)]))
              for i in range(12)]
        results = await defer.gatherResults(ds)
        flat = [p for r in results for p in r]
        self.assertEqual(sorted(flat), list(range(1, 25)))
        for r in results:
            self.assertLess(r[0], r[1])
        self.assertEqual(await self.store.current_position("room"), 24)

    async def test_entries_and_last_seq(self) -> None:
        """Entries are read back in order, filtered by room, and bounded."""
        p = await self.store.announce([msg(R1, 1), msg(R2, 1), msg(R1, 2)])
        entries = await self.store.streams.get_entries(p[0], room_ids=[R1])
        self.assertEqual([(e.pos, e.room_seq, e.type) for e in entries],
                         [(p[2], 2, "m.room.message")])
        self.assertEqual(len(await self.store.streams.get_entries(0, limit=2)), 2)
        self.assertEqual(await self.store.streams.get_entries(0, room_ids=[]), [])
        self.assertEqual(await self.store.streams.last_announced_seq(R1), 2)
        self.assertIsNone(await self.store.streams.last_announced_seq(R3))

    async def test_rooms_changed_since(self) -> None:
        """Changed rooms come with their last position and seq range."""
        p = await self.store.announce([msg(R1, 1), msg(R2, 1), msg(R1, 2), msg(R1, 3)])
        changes = await self.store.streams.rooms_changed_since(p[0])
        self.assertEqual([(c.room_id, c.last_pos, c.min_room_seq, c.max_room_seq,
                           c.count) for c in changes.rooms],
                         [(R2, p[1], 1, 1, 1), (R1, p[3], 2, 3, 2)])
        self.assertEqual((changes.upto, changes.limited), (p[3], False))
        only = await self.store.streams.rooms_changed_since(0, room_ids=[R2])
        self.assertEqual([c.room_id for c in only.rooms], [R2])
        none = await self.store.streams.rooms_changed_since(p[3])
        self.assertEqual((none.rooms, none.upto), ([], p[3]))

    async def test_rooms_changed_since_limited(self) -> None:
        """A limit cuts the range at an entry; resuming from upto misses nothing."""
        p = await self.store.announce([msg(R1, 1), msg(R2, 1), msg(R3, 1), msg(R1, 2)])
        page = await self.store.streams.rooms_changed_since(0, limit=2)
        self.assertEqual((page.upto, page.limited), (p[1], True))
        self.assertEqual({c.room_id for c in page.rooms}, {R1, R2})
        rest = await self.store.streams.rooms_changed_since(page.upto, limit=2)
        self.assertEqual((rest.upto, rest.limited), (p[3], False))
        self.assertEqual([(c.room_id, c.min_room_seq) for c in rest.rooms],
                         [(R3, 1), (R1, 2)])


class MembershipIndexTests(StoreTests):
    async def test_join_leave_invite_ban(self) -> None:
        """Each membership announcement updates the index in the same transaction."""
        streams = self.store.streams
        pos = await self.store.announce([member(R1, 1, ALICE, "join"),
                                         member(R1, 2, BOB, "invite", sender=ALICE)])
        self.assertEqual([m.room_id for m in await streams.get_rooms_for_user(ALICE)],
                         [R1])
        self.assertEqual(await streams.get_rooms_for_user(BOB), [])
        invited = await streams.get_rooms_for_user(BOB, ("invite",))
        self.assertEqual((invited[0].room_id, invited[0].stream_pos,
                          invited[0].event_id), (R1, pos[1], f"$m2one{BOB[1:4]}"))
        await self.store.announce([member(R1, 3, BOB, "join")])
        self.assertEqual(await streams.get_room_members(R1), {ALICE: "join", BOB: "join"})
        self.assertEqual(await streams.joined_member_count(R1), 2)
        await self.store.announce([member(R1, 4, ALICE, "leave"),
                                   member(R1, 5, BOB, "ban", sender=CAROL)])
        self.assertEqual(await streams.joined_member_count(R1), 0)
        self.assertEqual(await streams.get_room_members(R1, ("leave", "ban")),
                         {ALICE: "leave", BOB: "ban"})
        self.assertEqual((await streams.get_membership(BOB, R1)).membership, "ban")
        self.assertIsNone(await streams.get_membership(CAROL, R1))

    async def test_non_membership_events_leave_index_alone(self) -> None:
        """Messages and member events without a membership do not touch the index."""
        await self.store.announce([msg(R1, 1)])
        no_membership = member(R1, 2, ALICE, "join")
        await self.store.announce([Announcement(**{**no_membership.__dict__,
                                                   "membership": None})])
        self.assertEqual(await self.store.streams.get_room_members(R1), {})

    async def test_member_changes_of_a_resolution_are_indexed(self) -> None:
        """Memberships an event changed by state resolution (``member_changes``) are
        indexed at its position, after its own, and the users' cached rooms dropped."""
        streams = self.store.streams
        await self.store.announce([member(R1, 1, ALICE, "join"), member(R1, 2, BOB, "join")])
        self.assertEqual(len(await streams.get_rooms_for_user(BOB)), 1)   # cached
        [pos] = await self.store.announce([Announcement(**{
            **msg(R1, 3, CAROL).__dict__,
            "member_changes": ((BOB, "leave", "$bobleft"), (CAROL, "join", "$cj"))})])
        self.assertEqual(await streams.get_rooms_for_user(BOB), [])
        self.assertEqual(await streams.get_room_members(R1), {ALICE: "join", CAROL: "join"})
        left = await streams.get_membership(BOB, R1)
        self.assertEqual((left.membership, left.event_id, left.stream_pos),
                         ("leave", "$bobleft", pos))
        self.assertEqual(streams.member_changes[R1], pos)

    async def test_seed_memberships_adds_missing_keeps_announced(self) -> None:
        """Seeded members (a federated join's state) are indexed at the current
        position and their users' room caches dropped; an announced row is kept."""
        streams = self.store.streams
        self.assertEqual(await streams.get_rooms_for_user(CAROL), [])  # cached empty
        [pos] = await self.store.announce([member(R1, 1, ALICE, "join")])
        added = await self.store.seed_memberships(R1, [
            (ALICE, "leave", "$old"), (BOB, "join", "$b"), (CAROL, "invite", "$c")])
        self.assertEqual(added, 2)
        self.assertEqual(await streams.get_room_members(R1, ("join", "invite")),
                         {ALICE: "join", BOB: "join", CAROL: "invite"})
        self.assertEqual((await streams.get_membership(ALICE, R1)).event_id,
                         f"$m1one{ALICE[1:4]}")
        self.assertEqual((await streams.get_membership(BOB, R1)).stream_pos, pos)
        self.assertEqual([m.room_id for m in
                          await streams.get_rooms_for_user(CAROL, ("invite",))], [R1])
        self.assertEqual(await self.store.seed_memberships(R1, []), 0)

    async def test_replay_does_not_rewind_membership(self) -> None:
        """Re-announcing an old join after a leave keeps the leave."""
        await self.store.announce([member(R1, 1, ALICE, "join"),
                                   member(R1, 2, ALICE, "leave")])
        await self.store.announce([member(R1, 1, ALICE, "join")])
        self.assertEqual((await self.store.streams.get_membership(ALICE, R1)).membership,
                         "leave")

    async def test_forget(self) -> None:
        """Only a left or banned room can be forgotten; rejoining un-forgets it."""
        streams = self.store.streams
        await self.store.announce([member(R1, 1, ALICE, "join")])
        self.assertFalse(await streams.forget(ALICE, R1))
        await self.store.announce([member(R1, 2, ALICE, "leave")])
        self.assertTrue(await streams.forget(ALICE, R1))
        self.assertEqual(await streams.get_rooms_for_user(ALICE, ("leave",)), [])
        left = await streams.get_rooms_for_user(ALICE, ("leave",), include_forgotten=True)
        self.assertTrue(left[0].forgotten)
        await self.store.announce([member(R1, 3, ALICE, "join")])
        rooms = await streams.get_rooms_for_user(ALICE)
        self.assertEqual([(m.room_id, m.forgotten) for m in rooms], [(R1, False)])

    async def test_users_sharing_a_room(self) -> None:
        """Users sharing a joined room are found; invitees and other rooms are not."""
        await self.store.announce([member(R1, 1, ALICE, "join"), member(R1, 2, BOB, "join"),
                                   member(R1, 3, CAROL, "invite", sender=ALICE),
                                   member(R2, 1, CAROL, "join")])
        self.assertEqual(await self.store.streams.users_sharing_a_room_with(ALICE),
                         {ALICE, BOB})
        self.assertEqual(await self.store.streams.users_sharing_a_room_with(CAROL),
                         {CAROL})


RoomStreamTestsSQLite, RoomStreamTestsPostgres = on_both_backends(RoomStreamTests)
MembershipIndexTestsSQLite, MembershipIndexTestsPostgres = \
    on_both_backends(MembershipIndexTests)
