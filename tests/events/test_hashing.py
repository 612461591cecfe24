"""Content hashes, reference hashes and event IDs (spec: server-server "Signing Events")."""

import base64
import hashlib

from twisted.trial import unittest

from homeserver.crypto.signing import decode_base64
from homeserver.events.hashing import (
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
)
from homeserver.events.pdu import PDU
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import get_room_version

V = get_room_version

# spec: appendices, "Event Signing" — the minimal event and its hash, as signed
MINIMAL_HASH = "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
MINIMAL_SIGNATURE = ("KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOo"
                     "MszkwsQma+lYAg")


def minimal_event():
    return {
        "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain",
        "origin_server_ts": 1000000, "signatures": {}, "hashes": {}, "type": "X",
        "content": {}, "prev_events": [], "auth_events": [], "depth": 3,
        "unsigned": {"age_ts": 1000000},
    }


def signed_minimal_event():
    return dict(minimal_event(), hashes={"sha256": MINIMAL_HASH},
                signatures={"domain": {"ed25519:1": MINIMAL_SIGNATURE}})


def message_event():
    return {
        "content": {"body": "Here is the message content"}, "event_id": "$0:domain",
        "origin": "domain", "origin_server_ts": 1000000, "type": "m.room.message",
        "room_id": "!r:domain", "sender": "@u:domain", "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }


class ContentHashTests(unittest.TestCase):
    def test_spec_minimal_event(self):
        """The spec's minimal event hashes to its published content hash."""
        self.assertEqual(compute_content_hash(minimal_event()), MINIMAL_HASH)

    def test_spec_message_event(self):
        """The spec's message event hashes to its published content hash."""
        self.assertEqual(compute_content_hash(message_event()),
                         "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g")

    def test_ignores_unsigned_signatures_and_hashes(self):
        """unsigned, signatures and an existing hashes value do not change the hash."""
        ev = dict(minimal_event(), unsigned={"age": 99}, hashes={"sha256": "old"},
                  signatures={"x": {"ed25519:1": "y"}})
        self.assertEqual(compute_content_hash(ev), MINIMAL_HASH)

    def test_covers_content(self):
        """Changing content changes the hash."""
        self.assertNotEqual(compute_content_hash(dict(minimal_event(), content={"a": 1})),
                            MINIMAL_HASH)

    def test_old_room_numbers_hash(self):
        """Floats and big integers (possible in v3-v5 rooms) can be hashed."""
        compute_content_hash(dict(minimal_event(), content={"f": 1.5, "n": 2**60}))

    def test_check(self):
        """check_content_hash accepts the right hash, padded or not, and nothing else."""
        self.assertTrue(check_content_hash(signed_minimal_event()))
        padded = dict(signed_minimal_event(), hashes={"sha256": MINIMAL_HASH + "="})
        self.assertTrue(check_content_hash(padded))
        for hashes in ({"sha256": "AAAA"}, {"sha256": "!!"}, {"sha256": 1}, {}, "x"):
            self.assertFalse(check_content_hash(dict(signed_minimal_event(), hashes=hashes)))
        no_hashes = signed_minimal_event()
        del no_hashes["hashes"]
        self.assertFalse(check_content_hash(no_hashes))
        self.assertFalse(check_content_hash(dict(signed_minimal_event(), depth=4)))


class ReferenceHashTests(unittest.TestCase):
    # The canonical JSON of the signed minimal event after redaction and removal of
    # signatures/unsigned, written out by hand so the test does not trust our encoder.
    V3_FORM = ('{"auth_events":[],"content":{},"depth":3,"hashes":{"sha256":"%s"},'
               '"origin":"domain","origin_server_ts":1000000,"prev_events":[],'
               '"room_id":"!x:domain","sender":"@a:domain","type":"X"}' % MINIMAL_HASH)
    V11_FORM = V3_FORM.replace('"origin":"domain",', "")

    def test_matches_hand_computed_v3(self):
        """v3 reference hash = sha256 of the redacted event without signatures/unsigned."""
        expected = hashlib.sha256(self.V3_FORM.encode()).digest()
        self.assertEqual(compute_reference_hash(V("3"), signed_minimal_event()), expected)

    def test_matches_hand_computed_v11(self):
        """From v11 origin is redacted away, so it leaves the reference hash."""
        expected = hashlib.sha256(self.V11_FORM.encode()).digest()
        self.assertEqual(compute_reference_hash(V("11"), signed_minimal_event()), expected)
        self.assertEqual(compute_reference_hash(V("12"), signed_minimal_event()), expected)

    def test_unaffected_by_signatures_and_redactable_content(self):
        """Adding signatures, unsigned data or redactable content keeps the same hash."""
        base = compute_reference_hash(V("10"), signed_minimal_event())
        ev = signed_minimal_event()
        ev["signatures"] = {"other": {"ed25519:2": "zzz"}}
        ev["unsigned"] = {"age": 5}
        ev["content"] = {"body": "redactable"}
        self.assertEqual(compute_reference_hash(V("10"), ev), base)

    def test_covers_hashes(self):
        """The content hash is part of the reference hash, so content is bound too."""
        ev = dict(signed_minimal_event(), hashes={"sha256": "different"})
        self.assertNotEqual(compute_reference_hash(V("10"), ev),
                            compute_reference_hash(V("10"), signed_minimal_event()))


class EventIdTests(unittest.TestCase):
    def test_v3_standard_v4_urlsafe(self):
        """v3 IDs use standard base64; v4+ the URL-safe alphabet; both unpadded."""
        ev = dict(signed_minimal_event(), depth=5)  # its hash has both + and / in base64
        digest = compute_reference_hash(V("3"), ev)
        v3 = compute_event_id(V("3"), ev)
        self.assertEqual(v3, "$" + base64.b64encode(digest).decode().rstrip("="))
        self.assertTrue("+" in v3 and "/" in v3)
        for version in ("4", "5", "6", "10"):
            self.assertEqual(compute_event_id(V(version), ev),
                             "$" + base64.urlsafe_b64encode(digest).decode().rstrip("="))
        self.assertEqual(len(v3), 44)

    def test_id_survives_redaction(self):
        """The event ID of an event equals that of its redacted copy."""
        ev = dict(signed_minimal_event(), content={"body": "hello"}, type="m.room.message")
        for version in ("3", "9", "11", "12"):
            self.assertEqual(compute_event_id(V(version), ev),
                             compute_event_id(V(version), redact_event_dict(V(version), ev)))

    def test_id_differs_between_redaction_rules(self):
        """An event with origin has a different ID under v10 and v11 rules."""
        ev = signed_minimal_event()
        self.assertNotEqual(compute_event_id(V("10"), ev)[1:],
                            compute_event_id(V("11"), ev)[1:])

    def test_v12_create_event_names_the_room(self):
        """A v12 create event has no room_id; the room ID is its event ID with '!'."""
        create = dict(signed_minimal_event(), type="m.room.create", state_key="",
                      content={"room_version": "12"})
        del create["room_id"]
        pdu = PDU.from_dict(V("12"), create)
        self.assertEqual(pdu.event_id, compute_event_id(V("12"), create))
        self.assertEqual(pdu.room_id, "!" + pdu.event_id[1:])
        self.assertEqual(len(decode_base64(pdu.room_id[1:])), 32)
