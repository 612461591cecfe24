"""PDU checks before the actor (spec: "Checks performed on receipt of a PDU", 1-3):
malformed and badly signed PDUs are dropped, a bad content hash is redacted."""

from twisted.trial import unittest

from federation.pdu_checks import Checked, PduChecker, PduDropped, judge
from homeserver.crypto.signing import SigningKey
from homeserver.events.builder import add_event_signature, finalize_event
from homeserver.events.room_versions import get_room_version

V10 = get_room_version("10")
REMOTE = SigningKey.from_seed("r1", b"\x01" * 32)
THIRD = SigningKey.from_seed("t1", b"\x03" * 32)
OTHER = SigningKey.from_seed("r1", b"\x02" * 32)  # same key ID as REMOTE, another key
KEYS = {("remote.example", REMOTE.key_id, 5): REMOTE.verify_key_bytes,
        ("third.example", THIRD.key_id, 5): THIRD.verify_key_bytes}


def message(body="hi", key=REMOTE, **extra):
    partial = {"type": "m.room.message", "sender": "@bob:remote.example",
               "room_id": "!r:here.example", "content": {"msgtype": "m.text", "body": body},
               "prev_events": ["$a"], "auth_events": ["$b"], "depth": 3,
               "origin_server_ts": 5, **extra}
    return dict(finalize_event(V10, partial, "remote.example", key).get_dict())


def restricted_join(signers):
    partial = {"type": "m.room.member", "sender": "@bob:remote.example",
               "state_key": "@bob:remote.example", "room_id": "!r:here.example",
               "content": {"membership": "join",
                           "join_authorised_via_users_server": "@carol:third.example"},
               "prev_events": ["$a"], "auth_events": ["$b"], "depth": 3,
               "origin_server_ts": 5}
    event = dict(finalize_event(V10, partial, "remote.example", REMOTE).get_dict())
    if "remote.example" not in signers:
        event["signatures"] = {}
    if "third.example" in signers:
        event = add_event_signature(V10, event, "third.example", THIRD)
    return event


class FakeKeyring:
    def __init__(self, keys):
        self.keys = keys
        self.asked = []

    async def get_verify_key(self, server_name, key_id, minimum_valid_until_ts=None):
        self.asked.append((server_name, key_id, minimum_valid_until_ts))
        key = self.keys.get((server_name, key_id, minimum_valid_until_ts))
        if key is None:
            raise KeyError(key_id)
        return key


class JudgeTest(unittest.TestCase):
    def test_valid(self):
        """A well-signed event with the right content hash is used as received."""
        event = message()
        checked = judge(V10, event, KEYS)
        self.assertFalse(checked.redacted)
        self.assertEqual(checked.pdu.content["body"], "hi")

    def test_bad_signature_dropped(self):
        """A signature by another key under the same key ID drops the event."""
        with self.assertRaises(PduDropped) as caught:
            judge(V10, message(key=OTHER), KEYS)
        self.assertIn("signature", caught.exception.reason)
        self.assertIsNotNone(caught.exception.event_id)

    def test_unknown_key_dropped(self):
        """Without the sender server's key the event cannot be trusted: dropped."""
        with self.assertRaises(PduDropped):
            judge(V10, message(), {})

    def test_bad_hash_redacted(self):
        """Content changed after signing: signatures still hold, the event is redacted,
        and keeps its event ID."""
        event = message()
        original_id = judge(V10, event, KEYS).pdu.event_id
        event["content"] = {"msgtype": "m.text", "body": "tampered"}
        checked = judge(V10, event, KEYS)
        self.assertTrue(checked.redacted)
        self.assertEqual(checked.pdu.content, {})
        self.assertEqual(checked.pdu.event_id, original_id)

    def test_changed_redacted_field_dropped(self):
        """A change to a field the signature covers (type) is a bad signature."""
        event = message()
        event["type"] = "m.room.other"
        with self.assertRaises(PduDropped):
            judge(V10, event, KEYS)

    def test_malformed_dropped(self):
        """An event missing required fields, or not an object, is dropped."""
        event = message()
        del event["depth"]
        with self.assertRaises(PduDropped) as caught:
            judge(V10, event, KEYS)
        self.assertIn("malformed", caught.exception.reason)
        with self.assertRaises(PduDropped):
            judge(V10, "not an event", KEYS)

    def test_restricted_join_needs_authorising_server(self):
        """A v8+ restricted join needs the signature of the authorising user's server
        as well as the sender's."""
        self.assertIsInstance(judge(V10, restricted_join({"remote.example", "third.example"}),
                                    KEYS), Checked)
        for signers in [{"remote.example"}, {"third.example"}]:
            with self.assertRaises(PduDropped):
                judge(V10, restricted_join(signers), KEYS)


class PduCheckerTest(unittest.TestCase):
    async def test_fetches_keys_once_and_judges_each(self):
        """check_many asks the keyring for each named key once (at the event's
        timestamp in v5+ rooms) and answers per PDU, in order."""
        keyring = FakeKeyring(KEYS)
        good, bad = message("one"), message("two", key=OTHER)
        outcomes = await PduChecker(keyring).check_many(V10, [good, bad, message("three")])
        self.assertIsInstance(outcomes[0], Checked)
        self.assertIsInstance(outcomes[1], PduDropped)
        self.assertIsInstance(outcomes[2], Checked)
        self.assertEqual(keyring.asked, [("remote.example", REMOTE.key_id, 5)])

    async def test_keyring_failure_drops(self):
        """A key the keyring cannot find fails the signature check, not the call."""
        with self.assertRaises(PduDropped):
            await PduChecker(FakeKeyring({})).check(V10, message())
