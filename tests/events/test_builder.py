"""Building our own events: hash, sign, validate, ID (spec: server-server "Signing Events")."""

import copy
import json
import re

from twisted.trial import unittest

from homeserver.crypto.canonical_json import encode_canonical_json
from homeserver.crypto.signing import decode_base64, generate_signing_key, verify_json_signature
from homeserver.events.builder import add_event_signature, finalize_event
from homeserver.events.hashing import check_content_hash, compute_event_id
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from homeserver.events.validation import EventTooLarge, EventValidationError
from homeserver.events.verify import VerifyResult, verify_event

V = get_room_version
KEY = generate_signing_key("a_Test")


def partial(**fields):
    ev = {"type": "m.room.message", "room_id": "!r:example.org", "sender": "@u:example.org",
          "content": {"body": "hello"}, "prev_events": ["$p"], "auth_events": ["$a"],
          "depth": 7}
    ev.update(fields)
    return ev


def lookup(server, key_id, valid_at):
    if (server, key_id) == ("example.org", KEY.key_id):
        return KEY.verify_key_bytes
    return None


def build(version, now_ms=1234, **fields):
    return finalize_event(V(version), partial(**fields), "example.org", KEY, now_ms=now_ms,
                          cited_hash=lambda event_id: "hash-of-" + event_id)


class FinalizeTests(unittest.TestCase):
    def test_builds_verifiable_events_in_every_version(self):
        """Built events verify VALID with our key and carry a correct content hash."""
        for version in KNOWN_ROOM_VERSIONS:
            pdu = build(version)
            self.assertEqual(verify_event(V(version), pdu.get_dict(), lookup),
                             VerifyResult.VALID, version)
            self.assertTrue(check_content_hash(pdu.get_dict()))
            self.assertEqual(list(pdu.get_dict()["signatures"]), ["example.org"])

    def test_event_id_and_raw(self):
        """The PDU's ID is the reference hash and raw is its canonical JSON."""
        pdu = build("12")
        self.assertEqual(pdu.event_id, compute_event_id(V("12"), pdu.get_dict()))
        self.assertEqual(pdu.raw, encode_canonical_json(pdu.get_dict()))
        self.assertEqual(json.loads(pdu.raw), pdu.get_dict())
        self.assertRegex(pdu.event_id, r"^\$[A-Za-z0-9_-]{43}$")

    def test_v2_events_name_themselves(self):
        """Room v2 (event format v1): a fresh $random:server ID inside the event, and
        prev/auth events cited as (ID, hashes) pairs; the PDU still lists plain IDs."""
        pdu = build("2")
        self.assertRegex(pdu.event_id, r"^\$[A-Za-z]{18}:example\.org$")
        self.assertEqual(pdu.get_dict()["event_id"], pdu.event_id)
        self.assertEqual(pdu.get_dict()["prev_events"], [["$p", {"sha256": "hash-of-$p"}]])
        self.assertEqual(pdu.prev_event_ids, ["$p"])
        self.assertEqual(pdu.auth_event_ids, ["$a"])
        self.assertEqual(compute_event_id(V("2"), pdu.get_dict()), pdu.event_id)
        self.assertNotEqual(build("2").event_id, pdu.event_id)
        with self.assertRaises(ValueError):  # no way to cite the events
            finalize_event(V("2"), partial(), "example.org", KEY, now_ms=1)

    def test_v3_event_id_alphabet(self):
        """v3 IDs use the standard base64 alphabet."""
        self.assertRegex(build("3").event_id, r"^\$[A-Za-z0-9+/]{43}$")

    def test_event_ids_are_url_safe_from_v4(self):
        """Across many events no v4+ ID contains a character needing URL escaping."""
        for depth in range(1, 40):
            self.assertTrue(re.match(r"^\$[A-Za-z0-9_-]+$", build("4", depth=depth).event_id))

    def test_signature_is_over_redacted_form(self):
        """The signature verifies on the redacted event, as receivers check it."""
        pdu = build("11")
        redacted = redact_event_dict(V("11"), pdu.get_dict())
        self.assertTrue(verify_json_signature(redacted, "example.org", KEY.key_id,
                                              KEY.verify_key_bytes))

    def test_no_origin_added(self):
        """origin is no longer part of the PDU format, so none is added; a given one stays."""
        self.assertNotIn("origin", build("10").get_dict())
        self.assertEqual(build("10", origin="example.org").get_dict()["origin"], "example.org")

    def test_timestamp(self):
        """now_ms fills a missing origin_server_ts; an explicit one wins; neither is an error."""
        self.assertEqual(build("12", now_ms=99).origin_server_ts, 99)
        self.assertEqual(build("12", now_ms=99, origin_server_ts=5).origin_server_ts, 5)
        self.assertRaises(ValueError, finalize_event, V("12"), partial(), "example.org", KEY)

    def test_computed_keys_replaced(self):
        """Stale event_id, hashes and signatures in the template are discarded."""
        pdu = build("12", event_id="$stale", hashes={"sha256": "x"},
                    signatures={"evil.org": {"ed25519:1": "x"}})
        self.assertNotIn("event_id", pdu.get_dict())
        self.assertEqual(list(pdu.get_dict()["signatures"]), ["example.org"])
        self.assertTrue(check_content_hash(pdu.get_dict()))

    def test_partial_not_modified(self):
        """finalize_event leaves its input alone."""
        template = partial(type="m.room.redaction", redacts="$x", content={})
        before = copy.deepcopy(template)
        finalize_event(V("11"), template, "example.org", KEY, now_ms=1)
        self.assertEqual(template, before)

    def test_state_event(self):
        """A state_key is carried through."""
        pdu = build("12", type="m.room.topic", state_key="", content={"topic": "t"})
        self.assertEqual(pdu.state_pair, ("m.room.topic", ""))


class RedactsPlacementTests(unittest.TestCase):
    def test_v11_moves_redacts_into_content(self):
        """From v11 redacts lives in content, and the PDU reports it."""
        pdu = build("11", type="m.room.redaction", redacts="$target", content={})
        self.assertNotIn("redacts", pdu.get_dict())
        self.assertEqual(pdu.content["redacts"], "$target")
        self.assertEqual(pdu.redacts, "$target")

    def test_before_v11_redacts_is_top_level(self):
        """Before v11 redacts is a top-level key, filled from content if needed."""
        pdu = build("10", type="m.room.redaction", content={"redacts": "$target"})
        self.assertEqual(pdu.get_dict()["redacts"], "$target")
        self.assertEqual(pdu.redacts, "$target")


class CreateEventTests(unittest.TestCase):
    def create_partial(self, **fields):
        ev = partial(type="m.room.create", state_key="", content={"room_version": "12"},
                     prev_events=[], auth_events=[], depth=1)
        del ev["room_id"]
        ev.update(fields)
        return ev

    def test_v12_create_derives_room_id(self):
        """A v12 create event has no room_id and names the room by its event ID."""
        pdu = finalize_event(V("12"), self.create_partial(), "example.org", KEY, now_ms=1)
        self.assertNotIn("room_id", pdu.get_dict())
        self.assertEqual(pdu.room_id, "!" + pdu.event_id[1:])
        self.assertEqual(len(decode_base64(pdu.room_id[1:])), 32)

    def test_v12_create_with_room_id_refused(self):
        """Giving a v12 create event a room_id is a format error."""
        self.assertRaises(EventValidationError, finalize_event, V("12"),
                          self.create_partial(room_id="!r:example.org"), "example.org", KEY,
                          now_ms=1)


class RejectionTests(unittest.TestCase):
    def test_float_refused_from_v6(self):
        """Content with a float builds in v5 but is M_BAD_JSON from v6."""
        build("5", content={"n": 0.5})
        for version in ("6", "12"):
            e = self.assertRaises(EventValidationError, build, version, content={"n": 0.5})
            self.assertEqual(e.errcode, "M_BAD_JSON")

    def test_float_in_signed_part_refused(self):
        """A float that survives redaction (power levels) is M_BAD_JSON, not a crash."""
        e = self.assertRaises(EventValidationError, build, "12", type="m.room.power_levels",
                              state_key="", content={"users_default": 0.5})
        self.assertEqual(e.errcode, "M_BAD_JSON")

    def test_too_large(self):
        """An event over 64 KiB is M_TOO_LARGE (413)."""
        e = self.assertRaises(EventTooLarge, build, "12", content={"body": "x" * 70000})
        self.assertEqual(e.status, 413)


class AddSignatureTests(unittest.TestCase):
    def test_cosigning_keeps_both_signatures(self):
        """A resident server co-signing a restricted join adds its own signature."""
        joiner_key = generate_signing_key("j")
        pdu = finalize_event(
            V("10"),
            partial(type="m.room.member", state_key="@j:joiner.org", sender="@j:joiner.org",
                    content={"membership": "join",
                             "join_authorised_via_users_server": "@mod:example.org"}),
            "joiner.org", joiner_key, now_ms=1)
        cosigned = add_event_signature(V("10"), pdu.get_dict(), "example.org", KEY)
        self.assertEqual(set(cosigned["signatures"]), {"joiner.org", "example.org"})
        self.assertEqual(compute_event_id(V("10"), cosigned), pdu.event_id)

        def ring(server, key_id, valid_at):
            return {"joiner.org": joiner_key, "example.org": KEY}[server].verify_key_bytes

        self.assertEqual(verify_event(V("10"), pdu.get_dict(), ring), VerifyResult.INVALID)
        self.assertEqual(verify_event(V("10"), cosigned, ring), VerifyResult.VALID)
        self.assertNotIn("example.org", pdu.get_dict()["signatures"])
