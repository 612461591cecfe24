"""Signing keys, the Synapse key file format, base64 and signed JSON (spec: appendices)."""

import os
import stat

from twisted.trial import unittest

from homeserver.crypto.canonical_json import CanonicalJsonError
from homeserver.crypto.signing import (
    SigningKey,
    decode_base64,
    encode_base64,
    generate_signing_key,
    parse_signing_keys,
    read_signing_keys,
    sign_json,
    verify_json_signature,
    write_signing_key,
)

# spec: appendices, "Cryptographic Test Vectors"
SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
SPEC_SERVER = "domain"
SPEC_KEY_ID = "ed25519:1"
SIGNED_EMPTY = ("K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZ"
                "KM5ZAQ")
SIGNED_ONE_TWO = ("KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpv"
                  "hJI+6Bw")


def spec_key() -> SigningKey:
    return SigningKey.from_seed("1", decode_base64(SPEC_SEED))


class Base64Tests(unittest.TestCase):
    def test_spec_examples(self):
        """The spec's unpadded base64 examples."""
        cases = {b"": "", b"f": "Zg", b"fo": "Zm8", b"foo": "Zm9v", b"foob": "Zm9vYg",
                 b"fooba": "Zm9vYmE", b"foobar": "Zm9vYmFy"}
        for raw, encoded in cases.items():
            self.assertEqual(encode_base64(raw), encoded)
            self.assertEqual(decode_base64(encoded), raw)

    def test_urlsafe_alphabet(self):
        """URL-safe encoding uses - and _ instead of + and /."""
        self.assertEqual(encode_base64(b"\xfb\xff", urlsafe=True), "-_8")
        self.assertEqual(encode_base64(b"\xfb\xff"), "+/8")

    def test_decode_accepts_padding_and_urlsafe(self):
        """Decoding takes padded, unpadded, standard and URL-safe input alike."""
        for text in ("+/8", "+/8=", "-_8", "-_8=", b"+/8"):
            self.assertEqual(decode_base64(text), b"\xfb\xff")

    def test_decode_refuses_garbage(self):
        """Invalid characters, whitespace and impossible lengths raise ValueError."""
        for text in ("Zm9v!", "Zm 9v", "Z", "Zm9vY", "é"):
            self.assertRaises(ValueError, decode_base64, text)


class SigningKeyTests(unittest.TestCase):
    def test_key_id_and_public_key(self):
        """A key reports its key ID and a 32-byte public key in unpadded base64."""
        key = spec_key()
        self.assertEqual(key.key_id, SPEC_KEY_ID)
        self.assertEqual(len(decode_base64(key.verify_key_base64)), 32)
        self.assertNotIn("=", key.verify_key_base64)

    def test_generate_uses_synapse_style_version(self):
        """Generated keys get an "a_" + 4 letter version unless one is given."""
        key = generate_signing_key()
        self.assertRegex(key.version, r"^a_[A-Za-z]{4}$")
        self.assertEqual(generate_signing_key("auto").key_id, "ed25519:auto")

    def test_sign_is_detached_ed25519(self):
        """sign() returns a 64-byte signature."""
        self.assertEqual(len(spec_key().sign(b"hello")), 64)

    def test_repr_hides_secret(self):
        """The seed never appears in the key's repr."""
        key = spec_key()
        self.assertNotIn(SPEC_SEED, repr(key))
        self.assertNotIn(encode_base64(key.seed), repr(key))

    def test_frozen(self):
        """Keys are immutable values."""
        key = spec_key()
        self.assertRaises(AttributeError, setattr, key, "version", "2")

    def test_bad_seed_or_version_refused(self):
        """A seed must be 32 bytes and a version non-empty without whitespace."""
        self.assertRaises(ValueError, SigningKey.from_seed, "1", b"short")
        self.assertRaises(ValueError, SigningKey.from_seed, "a b", bytes(32))
        self.assertRaises(ValueError, SigningKey.from_seed, "", bytes(32))


class KeyFileTests(unittest.TestCase):
    def test_round_trip(self):
        """A written key reads back identical, in Synapse's one-line format."""
        path = self.mktemp()
        key = generate_signing_key()
        write_signing_key(path, key)
        with open(path) as f:
            line = f.read()
        self.assertEqual(line, f"ed25519 {key.version} {encode_base64(key.seed)}\n")
        [read] = read_signing_keys(path)
        self.assertEqual((read.version, read.seed), (key.version, key.seed))

    def test_file_is_private(self):
        """The key file is readable by its owner only."""
        path = self.mktemp()
        write_signing_key(path, generate_signing_key())
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_overwrite_leaves_no_temp_files(self):
        """Rewriting a key file replaces it and leaves nothing else behind."""
        directory = self.mktemp()
        os.mkdir(directory)
        path = os.path.join(directory, "signing.key")
        write_signing_key(path, generate_signing_key("old"))
        write_signing_key(path, spec_key())
        self.assertEqual(os.listdir(directory), ["signing.key"])
        self.assertEqual(read_signing_keys(path)[0].key_id, SPEC_KEY_ID)

    def test_reads_synapse_file_with_several_keys(self):
        """Several lines (and blank ones) give several keys in order; padding is fine."""
        text = f"ed25519 1 {SPEC_SEED}\n\ned25519 a_Xyzw {encode_base64(bytes(32))}=\n"
        keys = parse_signing_keys(text)
        self.assertEqual([k.key_id for k in keys], ["ed25519:1", "ed25519:a_Xyzw"])
        self.assertEqual(keys[0].verify_key_bytes, spec_key().verify_key_bytes)

    def test_malformed_lines_refused(self):
        """Unknown algorithms, missing fields and bad seeds name the line."""
        for text in ("rsa 1 " + SPEC_SEED, "ed25519 " + SPEC_SEED, "ed25519 1 Zm9v",
                     "ed25519 1 !!!!"):
            e = self.assertRaises(ValueError, parse_signing_keys, "\n" + text)
            self.assertIn("line 2", str(e))


class SignJsonTests(unittest.TestCase):
    def test_spec_signed_empty_object(self):
        """Signing {} gives the spec's signature."""
        signed = sign_json({}, SPEC_SERVER, spec_key())
        self.assertEqual(signed, {"signatures": {SPEC_SERVER: {SPEC_KEY_ID: SIGNED_EMPTY}}})

    def test_spec_signed_object(self):
        """Signing {"one": 1, "two": "Two"} gives the spec's signature."""
        signed = sign_json({"one": 1, "two": "Two"}, SPEC_SERVER, spec_key())
        self.assertEqual(signed, {"one": 1, "two": "Two",
                                  "signatures": {SPEC_SERVER: {SPEC_KEY_ID: SIGNED_ONE_TWO}}})

    def test_unsigned_and_existing_signatures_not_covered(self):
        """unsigned and prior signatures are kept but not signed over."""
        obj = {"one": 1, "two": "Two", "unsigned": {"age_ts": 5},
               "signatures": {"other": {"ed25519:x": "abc"}}}
        signed = sign_json(obj, SPEC_SERVER, spec_key())
        self.assertEqual(signed["signatures"], {"other": {"ed25519:x": "abc"},
                                                SPEC_SERVER: {SPEC_KEY_ID: SIGNED_ONE_TWO}})
        self.assertEqual(signed["unsigned"], {"age_ts": 5})

    def test_input_not_modified(self):
        """sign_json returns a new dict and leaves the input's signatures alone."""
        obj = {"a": 1, "signatures": {SPEC_SERVER: {"ed25519:0": "old"}}}
        sign_json(obj, SPEC_SERVER, spec_key())
        self.assertEqual(obj, {"a": 1, "signatures": {SPEC_SERVER: {"ed25519:0": "old"}}})

    def test_strict_by_default(self):
        """Floats cannot be signed unless strict=False (room versions 3-5)."""
        self.assertRaises(CanonicalJsonError, sign_json, {"a": 1.5}, SPEC_SERVER, spec_key())
        signed = sign_json({"a": 1.5}, SPEC_SERVER, spec_key(), strict=False)
        self.assertTrue(verify_json_signature(signed, SPEC_SERVER, SPEC_KEY_ID,
                                              spec_key().verify_key_bytes, strict=False))


class VerifyJsonTests(unittest.TestCase):
    def setUp(self):
        self.key = spec_key()
        self.signed = {"one": 1, "two": "Two",
                       "signatures": {SPEC_SERVER: {SPEC_KEY_ID: SIGNED_ONE_TWO}}}

    def verify(self, obj, server=SPEC_SERVER, key_id=SPEC_KEY_ID, key=None):
        return verify_json_signature(obj, server, key_id, key or self.key.verify_key_bytes)

    def test_spec_signatures_verify(self):
        """The spec's signed objects verify against the spec key."""
        self.assertTrue(self.verify(self.signed))
        self.assertTrue(self.verify({"signatures": {SPEC_SERVER: {SPEC_KEY_ID: SIGNED_EMPTY}}}))

    def test_unsigned_changes_do_not_matter(self):
        """Adding unsigned data or other signatures keeps the signature valid."""
        obj = dict(self.signed, unsigned={"age": 1})
        obj["signatures"] = dict(obj["signatures"], other={"ed25519:1": "x"})
        self.assertTrue(self.verify(obj))

    def test_tampering_detected(self):
        """Changing a signed value breaks the signature."""
        self.assertFalse(self.verify(dict(self.signed, two="Three")))

    def test_wrong_key(self):
        """Another key does not verify; nor does a malformed key."""
        self.assertFalse(self.verify(self.signed, key=generate_signing_key().verify_key_bytes))
        self.assertFalse(self.verify(self.signed, key=b"short"))

    def test_missing_entries(self):
        """No signatures, no entry for the server, or no such key ID: False."""
        self.assertFalse(self.verify({"one": 1}))
        self.assertFalse(self.verify(self.signed, server="elsewhere"))
        self.assertFalse(self.verify(self.signed, key_id="ed25519:2"))

    def test_malformed_signatures(self):
        """Bad base64, non-string signatures and non-object entries give False."""
        for sigs in ({SPEC_SERVER: {SPEC_KEY_ID: "!!!"}}, {SPEC_SERVER: {SPEC_KEY_ID: 5}},
                     {SPEC_SERVER: "x"}, "x"):
            self.assertFalse(self.verify({"one": 1, "two": "Two", "signatures": sigs}))

    def test_unknown_algorithm(self):
        """Only ed25519 key IDs are understood."""
        obj = {"one": 1, "two": "Two", "signatures": {SPEC_SERVER: {"rsa:1": SIGNED_ONE_TWO}}}
        self.assertFalse(self.verify(obj, key_id="rsa:1"))

    def test_uncanonical_body(self):
        """A body with a float does not verify in strict mode rather than raising."""
        self.assertFalse(self.verify(dict(self.signed, three=3.0)))
