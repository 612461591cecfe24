"""X-Matrix headers: parsing per the auth-param grammar, signing and verification."""

from twisted.trial import unittest

from federation import xmatrix
from federation.xmatrix import XMatrixAuth, XMatrixError
from homeserver.crypto.signing import SigningKey, decode_base64

# A fixed key and a signature computed once over the request below (ed25519 is
# deterministic), so the vector also catches a change in what is signed.
KEY = SigningKey.from_seed("a_Fx1c", bytes(range(32)))
VERIFY_KEY = decode_base64("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg")
SIG = ("1Dbfiutm2tdkfna3UmHedtq57zdYif+lydYJg1u1PFIzONTIiy9p2gxKz+bD5KHJ/k4256G7kPeloy"
       "SDY9J6Aw")
REQUEST = dict(method="PUT", uri="/_matrix/federation/v1/send/1234",
               content={"pdus": [], "edus": []})
# Synapse's order: origin, key, sig, destination (synapse/http/matrixfederationclient.py)
SYNAPSE_HEADER = ('X-Matrix origin="localhost:8448",key="ed25519:a_Fx1c",'
                  f'sig="{SIG}",destination="localhost:8449"')


class ParseTest(unittest.TestCase):
    def test_synapse_header(self):
        """Synapse's quoted header with destination last parses to its four parts."""
        auth = xmatrix.parse_authorization(SYNAPSE_HEADER)
        self.assertEqual(auth, XMatrixAuth("localhost:8448", "ed25519:a_Fx1c", SIG,
                                           "localhost:8449"))

    def test_unquoted_values_and_whitespace(self):
        """Unquoted values (older servers) and spaces around commas are accepted."""
        auth = xmatrix.parse_authorization(
            "x-matrix origin=origin.example , key=ed25519:k1,  sig=AbC+/d=")
        self.assertEqual(auth, XMatrixAuth("origin.example", "ed25519:k1", "AbC+/d="))

    def test_quoted_escapes_and_unknown_params(self):
        """Backslash escapes are undone and unknown parameters ignored."""
        auth = xmatrix.parse_authorization(
            'X-Matrix origin="a.example",key="ed25519:\\k",sig="s",future="x, y"')
        self.assertEqual(auth.key_id, "ed25519:k")
        self.assertIsNone(auth.destination)

    def test_parameter_names_case_insensitive(self):
        """ORIGIN= is origin= (auth-param names are case-insensitive)."""
        auth = xmatrix.parse_authorization('X-Matrix ORIGIN="a.example",Key="ed25519:k",SIG=s')
        self.assertEqual((auth.origin, auth.key_id, auth.signature),
                         ("a.example", "ed25519:k", "s"))

    def test_malformed(self):
        """Wrong scheme, missing parts, bad syntax or invalid names are refused."""
        for header in [
            'Bearer abc',
            'X-Matrix',
            'X-Matrix origin="a.example",key="ed25519:k"',            # no sig
            'X-Matrix key="ed25519:k",sig="s"',                        # no origin
            'X-Matrix origin="a.example",key="ed25519:k",sig="s',      # unterminated
            'X-Matrix origin="a.example" key="ed25519:k",sig="s"',     # no comma
            'X-Matrix origin="a.example",key,sig="s"',                 # no value
            'X-Matrix origin="a.example",origin="b.example",key="k",sig="s"',
            'X-Matrix origin="bad server!",key="ed25519:k",sig="s"',
            'X-Matrix origin="a.example",destination="x:99999",key="k",sig="s"',
            'X-Matrix origin=,key="ed25519:k",sig="s"',
        ]:
            with self.assertRaises(XMatrixError, msg=header):
                xmatrix.parse_authorization(header)

    def test_round_trip(self):
        """What format_authorization writes, parse_authorization reads back."""
        auth = XMatrixAuth("a.example", 'ed25519:k"\\x', "sig", "dest.example:8448")
        text = xmatrix.format_authorization(auth)
        self.assertEqual(xmatrix.parse_authorization(text), auth)

    def test_pick_xmatrix_headers(self):
        """Among several Authorization headers only the X-Matrix ones count."""
        found = xmatrix.xmatrix_headers(["Bearer x", SYNAPSE_HEADER])
        self.assertEqual([a.origin for a in found], ["localhost:8448"])
        with self.assertRaises(XMatrixError):
            xmatrix.xmatrix_headers(["Bearer x"])
        with self.assertRaises(XMatrixError):
            xmatrix.xmatrix_headers([])


class SignVerifyTest(unittest.TestCase):
    def test_fixed_vector_verifies(self):
        """The fixed signature verifies against the request it was made for."""
        auth = xmatrix.parse_authorization(SYNAPSE_HEADER)
        self.assertTrue(xmatrix.verify_request(auth, VERIFY_KEY, destination="localhost:8449",
                                               **REQUEST))

    def test_sign_matches_vector(self):
        """sign_request produces the same signature as the fixed vector."""
        [header] = xmatrix.sign_request([KEY], origin="localhost:8448",
                                        destination="localhost:8449", **REQUEST)
        self.assertEqual(xmatrix.parse_authorization(header).signature, SIG)

    def test_any_change_breaks_the_signature(self):
        """Another method, uri, body, destination or key fails verification."""
        auth = xmatrix.parse_authorization(SYNAPSE_HEADER)
        good = dict(REQUEST, destination="localhost:8449")
        for change in [{"method": "POST"}, {"uri": "/_matrix/federation/v1/send/1235"},
                       {"content": {"pdus": [], "edus": [{}]}}, {"content": None},
                       {"destination": "other.example"}]:
            self.assertFalse(xmatrix.verify_request(auth, VERIFY_KEY, **{**good, **change}),
                             change)
        other = SigningKey.from_seed("x", bytes(32)).verify_key_bytes
        self.assertFalse(xmatrix.verify_request(auth, other, **good))

    def test_missing_destination_means_ours(self):
        """A header without destination is checked as if it named us."""
        [header] = xmatrix.sign_request([KEY], method="GET", uri="/_matrix/x",
                                        origin="a.example", destination="b.example")
        auth = xmatrix.parse_authorization(header)
        bare = XMatrixAuth(auth.origin, auth.key_id, auth.signature)
        self.assertTrue(xmatrix.verify_request(bare, KEY.verify_key_bytes, method="GET",
                                               uri="/_matrix/x", destination="b.example"))

    def test_garbage_signature_is_false(self):
        """Bad base64 or a non-ed25519 key ID verify as False, never raise."""
        for auth in [XMatrixAuth("a.example", "ed25519:k", "!!notbase64"),
                     XMatrixAuth("a.example", "curve25519:k", SIG)]:
            self.assertFalse(xmatrix.verify_request(auth, VERIFY_KEY, method="GET", uri="/",
                                                    destination="b.example"))

    def test_one_header_per_key(self):
        """Each of several signing keys yields its own header."""
        other = SigningKey.from_seed("b", bytes(32))
        headers = xmatrix.sign_request([KEY, other], method="GET", uri="/_matrix/x",
                                       origin="a.example", destination="b.example")
        self.assertEqual([xmatrix.parse_authorization(h).key_id for h in headers],
                         ["ed25519:a_Fx1c", "ed25519:b"])
