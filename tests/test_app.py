"""The composition root serves versions and signed server keys."""

from nacl.signing import VerifyKey
from twisted.trial import unittest

from homeserver.crypto.canonical_json import encode_canonical_json
from homeserver.crypto.signing import decode_base64
from tests.client_api.harness import ServerTestCase


class AppTests(ServerTestCase):
    async def test_versions(self):
        """/_matrix/client/versions lists spec versions."""
        status, body = await self.request("GET", "/_matrix/client/versions")
        self.assertEqual(status, 200)
        self.assertIn("v1.11", body["versions"])

    async def test_server_keys_verify(self):
        """/_matrix/key/v2/server is signed by the key it publishes (checked with pynacl)."""
        status, body = await self.request("GET", "/_matrix/key/v2/server")
        self.assertEqual(status, 200)
        self.assertEqual(body["server_name"], "test.local")
        (key_id, key), = body["verify_keys"].items()
        verify_key = VerifyKey(decode_base64(key["key"]))
        signature = decode_base64(body["signatures"]["test.local"][key_id])
        unsigned = {k: v for k, v in body.items() if k not in ("signatures", "unsigned")}
        verify_key.verify(encode_canonical_json(unsigned), signature)
        self.assertGreater(body["valid_until_ts"], 0)

    async def test_unknown_endpoint(self):
        """An unknown path is M_UNRECOGNIZED 404 with a JSON body."""
        status, body = await self.request("GET", "/_matrix/client/v3/nope")
        self.assertEqual(status, 404)
        self.assertEqual(body["errcode"], "M_UNRECOGNIZED")

    async def test_wrong_method(self):
        """A known path with the wrong method is 405 M_UNRECOGNIZED."""
        status, body = await self.request("DELETE", "/_matrix/client/versions")
        self.assertEqual(status, 405)
        self.assertEqual(body["errcode"], "M_UNRECOGNIZED")

    async def test_cors(self):
        """Browser clients get CORS headers; OPTIONS preflights succeed."""
        resp = await self.http.request("OPTIONS", self.base + "/_matrix/client/versions")
        await resp.content()
        self.assertIn(resp.code, (200, 204))
        self.assertEqual(resp.headers.getRawHeaders("Access-Control-Allow-Origin"), ["*"])
