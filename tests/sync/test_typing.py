"""The typing service on a Clock: typing appears, expires and stops; syncs learn
which rooms changed since their token."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from homeserver.errors import Forbidden
from homeserver.sync.typing_notifications import MAX_TIMEOUT_MS, TypingNotifications


class _Event:
    def __init__(self, room_id, state_key, membership):
        self.type, self.room_id, self.state_key = "m.room.member", room_id, state_key
        self.membership = membership


class TypingTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1000)
        self.woken: list[str] = []
        self.members = {("!r:x", "@a:x"): "join", ("!r:x", "@b:x"): "join"}

        async def membership(room_id, user_id):
            return self.members.get((room_id, user_id))

        self.typing = TypingNotifications(self.clock, self.woken.append,
                                          membership=membership)

    def test_typing_appears_and_expires(self):
        """A user types until the timeout, then the room changes again."""
        start = self.typing.position
        self.typing.started_typing("!r:x", "@a:x", 5000)
        self.assertEqual(self.typing.typing_users("!r:x"), ["@a:x"])
        self.assertEqual(self.woken, ["!r:x"])
        after_start = self.typing.position
        self.assertEqual(self.typing.rooms_changed(start, ["!r:x", "!s:x"]), ["!r:x"])
        self.clock.advance(4.9)
        self.assertEqual(self.typing.typing_users("!r:x"), ["@a:x"])
        self.clock.advance(0.2)
        self.assertEqual(self.typing.typing_users("!r:x"), [])
        self.assertEqual(self.woken, ["!r:x", "!r:x"])
        self.assertEqual(self.typing.rooms_changed(after_start, ["!r:x"]), ["!r:x"])
        self.assertEqual(self.typing.event_for("!r:x"),
                         {"type": "m.typing", "content": {"user_ids": []}})

    def test_renewal_moves_expiry_without_a_change(self):
        """Typing again while typing only extends the timeout."""
        self.typing.started_typing("!r:x", "@a:x", 5000)
        position = self.typing.position
        self.clock.advance(4)
        self.typing.started_typing("!r:x", "@a:x", 5000)
        self.assertEqual(self.typing.position, position)
        self.clock.advance(4)
        self.assertEqual(self.typing.typing_users("!r:x"), ["@a:x"])
        self.clock.advance(1.1)
        self.assertEqual(self.typing.typing_users("!r:x"), [])

    def test_stop_and_cap(self):
        """Stopping ends typing at once; timeouts are capped."""
        self.typing.started_typing("!r:x", "@a:x", 10 ** 9)
        self.typing.started_typing("!r:x", "@b:x", 1000)
        self.typing.stopped_typing("!r:x", "@b:x")
        self.assertEqual(self.typing.typing_users("!r:x"), ["@a:x"])
        self.clock.advance(MAX_TIMEOUT_MS / 1000 + 0.1)
        self.assertEqual(self.typing.typing_users("!r:x"), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_initial_and_stale_tokens_see_current_typers(self):
        """No token, or one from before the start, lists rooms with typers now."""
        self.typing.started_typing("!r:x", "@a:x", 5000)
        self.assertEqual(self.typing.rooms_changed(None, ["!r:x", "!s:x"]), ["!r:x"])
        self.assertEqual(self.typing.rooms_changed(5, ["!r:x", "!s:x"]), ["!r:x"])
        self.assertEqual(self.typing.rooms_changed(self.typing.position, ["!r:x"]), [])

    def test_leaving_stops_typing(self):
        """A membership change away from join ends that user's typing."""
        self.typing.started_typing("!r:x", "@a:x", 5000)
        self.typing.on_room_event(_Event("!r:x", "@a:x", "leave"), 1)
        self.assertEqual(self.typing.typing_users("!r:x"), [])

    async def test_only_members_for_themselves(self):
        """set_typing refuses other users and non-members (403)."""
        with self.assertRaises(Forbidden):
            await self.typing.set_typing("@a:x", "@b:x", "!r:x", True, 1000)
        with self.assertRaises(Forbidden):
            await self.typing.set_typing("@c:x", "@c:x", "!r:x", True, 1000)
        await self.typing.set_typing("@a:x", "@a:x", "!r:x", True, 1000)
        self.assertEqual(self.typing.typing_users("!r:x"), ["@a:x"])
        await self.typing.set_typing("@a:x", "@a:x", "!r:x", False)
        self.assertEqual(self.typing.typing_users("!r:x"), [])
