"""The federation query endpoints, in process, with requests signed by a made-up
remote server: /query/directory, /query/{type}, /user/devices, /user/keys/query and
/claim, /publicRooms, /hierarchy, /openid/userinfo (and the client's
/openid/request_token)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from tests.client_api.e2e_helpers import device_keys
from tests.client_api.harness import q
from tests.client_api.room_helpers import RoomsTestCase
from tests.federation.signed import SignedRequests

FED = "/_matrix/federation/v1"
V3 = "/_matrix/client/v3"


class FederationQueryTest(SignedRequests, RoomsTestCase):
    async def upload_keys(self, token, user_id, device_id, **extra):
        keys, _ = device_keys(user_id, device_id)
        status, body = await self.request("POST", f"{V3}/keys/upload",
                                          {"device_keys": keys, **extra}, token=token)
        self.assertEqual(status, 200, body)
        return keys

    # -- /query/directory -------------------------------------------------------------
    async def test_query_directory(self):
        """A local alias resolves to its room and our server name."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token, room_alias_name="x")
        status, body = await self.signed(
            "GET", f"{FED}/query/directory?room_alias={q('#x:test.local')}")
        self.assertEqual((status, body), (200, {"room_id": room_id,
                                                "servers": ["test.local"]}))

    async def test_query_directory_errors(self):
        """Unknown alias 404; another server's alias, a malformed or missing one 400;
        unsigned 401."""
        status, body = await self.signed(
            "GET", f"{FED}/query/directory?room_alias={q('#nope:test.local')}")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        for alias in ("#x:remote.example", "nope"):
            status, body = await self.signed(
                "GET", f"{FED}/query/directory?room_alias={q(alias)}")
            self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"), alias)
        status, body = await self.signed("GET", f"{FED}/query/directory")
        self.assertEqual((status, body["errcode"]), (400, "M_MISSING_PARAM"))
        status, body = await self.request(
            "GET", f"{FED}/query/directory?room_alias={q('#x:test.local')}")
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))

    async def test_unknown_query_type(self):
        """/query/{queryType} for a type we do not know is 404 M_UNRECOGNIZED, signed."""
        status, body = await self.signed("GET", f"{FED}/query/m.nonsense?x=1")
        self.assertEqual((status, body["errcode"]), (404, "M_UNRECOGNIZED"))
        status, body = await self.request("GET", f"{FED}/query/m.nonsense")
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))

    # -- devices and keys -------------------------------------------------------------
    async def test_user_devices(self):
        """Every device of the user, with keys where uploaded and the display name;
        the stream_id moves on when the list changes."""
        user_id, token = await self.register("alice", device_id="DEV1")
        status, body = await self.signed("GET", f"{FED}/user/devices/{q(user_id)}")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["user_id"], user_id)
        self.assertEqual([d["device_id"] for d in body["devices"]], ["DEV1"])
        self.assertNotIn("keys", body["devices"][0])
        first_stream = body["stream_id"]
        keys = await self.upload_keys(token, user_id, "DEV1")
        await self.request("PUT", f"{V3}/devices/DEV1", {"display_name": "phone"},
                           token=token)
        status, body = await self.signed("GET", f"{FED}/user/devices/{q(user_id)}")
        [device] = body["devices"]
        self.assertEqual(device["device_display_name"], "phone")
        self.assertEqual(device["keys"]["keys"], keys["keys"])
        self.assertEqual(device["keys"]["signatures"], keys["signatures"])
        self.assertGreater(body["stream_id"], first_stream)

    async def test_user_devices_errors(self):
        """A user of another server is 400; unsigned is 401."""
        status, body = await self.signed("GET", f"{FED}/user/devices/{q('@x:remote.example')}")
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))
        status, body = await self.request("GET", f"{FED}/user/devices/{q('@x:test.local')}")
        self.assertEqual(status, 401)

    async def test_keys_query(self):
        """Device and master keys of local users; other servers' users are left out and
        no user-signing key or failures are sent."""
        user_id, token = await self.register("alice", device_id="DEV1")
        keys = await self.upload_keys(token, user_id, "DEV1")
        status, body = await self.signed("POST", f"{FED}/user/keys/query", {
            "device_keys": {user_id: [], "@bob:remote.example": []}})
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body["device_keys"]), {user_id})
        self.assertEqual(body["device_keys"][user_id]["DEV1"]["keys"], keys["keys"])
        self.assertNotIn("failures", body)
        self.assertNotIn("user_signing_keys", body)
        status, body = await self.signed("POST", f"{FED}/user/keys/query", {"x": 1})
        self.assertEqual((status, body["errcode"]), (400, "M_MISSING_PARAM"))

    async def test_keys_claim(self):
        """A one-time key is handed out once, then the fallback key."""
        user_id, token = await self.register("alice", device_id="DEV1")
        await self.upload_keys(token, user_id, "DEV1", one_time_keys={
            "signed_curve25519:AAA": {"key": "one"}},
            fallback_keys={"signed_curve25519:FFF": {"key": "fb", "fallback": True}})
        wanted = {"one_time_keys": {user_id: {"DEV1": "signed_curve25519"}}}
        status, body = await self.signed("POST", f"{FED}/user/keys/claim", wanted)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["one_time_keys"][user_id]["DEV1"],
                         {"signed_curve25519:AAA": {"key": "one"}})
        status, body = await self.signed("POST", f"{FED}/user/keys/claim", wanted)
        self.assertEqual(list(body["one_time_keys"][user_id]["DEV1"]),
                         ["signed_curve25519:FFF"])
        self.assertNotIn("failures", body)

    # -- /publicRooms -------------------------------------------------------------------
    async def test_public_rooms(self):
        """Published rooms by GET and POST (with a search filter); a third-party
        network we do not bridge lists nothing."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token, visibility="public", name="Lobby")
        await self.create_room(token, visibility="public", name="Other")
        await self.c["room_service"].stats.settled()
        status, body = await self.signed("GET", f"{FED}/publicRooms?limit=10")
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["chunk"]), 2)
        status, body = await self.signed("POST", f"{FED}/publicRooms", {
            "filter": {"generic_search_term": "lobby"}, "include_all_networks": True})
        self.assertEqual([r["room_id"] for r in body["chunk"]], [room_id])
        status, body = await self.signed(
            "GET", f"{FED}/publicRooms?third_party_instance_id=irc")
        self.assertEqual(body["chunk"], [])
        status, body = await self.signed("POST", f"{FED}/publicRooms", {"limit": "x"})
        self.assertEqual((status, body["errcode"]), (400, "M_BAD_JSON"))

    # -- /hierarchy ---------------------------------------------------------------------
    async def test_hierarchy(self):
        """A public space with its children: the room with children_state, accessible
        children described, private ones listed as inaccessible."""
        _, token = await self.register("alice")
        space = await self.create_room(token, preset="public_chat", name="space",
                                       creation_content={"type": "m.space"})
        child = await self.create_room(token, preset="public_chat", name="child")
        secret = await self.create_room(token, preset="private_chat", name="secret")
        for room in (child, secret):
            await self.put_state(token, space, "m.space.child", {"via": ["test.local"]},
                                 state_key=room)
        await self.c["room_service"].stats.settled()
        status, body = await self.signed("GET", f"{FED}/hierarchy/{q(space)}")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["room"]["room_id"], space)
        self.assertEqual({c["state_key"] for c in body["room"]["children_state"]},
                         {child, secret})
        self.assertEqual([c["room_id"] for c in body["children"]], [child])
        self.assertEqual(body["inaccessible_children"], [secret])
        status, body = await self.signed("GET", f"{FED}/hierarchy/{q(secret)}")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.signed("GET", f"{FED}/hierarchy/{q('!nope:test.local')}")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    # -- OpenID ---------------------------------------------------------------------------
    async def test_openid(self):
        """A token from request_token names its user at /openid/userinfo (no X-Matrix
        needed); unknown or missing tokens are 401 M_UNKNOWN_TOKEN."""
        user_id, token = await self.register("alice")
        status, body = await self.request(
            "POST", f"{V3}/user/{q(user_id)}/openid/request_token", {}, token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual((body["token_type"], body["matrix_server_name"], body["expires_in"]),
                         ("Bearer", "test.local", 3600))
        path = f"{FED}/openid/userinfo?" + urlencode({"access_token": body["access_token"]})
        self.assertEqual(await self.request("GET", path), (200, {"sub": user_id}))
        for path in (f"{FED}/openid/userinfo?access_token=wrong", f"{FED}/openid/userinfo"):
            status, body = await self.request("GET", path)
            self.assertEqual((status, body["errcode"]), (401, "M_UNKNOWN_TOKEN"))

    async def test_openid_for_another_user(self):
        """Requesting a token for someone else is 403; without a token 401."""
        _, token = await self.register("alice")
        path = f"{V3}/user/{quote('@bob:test.local')}/openid/request_token"
        status, body = await self.request("POST", path, {}, token=token)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        status, body = await self.request("POST", path, {})
        self.assertEqual(status, 401)

    async def test_openid_token_expiry(self):
        """A stored token names its user until its expiry, not after; only its hash is
        stored."""
        tokens = self.c["store"].openid_tokens
        await tokens.add("tok-1", "@a:test.local", 5000)
        self.assertEqual(await tokens.user_for("tok-1", 4999), "@a:test.local")
        self.assertIsNone(await tokens.user_for("tok-1", 5000))
        self.assertIsNone(await tokens.user_for("tok-2", 0))
