"""Client transactions: which send made an event, answered from the room's own DB."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.rooms.rules.transactions import (
    redact_endpoint, send_endpoint, split_txn_key, txn_id_of, txn_key)
from tests.fakes.rooms import ALICE, RoomHarness


class TxnIdOfTests(unittest.TestCase):
    class _Event:
        def __init__(self, type_: str, redacts: str | None = None) -> None:
            self.room_id, self.type, self.redacts = "!r:t", type_, redacts

    def test_prefix_of_the_endpoints_that_can_have_made_the_event(self) -> None:
        """The ID is the key's last field when user, device and endpoint are this
        user's, this device's and one that can have made the event."""
        msg = self._Event("m.room.message")
        key = txn_key("@a:t", "DEV|ICE", send_endpoint("!r:t", "m.room.message"), "x|1")
        self.assertEqual(txn_id_of(key, msg, "@a:t", "DEV|ICE"), "x|1")
        self.assertIsNone(txn_id_of(key, msg, "@a:t", "DEV"))
        self.assertIsNone(txn_id_of(key, msg, "@b:t", "DEV|ICE"))
        self.assertIsNone(txn_id_of(key, self._Event("m.other"), "@a:t", "DEV|ICE"))
        redaction = self._Event("m.room.redaction", redacts="$target")
        key = txn_key("@a:t", "D", redact_endpoint("!r:t", "$target"), "r1")
        self.assertEqual(txn_id_of(key, redaction, "@a:t", "D"), "r1")
        key = txn_key("@a:t", "D", send_endpoint("!r:t", "m.room.redaction"), "r2")
        self.assertEqual(txn_id_of(key, redaction, "@a:t", "D"), "r2")
        # a redacted redaction of an older room version has lost its "redacts"
        key = txn_key("@a:t", "D", redact_endpoint("!r:t", "$target"), "r3")
        self.assertEqual(txn_id_of(key, self._Event("m.room.redaction"), "@a:t", "D"), "r3")

    def test_fields_holding_separators_never_collide(self) -> None:
        """A device ID that looks like "device|endpoint" is not another device, and the
        split of a key is the one it was built from."""
        msg = self._Event("m.room.message")
        endpoint = send_endpoint("!r:t", "m.room.message")
        sneaky = txn_key("@a:t", f"X|{endpoint}", endpoint, "T")
        self.assertIsNone(txn_id_of(sneaky, msg, "@a:t", "X"))
        self.assertEqual(txn_id_of(sneaky, msg, "@a:t", f"X|{endpoint}"), "T")
        self.assertNotEqual(sneaky, txn_key("@a:t", "X", endpoint, f"{endpoint}|T"))
        self.assertNotEqual(txn_key("@a:t", "D", send_endpoint("!r:t", "m|x"), "y"),
                            txn_key("@a:t", "D", send_endpoint("!r:t", "m"), "x|y"))
        fields = ["@a:t", "a\\", "b|", "c\\|d"]
        self.assertEqual(split_txn_key(txn_key(*fields)), fields)
        self.assertEqual(txn_key("@a:t", "DEV", "send/!r/m", "t1"), "@a:t|DEV|send/!r/m|t1")
        self.assertEqual(split_txn_key("@a:t|DEV|send/!r/m|t1"),
                         ["@a:t", "DEV", "send/!r/m", "t1"])


class RoomTransactionIdsTests(RoomHarness, unittest.TestCase):
    def test_room_answers_for_its_own_events(self) -> None:
        """The room DB maps events back to the sending device's transaction IDs, also
        after the room slept (and for none of the events sent without one)."""
        room_id, _ = self.create_room()
        actor = self.drive(self.registry.get(room_id))
        key = txn_key(ALICE, "DEV", send_endpoint(room_id, "m.room.message"), "t1")
        sent = self.drive(actor.create_event(self.message("one"), txn_key=key))
        plain = self.drive(actor.create_event(self.message("two")))
        self.assertEqual(self.drive(actor.transaction_ids([sent, plain], ALICE, "DEV")),
                         {sent.event_id: "t1"})
        self.assertEqual(self.drive(actor.transaction_ids([sent], ALICE, "OTHER")), {})
        self.clock.advance(self.idle_seconds + 1)   # hibernate, then wake
        self.assertEqual(self.drive(actor.transaction_ids([sent], ALICE, "DEV")),
                         {sent.event_id: "t1"})
