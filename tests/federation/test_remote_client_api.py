"""Our clients asking about remote things, through the real client API with the
federation client replaced by a fake: profiles, aliases, /publicRooms?server=,
/keys/query and /keys/claim for remote users."""

from __future__ import annotations

from urllib.parse import quote

from federation.client import RemoteUnreachable
from tests.client_api.e2e_helpers import device_keys
from tests.client_api.harness import ServerTestCase, q
from tests.fakes.federation_client import FakeFederationClient

FED = "/_matrix/federation/v1"
V3 = "/_matrix/client/v3"
BOB = "@bob:far.example"


class RemoteClientApiTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.client = FakeFederationClient()
        # the components were built with the real client; the test talks to a fake
        self.c["remote_queries"]._client = self.client
        self.c["remote_device_lists"]._client = self.client

    async def test_remote_profile(self):
        """GET /profile and /profile/displayname of a remote user ask its server."""
        _, token = await self.register("alice")
        self.client.answer("GET", "far.example", FED + "/query/profile",
                           {"displayname": "Bob"})
        self.assertEqual(await self.request("GET", f"{V3}/profile/{q(BOB)}", token=token),
                         (200, {"displayname": "Bob"}))
        status, body = await self.request("GET", f"{V3}/profile/{q(BOB)}/displayname")
        self.assertEqual((status, body), (200, {"displayname": "Bob"}))
        status, body = await self.request("GET", f"{V3}/profile/{q('@x:gone.example')}")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    async def test_remote_alias(self):
        """GET /directory/room/{alias} of another server asks it; its 404 is ours."""
        _, token = await self.register("alice")
        self.client.answer("GET", "far.example", FED + "/query/directory",
                           {"room_id": "!r:far.example", "servers": ["far.example"]})
        status, body = await self.request(
            "GET", f"{V3}/directory/room/{q('#a:far.example')}", token=token)
        self.assertEqual((status, body), (200, {"room_id": "!r:far.example",
                                                "servers": ["far.example"]}))
        status, body = await self.request(
            "GET", f"{V3}/directory/room/{q('#a:gone.example')}", token=token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    async def test_remote_public_rooms(self):
        """/publicRooms?server= lists the remote server's rooms; unreachable is 502."""
        _, token = await self.register("alice")
        page = {"chunk": [{"room_id": "!r:far.example", "num_joined_members": 3,
                           "world_readable": True, "guest_can_join": False}],
                "total_room_count_estimate": 1}
        self.client.answer("GET", "far.example", FED + "/publicRooms", page)
        self.assertEqual(await self.request(
            "GET", f"{V3}/publicRooms?server=far.example&limit=3", token=token), (200, page))
        self.client.answer("POST", "far.example", FED + "/publicRooms",
                           RemoteUnreachable("far.example", "down"))
        status, body = await self.request("POST", f"{V3}/publicRooms?server=far.example",
                                          {"filter": {"generic_search_term": "x"}},
                                          token=token)
        self.assertEqual(status, 502, body)

    async def test_keys_query_local_and_remote(self):
        """Local keys from our store, remote ones from their server within the
        timeout, an unreachable server in failures."""
        alice, token = await self.register("alice", device_id="DEV1")
        keys, _ = device_keys(alice, "DEV1")
        await self.request("POST", f"{V3}/keys/upload", {"device_keys": keys}, token=token)
        bob_keys, _ = device_keys(BOB, "BDEV")
        self.client.answer("POST", "far.example", FED + "/user/keys/query",
                           {"device_keys": {BOB: {"BDEV": bob_keys}}})
        self.client.answer("POST", "down.example", FED + "/user/keys/query",
                           RemoteUnreachable("down.example", "refused"))
        status, body = await self.request("POST", f"{V3}/keys/query", {
            "device_keys": {alice: [], BOB: [], "@c:down.example": []},
            "timeout": 3000}, token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["device_keys"][BOB], {"BDEV": bob_keys})
        self.assertIn("DEV1", body["device_keys"][alice])
        self.assertEqual(list(body["failures"]), ["down.example"])
        [sent] = self.client.sent("POST", FED + "/user/keys/query")[:1]
        self.assertEqual(sent[5], 3.0)

    async def test_keys_query_from_device_list_cache(self):
        """A user whose device list we track is answered from the cache."""
        _, token = await self.register("alice")
        bob_keys, _ = device_keys(BOB, "BDEV")
        self.client.answer("GET", "far.example",
                           FED + "/user/devices/" + quote(BOB, safe=""),
                           {"user_id": BOB, "stream_id": 1,
                            "devices": [{"device_id": "BDEV", "keys": bob_keys}]})
        await self.c["remote_device_lists"].resync(BOB)
        status, body = await self.request("POST", f"{V3}/keys/query",
                                          {"device_keys": {BOB: []}}, token=token)
        self.assertEqual(body["device_keys"], {BOB: {"BDEV": bob_keys}})
        self.assertEqual(self.client.sent("POST", FED + "/user/keys/query"), [])

    async def test_keys_claim_remote(self):
        """/keys/claim for a remote device asks its server."""
        _, token = await self.register("alice")
        self.client.answer("POST", "far.example", FED + "/user/keys/claim", {
            "one_time_keys": {BOB: {"BDEV": {"signed_curve25519:1": {"key": "k"}}}}})
        status, body = await self.request("POST", f"{V3}/keys/claim", {
            "one_time_keys": {BOB: {"BDEV": "signed_curve25519"}}}, token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"one_time_keys": {
            BOB: {"BDEV": {"signed_curve25519:1": {"key": "k"}}}}, "failures": {}})
        status, body = await self.request("POST", f"{V3}/keys/claim", {
            "one_time_keys": {}, "timeout": -1}, token=token)
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))

    def test_edu_handlers(self):
        """The inbound /send lane finds our device-list handlers by EDU type."""
        from federation import wiring

        handlers = wiring.edu_handlers(self.c)
        lists = self.c["remote_device_lists"]
        self.assertEqual(handlers, {"m.device_list_update": lists.on_device_list_update,
                                    "m.signing_key_update": lists.on_signing_key_update})
