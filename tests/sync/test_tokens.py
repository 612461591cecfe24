"""Sync tokens: opaque text that round-trips and refuses anything malformed."""

from twisted.trial import unittest

from homeserver.errors import InvalidParam
from homeserver.sync.tokens import FIELDS, StreamToken


class StreamTokenTests(unittest.TestCase):
    def test_round_trip(self):
        """A token's text parses back to the same positions."""
        token = StreamToken(1, 2, 3, 4, 5, 6, 7)
        self.assertEqual(str(token), "s1_2_3_4_5_6_7")
        self.assertEqual(StreamToken.parse(str(token)), token)

    def test_malformed_tokens_are_invalid_param(self):
        """Wrong shapes, signs, sizes and types are M_INVALID_PARAM (400)."""
        for bad in ("", "s1_2_3", "t1_2_3_4_5_6_7", "s1_2_3_4_5_6_x", "s-1_2_3_4_5_6_7",
                    "s1_2_3_4_5_6_7_8", "s99999999999999999999_0_0_0_0_0_0", None, 5,
                    " s1_2_3_4_5_6_7"):
            with self.assertRaises(InvalidParam) as cm:
                StreamToken.parse(bad)
            self.assertEqual((cm.exception.status, cm.exception.errcode),
                             (400, "M_INVALID_PARAM"))

    def test_from_positions(self):
        """Built from the store's stream positions plus the typing position."""
        token = StreamToken.from_positions(
            {"room": 10, "account_data": 2, "receipts": 3, "presence": 4,
             "to_device": 5, "device_lists": 6}, typing=99)
        self.assertEqual(token, StreamToken(10, 2, 3, 4, 5, 6, 99))
        self.assertEqual(FIELDS[-1], "typing")

    def test_ordering_helpers(self):
        """is_after says whether any stream moved; upper_bound never moves one back."""
        a, b = StreamToken(1, 5), StreamToken(2, 3)
        self.assertTrue(b.is_after(a))
        self.assertTrue(a.is_after(b))
        self.assertFalse(a.is_after(a))
        self.assertEqual(a.upper_bound(b), StreamToken(2, 5))
        self.assertEqual(a.replace(typing=9).typing, 9)

    def test_capped_at(self):
        """capped_at lowers persisted streams to the server's position, not typing."""
        client, server = StreamToken(9, 1, 5, 0, 7, 2, 40), StreamToken(4, 3, 5, 1, 2, 2, 3)
        self.assertEqual(client.capped_at(server), StreamToken(4, 1, 5, 0, 2, 2, 40))
        self.assertEqual(server.capped_at(server), server)
