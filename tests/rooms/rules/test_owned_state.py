"""Tests for homeserver.rooms.rules.owned_state: whose MatrixRTC call membership a
state key is, and who may write it."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.errors import Forbidden
from homeserver.rooms.rules.owned_state import check_call_member_key, state_key_owner
from tests.rooms.rules.test_power_levels import _state

ALICE, BOB, MOD = "@alice:a.test", "@bob:b.test", "@mod:a.test"
MEMBER = "org.matrix.msc3401.call.member"


class StateKeyOwnerTests(unittest.TestCase):
    def test_forms(self) -> None:
        """A user ID, a user ID plus "_suffix", and either with a leading "_" name
        the user; anything else names nobody."""
        self.assertEqual(state_key_owner(BOB), BOB)
        self.assertEqual(state_key_owner(f"{BOB}_DEVICE"), BOB)
        self.assertEqual(state_key_owner(f"_{BOB}_DEVICE"), BOB)
        self.assertEqual(state_key_owner(f"_{BOB}_DEV_WITH_UNDERSCORES"), BOB)
        for key in ("", "_", "DEVICE", "@nocolon", "_@nocolon_X", "__@bob:b.test",
                    "@:b.test_X"):
            self.assertIsNone(state_key_owner(key), key)


class CallMemberKeyTests(unittest.TestCase):
    def test_own_key_and_outranking(self) -> None:
        """Anyone may write their own membership; another user's only with more
        power; other event types and keys naming nobody are left to the auth rules."""
        state = _state("10", {"users": {ALICE: 100, MOD: 50}, "users_default": 0})
        check_call_member_key(MEMBER, f"_{BOB}_D", BOB, state)
        check_call_member_key(MEMBER, f"_{BOB}_D", MOD, state)
        check_call_member_key("m.room.topic", f"_{ALICE}_D", BOB, state)
        check_call_member_key(MEMBER, "_not-a-user", BOB, state)
        with self.assertRaises(Forbidden):
            check_call_member_key(MEMBER, f"_{ALICE}_D", BOB, state)
        with self.assertRaises(Forbidden):
            check_call_member_key("m.rtc.member", f"_{ALICE}_D", MOD, state)
