"""History visibility applied to a room (spec: Client-Server API, "Room History
Visibility"): HistoryVisibility over a real room actor on a fake clock."""

from __future__ import annotations

import dataclasses

from twisted.trial import unittest

from homeserver.errors import Forbidden
from homeserver.rooms.features.visibility import HistoryVisibility
from tests.fakes.rooms import ALICE, RoomHarness

BOB = "@bob:test"


@dataclasses.dataclass
class _Membership:
    forgotten: bool


class FakeMemberships:
    """The memberships index, as far as visibility needs it."""

    def __init__(self) -> None:
        self.forgotten: set[tuple[str, str]] = set()

    async def get_membership(self, user_id: str, room_id: str) -> _Membership:
        return _Membership((user_id, room_id) in self.forgotten)


class RoomVisibilityTests(RoomHarness, unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.memberships = FakeMemberships()
        self.visibility = HistoryVisibility(self.memberships)

    def room(self, visibility: str) -> tuple:
        """A public room: a message before bob joins, one while joined, one after he
        left; returns (actor, [before, during, after])."""
        room_id, _ = self.create_room(body={"preset": "public_chat", "initial_state": [
            {"type": "m.room.history_visibility",
             "content": {"history_visibility": visibility}}]})
        actor = self.drive(self.registry.get(room_id))

        def send(partial):
            return self.drive(actor.create_event(partial))

        def member(membership):
            return send({"type": "m.room.member", "sender": BOB, "state_key": BOB,
                         "content": {"membership": membership}})

        before = send(self.message("before"))
        member("join")
        during = send(self.message("during"))
        member("leave")
        after = send(self.message("after"))
        return actor, [before, during, after]

    def visible(self, actor, user_id: str, events) -> list:
        kept = self.drive(self.visibility.filter_events(actor, user_id, events))
        return [e.content["body"] for e in kept]

    def test_shared_joined_and_world_readable(self) -> None:
        """Bob, who joined and left, sees: shared → up to leaving; joined → only while
        joined; world_readable → everything."""
        for visibility, expected in (("shared", ["before", "during"]),
                                     ("joined", ["during"]),
                                     ("world_readable", ["before", "during", "after"])):
            actor, events = self.room(visibility)
            self.assertEqual(self.visible(actor, BOB, events), expected, visibility)

    def test_strangers(self) -> None:
        """A user who never joined sees nothing unless the room is world-readable,
        and may not read the room at all (403)."""
        actor, events = self.room("shared")
        self.assertEqual(self.visible(actor, "@carol:test", events), [])
        self.drive_failure(self.visibility.access(actor, "@carol:test"), Forbidden)
        actor, events = self.room("world_readable")
        access = self.drive(self.visibility.access(actor, "@carol:test"))
        self.assertTrue(access.world_readable)

    def test_viewer_and_access_of_a_member_who_left(self) -> None:
        """The viewer records bob's last join; access names his leave event; after
        forgetting the room he may not read it."""
        actor, events = self.room("shared")
        viewer = self.drive(self.visibility.viewer(actor, BOB))
        self.assertEqual(viewer.membership, "leave")
        self.assertTrue(viewer.joined_after(events[0]))
        self.assertFalse(viewer.joined_after(events[2]))
        access = self.drive(self.visibility.access(actor, BOB))
        self.assertEqual((access.membership, access.left_event.membership),
                         ("leave", "leave"))
        self.memberships.forgotten.add((BOB, actor.room_id))
        self.drive_failure(self.visibility.access(actor, BOB), Forbidden)
        self.assertEqual(self.visible(actor, BOB, events), [])

    def test_members_see_everything_they_joined_for(self) -> None:
        """The creator, joined throughout, sees every event including the create
        event (which has no state before it)."""
        actor, events = self.room("joined")
        first, _ = self.drive(actor.paginate(None, "f", 1))
        self.assertEqual(first[0].type, "m.room.create")
        self.assertEqual(self.visible(actor, ALICE, events), ["before", "during", "after"])
        self.assertEqual(self.drive(self.visibility.filter_events(actor, ALICE, first)),
                         first)
