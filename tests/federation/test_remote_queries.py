"""RemoteQueries against a fake federation client: remote profiles (cached), aliases,
room directories, and keys fanned out per server with failures reported."""

from __future__ import annotations

from twisted.trial import unittest

from federation.client import RemoteHttpError, RemoteUnreachable
from federation.remote_queries import PROFILE_CACHE_MS, RemoteQueries
from homeserver.errors import MatrixError, NotFound
from tests.fakes.federation_client import FakeFederationClient

FED = "/_matrix/federation/v1"


class RemoteQueriesTest(unittest.TestCase):
    def setUp(self):
        self.client = FakeFederationClient()
        self.now = 1_000_000
        self.queries = RemoteQueries(client=self.client, now_ms=lambda: self.now)

    async def test_profile_cached_briefly(self):
        """A profile is asked once, reused within the cache time, then asked again;
        unknown fields from the remote are dropped."""
        self.client.answer("GET", "far.example", FED + "/query/profile",
                           {"displayname": "Bob", "avatar_url": "mxc://x/y", "evil": 1})
        profile = await self.queries.profile("@bob:far.example", "far.example")
        self.assertEqual(profile, {"displayname": "Bob", "avatar_url": "mxc://x/y"})
        self.assertEqual(self.client.requests[0][3], {"user_id": "@bob:far.example"})
        self.now += PROFILE_CACHE_MS - 1
        await self.queries.profile("@bob:far.example", "far.example")
        self.assertEqual(len(self.client.requests), 1)
        self.now += 2
        await self.queries.profile("@bob:far.example", "far.example")
        self.assertEqual(len(self.client.requests), 2)

    async def test_remote_errors_become_ours(self):
        """A remote 404 is our 404; unreachable or a remote 500 is our 502."""
        self.client.answer("GET", "far.example", FED + "/query/profile",
                           RemoteHttpError("far.example", 404, b'{"errcode":"M_NOT_FOUND"}'))
        with self.assertRaises(NotFound):
            await self.queries.profile("@bob:far.example", "far.example")
        for failure in (RemoteUnreachable("far.example", "refused"),
                        RemoteHttpError("far.example", 500, b"oops")):
            self.client.answer("GET", "far.example", FED + "/query/directory", failure)
            with self.assertRaises(MatrixError) as caught:
                await self.queries.resolve_alias("#a:far.example", "far.example")
            self.assertEqual((caught.exception.status, caught.exception.errcode),
                             (502, "M_UNKNOWN"))

    async def test_resolve_alias(self):
        """The remote answer's room and servers; a malformed answer is 502."""
        self.client.answer("GET", "far.example", FED + "/query/directory",
                           {"room_id": "!r:far.example", "servers": ["far.example", 3]})
        self.assertEqual(await self.queries.resolve_alias("#a:far.example", "far.example"),
                         {"room_id": "!r:far.example", "servers": ["far.example"]})
        self.assertEqual(self.client.requests[0][3], {"room_alias": "#a:far.example"})
        self.client.answer("GET", "far.example", FED + "/query/directory", {"room_id": 1})
        with self.assertRaises(MatrixError) as caught:
            await self.queries.resolve_alias("#a:far.example", "far.example")
        self.assertEqual(caught.exception.status, 502)

    async def test_public_rooms_get_and_post(self):
        """No filter: a GET with limit/since; a filter: a POST with it."""
        page = {"chunk": [{"room_id": "!r:far.example", "num_joined_members": 1}],
                "next_batch": "n", "total_room_count_estimate": 5}
        self.client.answer("GET", "far.example", FED + "/publicRooms", page)
        self.client.answer("POST", "far.example", FED + "/publicRooms", {"chunk": []})
        got = await self.queries.public_rooms("far.example", limit=5, since="s",
                                              search_term=None, room_types=None)
        self.assertEqual(got, page)
        self.assertEqual(self.client.requests[-1][3], {"limit": "5", "since": "s"})
        got = await self.queries.public_rooms("far.example", limit=None, since=None,
                                              search_term="lobby", room_types=[None])
        self.assertEqual(got, {"chunk": []})
        self.assertEqual(self.client.requests[-1][4], {
            "filter": {"generic_search_term": "lobby", "room_types": [None]}})

    async def test_query_keys_fan_out(self):
        """One request per server with the timeout; a failing server is in failures,
        keys not of the users asked (or not matching their user/device) are dropped."""
        good = {"user_id": "@a:one.example", "device_id": "D", "keys": {}}
        self.client.answer("POST", "one.example", FED + "/user/keys/query", {
            "device_keys": {"@a:one.example": {"D": good, "E": dict(good)},
                            "@z:other.example": {"D": good}},
            "master_keys": {"@a:one.example": {"user_id": "@a:one.example"}},
        })
        self.client.answer("POST", "two.example", FED + "/user/keys/query",
                           RemoteUnreachable("two.example", "timeout"))
        merged, failures = await self.queries.query_keys({
            "one.example": {"@a:one.example": []},
            "two.example": {"@b:two.example": ["X"]}}, 2500)
        self.assertEqual(merged["device_keys"], {"@a:one.example": {"D": good}})
        self.assertEqual(merged["master_keys"],
                         {"@a:one.example": {"user_id": "@a:one.example"}})
        self.assertEqual(list(failures), ["two.example"])
        self.assertEqual(failures["two.example"]["status"], 503)
        sent = {r[1]: r for r in self.client.sent("POST", FED + "/user/keys/query")}
        self.assertEqual(sent["two.example"][4], {"device_keys": {"@b:two.example": ["X"]}})
        self.assertEqual(sent["one.example"][5], 2.5)

    async def test_claim_keys(self):
        """Claimed keys of the devices asked for; a remote error is a failure."""
        self.client.answer("POST", "one.example", FED + "/user/keys/claim", {
            "one_time_keys": {"@a:one.example": {"D": {"signed_curve25519:1": {}},
                                                 "OTHER": {"x": {}}}}})
        self.client.answer("POST", "two.example", FED + "/user/keys/claim",
                           RemoteHttpError("two.example", 500, b""))
        claimed, failures = await self.queries.claim_keys({
            "one.example": {"@a:one.example": {"D": "signed_curve25519"}},
            "two.example": {"@b:two.example": {"D": "signed_curve25519"}}}, None)
        self.assertEqual(claimed, {"@a:one.example": {"D": {"signed_curve25519:1": {}}}})
        self.assertEqual(failures["two.example"]["status"], 502)
        self.assertEqual(self.client.requests[0][5], 10.0)
