"""Inbound federation over real HTTP: X-Matrix checks, /version, /query/profile, the
fallback for unknown paths, and the notary endpoints."""

from urllib.parse import quote

from homeserver.crypto.signing import SigningKey, verify_json_signature
from tests.client_api.harness import ServerTestCase
from tests.federation.signed import REMOTE, SignedRequests


class FederationServerTest(SignedRequests, ServerTestCase):
    def profile_path(self, user_id, field=None):
        path = "/_matrix/federation/v1/query/profile?user_id=" + quote(user_id, safe="")
        return path + (f"&field={field}" if field else "")

    async def test_version_needs_no_auth(self):
        """GET /version answers our software name without any signature."""
        status, body = await self.request("GET", "/_matrix/federation/v1/version")
        self.assertEqual(status, 200)
        self.assertEqual(body["server"]["name"], "roomserver")
        self.assertIsInstance(body["server"]["version"], str)

    async def test_profile_signed(self):
        """A signed query gets a local user's profile, or one field of it."""
        user_id, token = await self.register("alice")
        await self.request("PUT", f"/_matrix/client/v3/profile/{quote(user_id)}/displayname",
                           {"displayname": "Alice"}, token=token)
        self.assertEqual(await self.signed("GET", self.profile_path(user_id)),
                         (200, {"displayname": "Alice"}))
        self.assertEqual(await self.signed("GET", self.profile_path(user_id, "avatar_url")),
                         (200, {}))

    async def test_profile_errors(self):
        """Unknown local user 404, remote user 400, no user_id 400, bad field 400."""
        status, body = await self.signed("GET", self.profile_path("@nobody:test.local"))
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.signed("GET", self.profile_path("@x:remote.example"))
        self.assertEqual(status, 400)
        status, body = await self.signed("GET", "/_matrix/federation/v1/query/profile")
        self.assertEqual((status, body["errcode"]), (400, "M_MISSING_PARAM"))
        status, body = await self.signed("GET", self.profile_path("@nobody:test.local", "x"))
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))

    async def test_unauthenticated(self):
        """No header, a Bearer token or a malformed X-Matrix header → 401 M_UNAUTHORIZED."""
        path = self.profile_path("@nobody:test.local")
        for headers in [{}, {"Authorization": "Bearer abc"},
                        {"Authorization": 'X-Matrix origin="remote.example",key="k"'}]:
            status, body = await self.request("GET", path, headers=headers)
            self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"), headers)

    async def test_bad_signatures(self):
        """Wrong key, other destination, tampered body, unreachable origin → 401."""
        path = self.profile_path("@nobody:test.local")
        other = SigningKey.from_seed("r1", b"\x06" * 32)  # same key ID, other key
        for kwargs in [{"key": other}, {"destination": "elsewhere.example"},
                       {"origin": "127.0.0.1:1"}]:
            status, body = await self.signed("GET", path, **kwargs)
            self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"), kwargs)
        status, body = await self.signed("PUT", "/_matrix/federation/v1/send/1",
                                         {"pdus": []}, sent_body={"pdus": [], "edus": []})
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))

    async def test_unknown_paths(self):
        """An unknown federation path is 401 unsigned, 404 M_UNRECOGNIZED signed."""
        path = "/_matrix/federation/v1/no_such_endpoint/1"
        status, body = await self.request("PUT", path, {})
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))
        status, body = await self.signed("PUT", path, {"pdus": []})
        self.assertEqual((status, body["errcode"]), (404, "M_UNRECOGNIZED"))

    async def test_notary_our_keys(self):
        """POST /key/v2/query for ourselves returns our signed key response."""
        status, body = await self.request("POST", "/_matrix/key/v2/query",
                                          {"server_keys": {"test.local": {}}})
        self.assertEqual(status, 200)
        [entry] = body["server_keys"]
        key = self.c["signing_keys"][0]
        self.assertTrue(verify_json_signature(entry, "test.local", key.key_id,
                                              key.verify_key_bytes))

    async def test_notary_cached_remote_keys(self):
        """A cached remote response comes back with its own signature and ours added."""
        for status, body in [
            await self.request("POST", "/_matrix/key/v2/query", {"server_keys": {
                "remote.example": {REMOTE.key_id: {"minimum_valid_until_ts": 0}}}}),
            await self.request("GET", "/_matrix/key/v2/query/remote.example"),
        ]:
            self.assertEqual(status, 200)
            [entry] = body["server_keys"]
            key = self.c["signing_keys"][0]
            self.assertTrue(verify_json_signature(entry, "remote.example", REMOTE.key_id,
                                                  REMOTE.verify_key_bytes))
            self.assertTrue(verify_json_signature(entry, "test.local", key.key_id,
                                                  key.verify_key_bytes))

    async def test_notary_bad_requests(self):
        """Malformed query bodies are 400 M_BAD_JSON; unknown servers give no keys."""
        for bad in [{}, {"server_keys": []}, {"server_keys": {"bad name!": {}}},
                    {"server_keys": {"remote.example": {"k": {"minimum_valid_until_ts": "x"}}}}]:
            status, body = await self.request("POST", "/_matrix/key/v2/query", bad)
            self.assertEqual((status, body["errcode"]), (400, "M_BAD_JSON"), bad)
        status, body = await self.request("GET", "/_matrix/key/v2/query/127.0.0.1:1")
        self.assertEqual((status, body), (200, {"server_keys": []}))
