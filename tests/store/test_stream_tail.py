"""The in-memory tail of the room stream: what it answers and when it says MISS."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.store.stream_tail import MISS, RoomStreamTail

R1, R2 = "!a:x", "!b:x"


class RoomStreamTailTests(unittest.TestCase):
    def test_everything_is_a_miss_before_the_floor_is_known(self) -> None:
        tail = RoomStreamTail()
        tail.record(R1, 5, 1, "$a")
        self.assertIs(tail.changes(R1, 4, 5), MISS)
        self.assertIs(tail.point(R1, 5), MISS)

    def test_rooms_without_entries_after_the_floor(self) -> None:
        tail = RoomStreamTail()
        tail.set_floor(10)
        self.assertIsNone(tail.changes(R1, 10, 20))
        self.assertIs(tail.changes(R1, 9, 20), MISS)   # could have entries ≤ 10
        self.assertIs(tail.point(R1, 20), MISS)        # its last entry is unknown

    def test_changes_and_points(self) -> None:
        tail = RoomStreamTail()
        tail.set_floor(10)
        for pos, seq in ((11, 4), (13, 5), (14, 6)):
            tail.record(R1, pos, seq, f"$e{seq}")
        tail.record(R2, 12, 1, "$b")
        c = tail.changes(R1, 11, 14)
        self.assertEqual((c.last_pos, c.min_room_seq, c.max_room_seq, c.count),
                         (14, 5, 6, 2))
        self.assertIsNone(tail.changes(R1, 14, 20))
        self.assertIs(tail.changes(R1, 9, 20), MISS)   # before the room's own floor
        self.assertEqual(tail.point(R1, 12), (11, 4, "$e4"))
        self.assertEqual(tail.point(R1, 99), (14, 6, "$e6"))
        self.assertIs(tail.point(R1, 10), MISS)
        tail.record(R1, 14, 6, "$e6")  # a replay changes nothing
        self.assertEqual(tail.changes(R1, 10, 20).count, 3)

    def test_keeps_the_last_entries_only(self) -> None:
        tail = RoomStreamTail(keep=2)
        tail.set_floor(0)
        for pos in range(1, 6):
            tail.record(R1, pos, pos, f"${pos}")
        self.assertEqual(tail.changes(R1, 3, 5).count, 2)
        self.assertIs(tail.changes(R1, 2, 5), MISS)
        self.assertEqual(tail.point(R1, 4), (4, 4, "$4"))
        self.assertIs(tail.point(R1, 3), MISS)

    def test_unsure_rooms_always_miss(self) -> None:
        tail = RoomStreamTail()
        tail.set_floor(0)
        tail.record(R1, 1, 1, "$1")
        tail.mark_unsure([R1])
        tail.record(R1, 2, 2, "$2")
        self.assertIs(tail.changes(R1, 0, 2), MISS)
        self.assertIs(tail.point(R1, 2), MISS)

    def test_learned_points(self) -> None:
        """A database answer above the floor for a room with nothing recorded is the
        room's last entry of all."""
        tail = RoomStreamTail()
        tail.set_floor(10)
        tail.learn_point(R1, 9, (5, 2, "$old"))     # below the floor: not learned
        self.assertIs(tail.point(R1, 10), MISS)
        tail.learn_point(R1, 10, (5, 2, "$old"))
        self.assertEqual(tail.point(R1, 10), (5, 2, "$old"))
        self.assertIsNone(tail.changes(R1, 10, 30))
        tail.record(R1, 12, 3, "$new")
        self.assertEqual(tail.point(R1, 11), (5, 2, "$old"))
        self.assertEqual(tail.changes(R1, 10, 30).count, 1)

    def test_first_entry_after_the_floor(self) -> None:
        """A room first recorded after the floor had nothing between the two."""
        tail = RoomStreamTail()
        tail.set_floor(10)
        tail.record(R1, 15, 1, "$1")
        self.assertEqual(tail.changes(R1, 10, 15).count, 1)
        self.assertIs(tail.changes(R1, 9, 15), MISS)

    def test_forgotten_room_is_read_from_the_database(self) -> None:
        """A room let go (it hibernated) is held no more: a since older than its newest
        entry misses; rooms held are untouched; a later entry starts it afresh."""
        tail = RoomStreamTail()
        tail.set_floor(10)
        tail.record(R1, 11, 1, "$a1")
        tail.record(R2, 12, 1, "$b1")
        tail.forget(R1)
        tail.forget("!never:x")                      # not held: nothing to do
        self.assertIs(tail.point(R1, 20), MISS)
        self.assertIs(tail.changes(R1, 10, 20), MISS)
        self.assertIsNone(tail.changes(R1, 11, 20))  # quiet above its newest entry
        self.assertEqual(tail.point(R2, 20), (12, 1, "$b1"))
        tail.learn_point(R1, 20, (11, 1, "$a1"))      # a sync read it: held again
        self.assertEqual(tail.point(R1, 20), (11, 1, "$a1"))
        tail.record(R1, 21, 2, "$a2")
        self.assertEqual(tail.changes(R1, 11, 21).count, 1)

    def test_dropped_rooms_raise_the_floor_of_absent_rooms(self) -> None:
        """Beyond max_rooms the least recently active room is dropped; a room not held
        is then only known to be quiet above the dropped room's newest entry."""
        tail = RoomStreamTail(max_rooms=2)
        tail.set_floor(10)
        tail.record(R1, 11, 1, "$a1")
        tail.record(R2, 12, 1, "$b1")
        tail.record(R1, 13, 2, "$a2")        # R1 now the most recent
        tail.record("!c:x", 14, 1, "$c1")    # drops R2 (newest entry 12)
        self.assertIs(tail.changes(R2, 11, 20), MISS)   # R2 had an entry at 12
        self.assertIsNone(tail.changes(R2, 12, 20))
        self.assertIs(tail.point(R2, 20), MISS)
        self.assertIs(tail.changes("!quiet:x", 11, 20), MISS)
        self.assertIsNone(tail.changes("!quiet:x", 12, 20))
        self.assertEqual(tail.changes(R1, 10, 20).count, 2)
        tail.learn_point(R2, 11, (12, 1, "$b1"))      # below the raised floor: ignored
        self.assertIs(tail.point(R2, 20), MISS)
        tail.learn_point(R2, 14, (12, 1, "$b1"))
        self.assertEqual(tail.point(R2, 20), (12, 1, "$b1"))
