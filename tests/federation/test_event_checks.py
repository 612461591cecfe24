"""EventChecker: keys fetched first, then signatures and content hashes (spec:
server-server "Checks performed on receipt of a PDU", steps 1-3)."""

from __future__ import annotations

from twisted.trial import unittest

from federation.event_checks import EventChecker
from homeserver.crypto.signing import generate_signing_key
from homeserver.errors import BadJson, Forbidden
from homeserver.events.builder import finalize_event
from homeserver.events.room_versions import get_room_version
from tests.federation.membership_fakes import FakeKeyring

V12 = get_room_version("12")


class EventCheckerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.key = generate_signing_key("k1")
        self.checker = EventChecker(FakeKeyring({"remote": self.key}))

    def event(self, body: str = "hi", key=None) -> dict:
        return dict(finalize_event(V12, {
            "room_id": "!r", "type": "m.room.message", "sender": "@a:remote",
            "content": {"body": body}, "prev_events": ["$p"], "auth_events": ["$c"],
            "depth": 3}, "remote", key or self.key, 1000).get_dict())

    async def test_good_bad_and_tampered(self) -> None:
        """A good event passes as sent; a forged one is dropped; a changed content is
        kept redacted (signatures cover the redacted form)."""
        good, forged, tampered = self.event("a"), self.event("b", generate_signing_key("k1")), \
            self.event("c")
        tampered["content"] = {"body": "changed"}
        passed, dropped = await self.checker.check(V12, [good, forged, tampered, "junk"])
        self.assertEqual(len(passed), 2)
        self.assertEqual(passed[0].get_dict(), good)
        self.assertEqual(dict(passed[1].content), {})
        self.assertEqual(len(dropped), 2)

    async def test_check_one(self) -> None:
        """check_one wants the event exactly as signed: 403 for a forged or tampered
        one, 400 for something that is not an event."""
        pdu = await self.checker.check_one(V12, self.event())
        self.assertEqual(pdu.sender, "@a:remote")
        tampered = self.event()
        tampered["content"] = {"body": "changed"}
        with self.assertRaises(Forbidden):
            await self.checker.check_one(V12, tampered)
        with self.assertRaises(Forbidden):
            await self.checker.check_one(V12, self.event(key=generate_signing_key("k1")))
        with self.assertRaises(BadJson):
            await self.checker.check_one(V12, {"type": "m.room.message"})
        with self.assertRaises(BadJson):
            await self.checker.check_one(V12, [])
