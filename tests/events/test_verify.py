"""Signature and hash checks on received events (spec: server-server "Validating hashes
and signatures on received events")."""

from twisted.trial import unittest

from homeserver.crypto.signing import SigningKey, decode_base64, generate_signing_key
from homeserver.events.builder import add_event_signature
from homeserver.events.hashing import compute_content_hash
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from homeserver.events.verify import (
    VerifyResult,
    required_signers,
    signing_key_requests,
    verify_event,
    verify_event_with_reason,
)

V = get_room_version
SPEC_KEY = SigningKey.from_seed("1", decode_base64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"))

# spec: appendices, "Event Signing": the minimal event as signed by "domain"
SPEC_SIGNED_EVENT = {
    "auth_events": [], "content": {}, "depth": 3,
    "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
    "origin": "domain", "origin_server_ts": 1000000, "prev_events": [],
    "room_id": "!x:domain", "sender": "@a:domain",
    "signatures": {"domain": {"ed25519:1": (
        "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg")}},
    "type": "X", "unsigned": {"age_ts": 1000000},
}


class FakeKeyRing:
    """Known verify keys, each valid until a timestamp; records what it was asked."""

    def __init__(self):
        self.keys = {}
        self.asked = []

    def add(self, server, key, valid_until=2**62):
        self.keys[(server, key.key_id)] = (key.verify_key_bytes, valid_until)

    def __call__(self, server, key_id, valid_at_ts):
        self.asked.append((server, key_id, valid_at_ts))
        found = self.keys.get((server, key_id))
        if found is None or found[1] < valid_at_ts:
            return None
        return found[0]


def make_event(version, signers, **fields):
    """A hashed event signed by each (server, key) in ``signers``."""
    ev = {"type": "m.room.message", "room_id": "!r:a", "sender": "@u:a",
          "content": {"body": "hello"}, "origin_server_ts": 5000, "depth": 3,
          "prev_events": ["$p"], "auth_events": ["$a"], "signatures": {}}
    ev.update(fields)
    ev["hashes"] = {"sha256": compute_content_hash(ev)}
    for server, key in signers:
        ev = add_event_signature(V(version), ev, server, key)
    return ev


class SpecVectorTests(unittest.TestCase):
    def test_spec_event_verifies(self):
        """The spec's signed event is VALID under every pre-v11 room version."""
        for version in ("3", "4", "5", "6", "10"):
            ring = FakeKeyRing()
            ring.add("domain", SPEC_KEY)
            self.assertEqual(verify_event(V(version), SPEC_SIGNED_EVENT, ring),
                             VerifyResult.VALID, version)

    def test_spec_event_under_v11_rules(self):
        """Under v11 rules origin is not signed over, so the spec's signature fails."""
        ring = FakeKeyRing()
        ring.add("domain", SPEC_KEY)
        self.assertEqual(verify_event(V("11"), SPEC_SIGNED_EVENT, ring), VerifyResult.INVALID)

    def test_key_validity_time(self):
        """v5+ ask for keys valid at origin_server_ts; v3 and v4 ask with 0 (any key)."""
        for version, expected in (("3", 0), ("4", 0), ("5", 1000000), ("12", 1000000)):
            ring = FakeKeyRing()
            verify_event(V(version), SPEC_SIGNED_EVENT, ring)
            self.assertEqual(ring.asked, [("domain", "ed25519:1", expected)])


class VerifyTests(unittest.TestCase):
    def setUp(self):
        self.key = generate_signing_key("k1")
        self.ring = FakeKeyRing()
        self.ring.add("a", self.key)

    def test_valid_in_every_version(self):
        """An event signed by its sender's server is VALID in all room versions."""
        for version in KNOWN_ROOM_VERSIONS:
            ev = make_event(version, [("a", self.key)])
            self.assertEqual(verify_event(V(version), ev, self.ring), VerifyResult.VALID)

    def test_redacted_copy_is_redact(self):
        """A redacted copy keeps valid signatures but fails the hash: REDACT."""
        ev = make_event("10", [("a", self.key)])
        redacted = redact_event_dict(V("10"), ev)
        self.assertEqual(verify_event(V("10"), redacted, self.ring), VerifyResult.REDACT)

    def test_tampered_content_is_redact(self):
        """Changed content (not covered by the signature) means REDACT."""
        ev = dict(make_event("12", [("a", self.key)]), content={"body": "evil"})
        result, reason = verify_event_with_reason(V("12"), ev, self.ring)
        self.assertEqual(result, VerifyResult.REDACT)
        self.assertIn("hash", reason)

    def test_missing_hash_is_redact(self):
        """A garbled content hash under good signatures still means REDACT, not drop."""
        ev = make_event("12", [("a", self.key)])
        ev = add_event_signature(V("12"), dict(ev, hashes={"sha256": "!!"}), "a", self.key)
        self.assertEqual(verify_event(V("12"), ev, self.ring), VerifyResult.REDACT)

    def test_tampered_essential_field_is_invalid(self):
        """Changing a signed field (depth) breaks the signature: INVALID."""
        ev = dict(make_event("12", [("a", self.key)]), depth=4)
        self.assertEqual(verify_event(V("12"), ev, self.ring), VerifyResult.INVALID)

    def test_unknown_key_is_invalid(self):
        """No known key for the sender's server: INVALID."""
        ev = make_event("12", [("a", generate_signing_key("other"))])
        result, reason = verify_event_with_reason(V("12"), ev, self.ring)
        self.assertEqual(result, VerifyResult.INVALID)
        self.assertIn("no signature from a", reason)

    def test_expired_key_is_skipped(self):
        """A key that expired before origin_server_ts does not count (v5+)."""
        ring = FakeKeyRing()
        ring.add("a", self.key, valid_until=4999)
        ev = make_event("12", [("a", self.key)])
        self.assertEqual(verify_event(V("12"), ev, ring), VerifyResult.INVALID)
        self.assertEqual(verify_event(V("4"), make_event("4", [("a", self.key)]), ring),
                         VerifyResult.VALID)

    def test_unknown_extra_key_ignored(self):
        """One good signature plus one by an unknown key is VALID."""
        ev = make_event("12", [("a", self.key), ("a", generate_signing_key("k2"))])
        self.assertEqual(verify_event(V("12"), ev, self.ring), VerifyResult.VALID)

    def test_any_bad_known_signature_is_invalid(self):
        """A known key whose signature is wrong makes the event INVALID."""
        second = generate_signing_key("k2")
        self.ring.add("a", second)
        ev = make_event("12", [("a", self.key), ("a", second)])
        ev["signatures"]["a"]["ed25519:k2"] = ev["signatures"]["a"]["ed25519:k1"]
        self.assertEqual(verify_event(V("12"), ev, self.ring), VerifyResult.INVALID)

    def test_bad_base64_signature_is_invalid(self):
        """An undecodable signature by a known key is INVALID."""
        ev = make_event("12", [("a", self.key)])
        ev["signatures"] = {"a": {"ed25519:k1": "not base64!"}}
        self.assertEqual(verify_event(V("12"), ev, self.ring), VerifyResult.INVALID)

    def test_unsigned_or_only_unknown_algorithms_is_invalid(self):
        """No signatures, or only ones in unknown algorithms: INVALID."""
        ev = make_event("12", [])
        self.assertEqual(verify_event(V("12"), ev, self.ring), VerifyResult.INVALID)
        ev["signatures"] = {"a": {"rsa:k1": "AAAA"}}
        self.assertEqual(verify_event(V("12"), ev, self.ring), VerifyResult.INVALID)
        self.assertEqual(self.ring.asked, [])

    def test_other_servers_signature_does_not_count(self):
        """A signature by a server other than the sender's does not satisfy the check."""
        other = generate_signing_key("o")
        self.ring.add("b", other)
        ev = make_event("12", [("b", other)])
        self.assertEqual(verify_event(V("12"), ev, self.ring), VerifyResult.INVALID)

    def test_float_in_strict_room_is_invalid(self):
        """A v6+ event that is not canonical JSON cannot verify."""
        ev = make_event("5", [("a", self.key)], type="m.room.power_levels", state_key="",
                        content={"users_default": 1.5})
        self.assertEqual(verify_event(V("5"), ev, self.ring), VerifyResult.VALID)
        self.assertEqual(verify_event(V("6"), ev, self.ring), VerifyResult.INVALID)


class RequiredSignersTests(unittest.TestCase):
    def setUp(self):
        self.sender_key = generate_signing_key("s")
        self.auth_key = generate_signing_key("r")
        self.ring = FakeKeyRing()
        self.ring.add("a", self.sender_key)
        self.ring.add("resident", self.auth_key)

    def restricted_join(self, version, signers):
        return make_event(version, signers, type="m.room.member", state_key="@u:a",
                          content={"membership": "join",
                                   "join_authorised_via_users_server": "@mod:resident"})

    def test_restricted_join_needs_authorising_server_from_v8(self):
        """From v8 a restricted join must also be signed by the authorising server."""
        ev = self.restricted_join("8", [("a", self.sender_key)])
        self.assertEqual(verify_event(V("8"), ev, self.ring), VerifyResult.INVALID)
        ev = self.restricted_join("8", [("a", self.sender_key), ("resident", self.auth_key)])
        self.assertEqual(verify_event(V("8"), ev, self.ring), VerifyResult.VALID)
        self.assertEqual(required_signers(V("8"), ev), {"a", "resident"})

    def test_no_authorising_signature_needed_before_v8(self):
        """Before restricted rooms existed the key means nothing to signature checks."""
        ev = self.restricted_join("7", [("a", self.sender_key)])
        self.assertEqual(verify_event(V("7"), ev, self.ring), VerifyResult.VALID)
        self.assertEqual(required_signers(V("7"), ev), {"a"})

    def test_only_joins_need_the_authorising_server(self):
        """A leave carrying the key needs only the sender (auth rules judge the rest)."""
        ev = make_event("10", [], type="m.room.member", state_key="@u:a",
                        content={"membership": "leave",
                                 "join_authorised_via_users_server": "@mod:resident"})
        self.assertEqual(required_signers(V("10"), ev), {"a"})

    def test_malformed_authorising_user_is_invalid(self):
        """An authorising user that is not a user ID makes the event INVALID."""
        ev = make_event("10", [("a", self.sender_key)], type="m.room.member",
                        state_key="@u:a",
                        content={"membership": "join",
                                 "join_authorised_via_users_server": "nobody"})
        self.assertEqual(verify_event(V("10"), ev, self.ring), VerifyResult.INVALID)
        self.assertEqual(signing_key_requests(V("10"), ev), [])

    def test_third_party_invite_needs_no_sender_signature(self):
        """An invite from a third-party invite may be sent by any server."""
        ev = make_event("10", [], type="m.room.member", state_key="@bob:b",
                        content={"membership": "invite",
                                 "third_party_invite": {"signed": {"token": "t"}}})
        self.assertEqual(required_signers(V("10"), ev), set())
        self.assertEqual(verify_event(V("10"), ev, self.ring), VerifyResult.VALID)

    def test_signing_key_requests(self):
        """The keys to prefetch are listed per required server with the validity time."""
        ev = self.restricted_join("9", [("a", self.sender_key), ("resident", self.auth_key),
                                        ("bystander", generate_signing_key("x"))])
        ev["signatures"]["a"]["rsa:1"] = "ignored"
        self.assertEqual(signing_key_requests(V("9"), ev),
                         [("a", "ed25519:s", 5000), ("resident", "ed25519:r", 5000)])
        self.assertEqual(signing_key_requests(V("4"), make_event("4", [("a", self.sender_key)])),
                         [("a", "ed25519:s", 0)])
