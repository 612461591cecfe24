"""History visibility (spec: Client-Server API, "Room History Visibility"): the pure
rules. HistoryVisibility over a real room is tested in
tests/rooms/features/test_visibility.py."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version
from homeserver.rooms.rules.visibility import (
    HISTORY_VISIBILITY_KEY, allowed, event_visible, history_visibility)
from tests.fakes.rooms import ALICE

BOB = "@bob:test"
V12 = get_room_version("12")


def state_event(event_type: str, state_key: str, content: dict, n: int = 1) -> PDU:
    return PDU(V12, {"type": event_type, "state_key": state_key, "sender": ALICE,
                     "content": content, "room_id": "!r", "depth": n},
               f"${event_type}{state_key}{n}")


def state(visibility: str | None = None, bob: str | None = None) -> dict:
    found = {}
    if visibility is not None:
        found[HISTORY_VISIBILITY_KEY] = state_event(
            "m.room.history_visibility", "", {"history_visibility": visibility})
    if bob is not None:
        found[("m.room.member", BOB)] = state_event("m.room.member", BOB,
                                                    {"membership": bob})
    return found


MESSAGE = PDU(V12, {"type": "m.room.message", "sender": ALICE, "content": {},
                    "room_id": "!r", "depth": 5}, "$msg")


class PureRuleTests(unittest.TestCase):
    def test_rules_table(self) -> None:
        """Rules 1-5 for every visibility and membership."""
        cases = [
            # visibility, membership at the event, joined later, allowed
            ("world_readable", None, False, True),
            ("joined", "join", False, True),
            ("shared", None, True, True),
            ("shared", None, False, False),
            ("shared", "invite", False, False),
            ("invited", "invite", False, True),
            ("invited", None, True, False),
            ("joined", "invite", True, False),
            ("joined", "leave", True, False),
            ("joined", None, True, False),
        ]
        for visibility, membership, later, expected in cases:
            self.assertEqual(allowed(visibility, membership, later), expected,
                             (visibility, membership, later))

    def test_missing_or_unknown_visibility_is_shared(self) -> None:
        """No history_visibility event, or a value not understood, means shared."""
        self.assertEqual(history_visibility({}), "shared")
        self.assertEqual(history_visibility(state("everyone")), "shared")
        self.assertEqual(history_visibility(state("joined")), "joined")

    def test_visibility_change_visible_either_side(self) -> None:
        """A history_visibility event is visible if the setting before or after it
        allows (world_readable → joined is visible to a stranger)."""
        change = state_event("m.room.history_visibility", "", {"history_visibility": "joined"})
        self.assertTrue(event_visible(change, BOB, state("world_readable"),
                                      state("joined"), False))
        to_public = state_event("m.room.history_visibility", "",
                                {"history_visibility": "world_readable"})
        self.assertTrue(event_visible(to_public, BOB, state("joined"),
                                      state("world_readable"), False))
        self.assertFalse(event_visible(MESSAGE, BOB, state("joined"),
                                       state("world_readable"), False))

    def test_own_membership_visible_either_side(self) -> None:
        """The user's own member events count the membership after them too; other
        users' do not."""
        join = state_event("m.room.member", BOB, {"membership": "join"})
        self.assertTrue(event_visible(join, BOB, state("joined"),
                                      state("joined", bob="join"), False))
        self.assertFalse(event_visible(join, "@carol:test", state("joined"),
                                       state("joined", bob="join"), False))
        leave = state_event("m.room.member", BOB, {"membership": "leave"})
        self.assertTrue(event_visible(leave, BOB, state("joined", bob="join"),
                                      state("joined", bob="leave"), False))

    def test_forgotten_sees_only_world_readable(self) -> None:
        """After /forget only world-readable history stays visible."""
        self.assertFalse(event_visible(MESSAGE, BOB, state("shared", bob="join"), None,
                                       True, forgotten=True))
        self.assertTrue(event_visible(MESSAGE, BOB, state("world_readable"), None, False,
                                      forgotten=True))
