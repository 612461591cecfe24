"""The pure checks of E2EE signed objects (homeserver.e2ee.signatures)."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.e2ee import signatures as sigs
from tests.client_api.e2e_helpers import cross_signing_key, device_keys, new_key, sign

ALICE = "@alice:example.org"


class SignatureTests(unittest.TestCase):
    def test_self_signed_device(self):
        """Device keys verify against their own ed25519 key, and only unchanged."""
        keys, _ = device_keys(ALICE, "DEV")
        self.assertTrue(sigs.self_signed_device(keys))
        self.assertFalse(sigs.self_signed_device(dict(keys, algorithms=[])))
        other, _ = device_keys(ALICE, "DEV")
        self.assertFalse(sigs.self_signed_device(dict(keys, signatures=other["signatures"])))
        self.assertFalse(sigs.self_signed_device(dict(keys, device_id=5)))

    def test_cross_signing_key_id(self):
        """A cross-signing key names itself by its public key, exactly once."""
        key, signing = cross_signing_key(ALICE, "master")
        self.assertEqual(sigs.cross_signing_key_id(key),
                         (signing.key_id, signing.version))
        self.assertIsNone(sigs.cross_signing_key_id(dict(key, keys={"ed25519:a": "b"})))
        self.assertIsNone(sigs.cross_signing_key_id(dict(key, keys={})))
        self.assertIsNone(sigs.cross_signing_key_id(dict(key, keys=[])))
        self.assertIsNone(sigs.cross_signing_key_id(
            dict(key, keys={"ed25519:AAAA": "AAAA"})))  # not 32 bytes

    def test_signed_by(self):
        """A signature by the named key verifies; a missing key never does."""
        master, master_key = cross_signing_key(ALICE, "master")
        ssk, _ = cross_signing_key(ALICE, "self_signing", master_key)
        pub = sigs.public_key(master, master_key.key_id)
        self.assertTrue(sigs.signed_by(ssk, ALICE, master_key.key_id, pub))
        self.assertFalse(sigs.signed_by(ssk, "@bob:example.org", master_key.key_id, pub))
        self.assertFalse(sigs.signed_by(ssk, ALICE, master_key.key_id, None))
        stranger = new_key()
        self.assertFalse(sigs.signed_by(sign(ssk, ALICE, stranger), ALICE, stranger.key_id,
                                        pub))

    def test_merge_and_strip(self):
        """Merged signatures keep the object's own; stripping drops only the
        signatures and unsigned parts."""
        keys, device_key = device_keys(ALICE, "DEV")
        merged = sigs.merge_signatures(keys, [("@bob:example.org", "ed25519:x", "sig")])
        self.assertEqual(merged["signatures"]["@bob:example.org"], {"ed25519:x": "sig"})
        self.assertIn(device_key.key_id, merged["signatures"][ALICE])
        self.assertNotIn("@bob:example.org", keys["signatures"])  # not modified
        self.assertEqual(sigs.merge_signatures({"signatures": []}, []), {"signatures": []})
        self.assertEqual(sigs.without_signatures(dict(merged, unsigned={"a": 1})),
                         {k: v for k, v in keys.items() if k != "signatures"})
