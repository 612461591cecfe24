"""Server-side key backups (spec: "Server-side key backups"): versions, keys at three
levels, the replacement rule, etag and count, and the errors."""

from __future__ import annotations

from tests.client_api.e2e_helpers import V3
from tests.client_api.harness import q
from tests.client_api.sync_helpers import SyncTestCase

ALG = "m.megolm_backup.v1.curve25519-aes-sha2"
ROOM = "!room:test.local"


def key(first: int = 0, forwarded: int = 0, verified: bool = False, data: str = "x"):
    return {"first_message_index": first, "forwarded_count": forwarded,
            "is_verified": verified, "session_data": {"ciphertext": data}}


class RoomKeysTests(SyncTestCase):
    async def _new_version(self, token: str) -> str:
        resp = await self.ok("POST", f"{V3}/room_keys/version",
                             {"algorithm": ALG, "auth_data": {"public_key": "pk"}},
                             token=token)
        return resp["version"]

    def _keys(self, version: str, room: str | None = None, session: str | None = None):
        path = f"{V3}/room_keys/keys"
        if room is not None:
            path += f"/{q(room)}"
        if session is not None:
            path += f"/{q(session)}"
        return f"{path}?version={version}"

    async def test_no_backup(self):
        """Without a backup, GET /room_keys/version is 404 M_NOT_FOUND."""
        _, alice = await self.register("alice")
        self.assertError(await self.request("GET", f"{V3}/room_keys/version", token=alice),
                         404, "M_NOT_FOUND")
        self.assertError(await self.request("GET", self._keys("1"), token=alice),
                         404, "M_NOT_FOUND")
        self.assertError(await self.request("PUT", self._keys("1", ROOM, "s"), key(),
                                            token=alice), 404, "M_NOT_FOUND")

    async def test_version_lifecycle(self):
        """Create, read (current and by number), update auth_data, delete."""
        _, alice = await self.register("alice")
        _, bob = await self.register("bob")
        v1 = await self._new_version(alice)
        self.assertEqual(v1, "1")
        got = await self.ok("GET", f"{V3}/room_keys/version", token=alice)
        self.assertEqual(got, {"version": "1", "algorithm": ALG,
                               "auth_data": {"public_key": "pk"}, "etag": "0", "count": 0})
        self.assertError(await self.request("GET", f"{V3}/room_keys/version", token=bob),
                         404, "M_NOT_FOUND")
        await self.ok("PUT", f"{V3}/room_keys/version/1",
                      {"algorithm": ALG, "auth_data": {"public_key": "pk2"}}, token=alice)
        self.assertEqual((await self.ok("GET", f"{V3}/room_keys/version/1", token=alice))[
            "auth_data"], {"public_key": "pk2"})
        self.assertError(await self.request(
            "PUT", f"{V3}/room_keys/version/1", {"algorithm": "other", "auth_data": {}},
            token=alice), 400, "M_INVALID_PARAM")
        self.assertError(await self.request(
            "PUT", f"{V3}/room_keys/version/1",
            {"algorithm": ALG, "auth_data": {}, "version": "2"}, token=alice),
            400, "M_INVALID_PARAM")
        v2 = await self._new_version(alice)
        self.assertEqual((await self.ok("GET", f"{V3}/room_keys/version", token=alice))[
            "version"], v2)
        await self.ok("DELETE", f"{V3}/room_keys/version/{v2}", token=alice)
        self.assertEqual((await self.ok("GET", f"{V3}/room_keys/version", token=alice))[
            "version"], "1")
        self.assertError(await self.request("GET", f"{V3}/room_keys/version/{v2}",
                                            token=alice), 404, "M_NOT_FOUND")
        self.assertEqual(await self._new_version(alice), "3")  # never reused
        for bad in ("x", "0", "-1", "99999999999999999999"):
            self.assertError(await self.request("GET", f"{V3}/room_keys/version/{bad}",
                                                token=alice), 404, "M_NOT_FOUND")
        self.assertError(await self.request("DELETE", f"{V3}/room_keys/version/7",
                                            token=alice), 404, "M_NOT_FOUND")

    async def test_bad_bodies(self):
        """Missing or mistyped fields are 400."""
        _, alice = await self.register("alice")
        for body in ({}, {"algorithm": ALG}, {"algorithm": 1, "auth_data": {}},
                     {"algorithm": ALG, "auth_data": "x"}):
            status, resp = await self.request("POST", f"{V3}/room_keys/version", body,
                                              token=alice)
            self.assertEqual(status, 400, resp)
        version = await self._new_version(alice)
        for body in ({"first_message_index": 0}, dict(key(), is_verified="yes"),
                     dict(key(), first_message_index=-1), dict(key(), session_data="x")):
            status, resp = await self.request("PUT", self._keys(version, ROOM, "s"), body,
                                              token=alice)
            self.assertEqual(status, 400, resp)
        self.assertError(await self.request("PUT", self._keys(version, ROOM),
                                            {"sessions": []}, token=alice),
                         400, "M_BAD_JSON")
        self.assertError(await self.request("PUT", f"{V3}/room_keys/keys", {"rooms": {}},
                                            token=alice), 400, "M_MISSING_PARAM")
        self.assertEqual((await self.ok("GET", f"{V3}/room_keys/version", token=alice))[
            "count"], 0)

    async def test_keys_at_three_levels(self):
        """Keys put at any level are read at any level; etag and count follow."""
        _, alice = await self.register("alice")
        version = await self._new_version(alice)
        resp = await self.ok("PUT", self._keys(version), {"rooms": {
            ROOM: {"sessions": {"s1": key(data="a"), "s2": key(data="b")}}}}, token=alice)
        self.assertEqual(resp, {"etag": "1", "count": 2})
        resp = await self.ok("PUT", self._keys(version, "!other:test.local"),
                             {"sessions": {"s3": key()}}, token=alice)
        self.assertEqual(resp, {"etag": "2", "count": 3})
        resp = await self.ok("PUT", self._keys(version, ROOM, "s4"), key(), token=alice)
        self.assertEqual(resp["count"], 4)
        everything = await self.ok("GET", self._keys(version), token=alice)
        self.assertEqual(sorted(everything["rooms"][ROOM]["sessions"]), ["s1", "s2", "s4"])
        self.assertEqual(await self.ok("GET", self._keys(version, ROOM, "s1"), token=alice),
                         key(data="a"))
        self.assertEqual(await self.ok("GET", self._keys(version, "!none:test.local"),
                                       token=alice), {"sessions": {}})
        self.assertError(await self.request("GET", self._keys(version, ROOM, "nope"),
                                            token=alice), 404, "M_NOT_FOUND")
        resp = await self.ok("DELETE", self._keys(version, ROOM, "s1"), token=alice)
        self.assertEqual(resp["count"], 3)
        resp = await self.ok("DELETE", self._keys(version, ROOM), token=alice)
        self.assertEqual(resp["count"], 1)
        resp = await self.ok("DELETE", self._keys(version), token=alice)
        self.assertEqual(resp["count"], 0)
        info = await self.ok("GET", f"{V3}/room_keys/version", token=alice)
        self.assertEqual((info["count"], info["etag"]), (0, resp["etag"]))
        status, resp = await self.request("GET", f"{V3}/room_keys/keys", token=alice)
        self.assertEqual((status, resp["errcode"]), (400, "M_MISSING_PARAM"))

    async def test_replacement_rule(self):
        """A verified key beats an unverified one, then a lower first_message_index,
        then a lower forwarded_count; a worse key leaves the etag unchanged."""
        _, alice = await self.register("alice")
        version = await self._new_version(alice)
        path = self._keys(version, ROOM, "s")

        async def put(k: dict) -> dict:
            await self.ok("PUT", path, k, token=alice)
            return await self.ok("GET", path, token=alice)

        self.assertEqual(await put(key(first=5, forwarded=2, data="a")),
                         key(first=5, forwarded=2, data="a"))
        self.assertEqual((await put(key(first=6, data="worse")))["session_data"],
                         {"ciphertext": "a"})
        self.assertEqual((await put(key(first=5, forwarded=1, data="b")))["session_data"],
                         {"ciphertext": "b"})
        self.assertEqual((await put(key(first=2, forwarded=3, data="c")))["session_data"],
                         {"ciphertext": "c"})
        self.assertEqual((await put(key(first=9, verified=True, data="d")))["session_data"],
                         {"ciphertext": "d"})
        self.assertEqual((await put(key(first=0, data="e")))["session_data"],
                         {"ciphertext": "d"})
        etag = (await self.ok("GET", f"{V3}/room_keys/version", token=alice))["etag"]
        await put(key(first=0, data="e"))
        self.assertEqual((await self.ok("GET", f"{V3}/room_keys/version", token=alice))[
            "etag"], etag)

    async def test_wrong_version(self):
        """Keys for a version that is not the current one: 403
        M_WRONG_ROOM_KEYS_VERSION with current_version; reading it still works."""
        _, alice = await self.register("alice")
        old = await self._new_version(alice)
        new = await self._new_version(alice)
        status, resp = await self.request("PUT", self._keys(old, ROOM, "s"), key(),
                                          token=alice)
        self.assertEqual((status, resp["errcode"], resp["current_version"]),
                         (403, "M_WRONG_ROOM_KEYS_VERSION", new))
        self.assertEqual(await self.ok("GET", self._keys(old), token=alice), {"rooms": {}})
        self.assertError(await self.request("PUT", self._keys("99", ROOM, "s"), key(),
                                            token=alice), 404, "M_NOT_FOUND")
