"""The key management API (spec: "End-to-End Encryption", "Key management API") and
its /sync extensions: uploads, queries, claims, device-list changes."""

from __future__ import annotations

from tests.client_api.e2e_helpers import V3, device_keys
from tests.client_api.harness import q
from tests.client_api.sync_helpers import SyncTestCase


class KeysTestCase(SyncTestCase):
    async def upload(self, token: str, body: dict) -> dict:
        return await self.ok("POST", f"{V3}/keys/upload", body, token=token)

    async def query(self, token: str, wanted: dict) -> dict:
        return await self.ok("POST", f"{V3}/keys/query", {"device_keys": wanted},
                             token=token)

    async def claim(self, token: str, wanted: dict) -> dict:
        return await self.ok("POST", f"{V3}/keys/claim", {"one_time_keys": wanted},
                             token=token)


class UploadTests(KeysTestCase):
    async def test_upload_counts_and_sync(self):
        """Uploaded one-time and fallback keys are counted by upload and by /sync."""
        alice_id, alice = await self.register("alice", device_id="DEV")
        keys, _ = device_keys(alice_id, "DEV")
        resp = await self.upload(alice, {
            "device_keys": keys,
            "one_time_keys": {"signed_curve25519:A": {"key": "a"},
                              "signed_curve25519:B": {"key": "b"},
                              "curve25519:C": "c"},
            "fallback_keys": {"signed_curve25519:F": {"key": "f", "fallback": True}}})
        self.assertEqual(resp, {"one_time_key_counts": {"signed_curve25519": 2,
                                                        "curve25519": 1}})
        body = await self.sync_ok(alice)
        self.assertEqual(body["device_one_time_keys_count"],
                         {"signed_curve25519": 2, "curve25519": 1})
        self.assertEqual(body["device_unused_fallback_key_types"], ["signed_curve25519"])

    async def test_empty_upload_reports_zero(self):
        """An empty upload answers signed_curve25519: 0, as clients expect."""
        _, alice = await self.register("alice", device_id="DEV")
        self.assertEqual(await self.upload(alice, {}),
                         {"one_time_key_counts": {"signed_curve25519": 0}})
        body = await self.sync_ok(alice)
        self.assertEqual(body["device_unused_fallback_key_types"], [])

    async def test_device_keys_must_be_the_callers(self):
        """device_keys for another user or device are 400 M_INVALID_PARAM."""
        alice_id, alice = await self.register("alice", device_id="DEV")
        for user, device in (("@bob:test.local", "DEV"), (alice_id, "OTHER")):
            keys, _ = device_keys(user, device)
            self.assertError(await self.request("POST", f"{V3}/keys/upload",
                                                {"device_keys": keys}, token=alice),
                             400, "M_INVALID_PARAM")

    async def test_bad_self_signature(self):
        """Device keys not signed by the device's own key are M_INVALID_SIGNATURE."""
        alice_id, alice = await self.register("alice", device_id="DEV")
        keys, _ = device_keys(alice_id, "DEV")
        keys["algorithms"] = ["m.olm.v1.curve25519-aes-sha2"]  # signature no longer fits
        self.assertError(await self.request("POST", f"{V3}/keys/upload",
                                            {"device_keys": keys}, token=alice),
                         400, "M_INVALID_SIGNATURE")
        unsigned = dict(keys)
        del unsigned["signatures"]
        self.assertError(await self.request("POST", f"{V3}/keys/upload",
                                            {"device_keys": unsigned}, token=alice),
                         400, "M_MISSING_PARAM")
        self.assertEqual((await self.query(alice, {alice_id: []}))["device_keys"],
                         {alice_id: {}})

    async def test_malformed_bodies(self):
        """Wrong types are 400 M_BAD_JSON, a bad key ID M_INVALID_PARAM; nothing is
        stored from a rejected request."""
        _, alice = await self.register("alice", device_id="DEV")
        for body in ({"one_time_keys": []}, {"device_keys": "x"},
                     {"one_time_keys": {"signed_curve25519:A": 5}},
                     {"fallback_keys": {"signed_curve25519:A": []}}):
            self.assertError(await self.request("POST", f"{V3}/keys/upload", body,
                                                token=alice), 400, "M_BAD_JSON")
        self.assertError(await self.request(
            "POST", f"{V3}/keys/upload",
            {"one_time_keys": {"signed_curve25519:A": {}, "nocolon": {}}}, token=alice),
            400, "M_INVALID_PARAM")
        self.assertEqual((await self.upload(alice, {}))["one_time_key_counts"],
                         {"signed_curve25519": 0})

    async def test_one_time_key_conflict_is_atomic(self):
        """Re-uploading a key ID with other content is refused, and the request's
        other keys are not stored either; the same key again is accepted."""
        _, alice = await self.register("alice", device_id="DEV")
        await self.upload(alice, {"one_time_keys": {"signed_curve25519:A": {"key": "a"}}})
        self.assertError(await self.request("POST", f"{V3}/keys/upload", {
            "one_time_keys": {"signed_curve25519:A": {"key": "changed"},
                              "signed_curve25519:B": {"key": "b"}}}, token=alice),
            400, "M_INVALID_PARAM")
        resp = await self.upload(
            alice, {"one_time_keys": {"signed_curve25519:A": {"key": "a"}}})
        self.assertEqual(resp["one_time_key_counts"], {"signed_curve25519": 1})

    async def test_guest_without_upload_rights_needs_token(self):
        """Uploading without an access token is 401 M_MISSING_TOKEN."""
        self.assertError(await self.request("POST", f"{V3}/keys/upload", {}),
                         401, "M_MISSING_TOKEN")


class QueryTests(KeysTestCase):
    async def test_query_shows_keys_with_display_name(self):
        """Query returns each device's keys as uploaded plus its display name."""
        alice_id, alice = await self.register("alice", device_id="DEV")
        await self.ok("PUT", f"{V3}/devices/DEV", {"display_name": "Phone"}, token=alice)
        keys, _ = device_keys(alice_id, "DEV")
        await self.upload(alice, {"device_keys": keys})
        bob_id, bob = await self.register("bob")
        resp = await self.query(bob, {alice_id: []})
        got = resp["device_keys"][alice_id]["DEV"]
        self.assertEqual(got["unsigned"], {"device_display_name": "Phone"})
        del got["unsigned"]
        self.assertEqual(got, keys)
        self.assertEqual(resp["failures"], {})
        self.assertEqual((await self.query(bob, {alice_id: ["NOPE"]}))["device_keys"],
                         {alice_id: {}})

    async def test_remote_users_fail_and_bad_ids_are_refused(self):
        """A remote user's server is listed in failures; a bad user ID is 400."""
        alice_id, alice = await self.register("alice")
        resp = await self.query(alice, {"@x:elsewhere.example": [], alice_id: []})
        self.assertEqual(resp["failures"]["elsewhere.example"]["status"], 503)
        self.assertEqual(resp["device_keys"], {alice_id: {}})
        self.assertError(await self.request("POST", f"{V3}/keys/query",
                                            {"device_keys": {"bob": []}}, token=alice),
                         400, "M_INVALID_PARAM")
        for body in ({}, {"device_keys": []}, {"device_keys": {alice_id: "DEV"}}):
            status, resp = await self.request("POST", f"{V3}/keys/query", body, token=alice)
            self.assertEqual(status, 400, resp)

    async def test_deleted_device_loses_its_keys(self):
        """Deleting a device removes its keys from query and bumps the device list."""
        alice_id, alice = await self.register("alice", device_id="DEV")
        keys, _ = device_keys(alice_id, "DEV")
        await self.upload(alice, {"device_keys": keys,
                                  "one_time_keys": {"signed_curve25519:A": {"k": 1}}})
        _, bob = await self.register("bob")
        await self.c["device_manager"].delete_devices(alice_id, ["DEV"])
        self.assertEqual((await self.query(bob, {alice_id: []}))["device_keys"],
                         {alice_id: {}})
        self.assertEqual(await self.c["store"].e2e_keys.claim(
            [(alice_id, "DEV", "signed_curve25519")]), {})


class ClaimTests(KeysTestCase):
    async def test_one_time_keys_then_fallback(self):
        """Claims take one-time keys one by one, then the fallback key, which is
        marked used but handed out again."""
        alice_id, alice = await self.register("alice", device_id="DEV")
        await self.upload(alice, {
            "one_time_keys": {"signed_curve25519:A": {"key": "a"}},
            "fallback_keys": {"signed_curve25519:F": {"key": "f", "fallback": True}}})
        _, bob = await self.register("bob")
        want = {alice_id: {"DEV": "signed_curve25519"}}
        first = await self.claim(bob, want)
        self.assertEqual(first, {"one_time_keys": {alice_id: {"DEV": {
            "signed_curve25519:A": {"key": "a"}}}}, "failures": {}})
        body = await self.sync_ok(alice)
        self.assertEqual(body["device_one_time_keys_count"], {"signed_curve25519": 0})
        self.assertEqual(body["device_unused_fallback_key_types"], ["signed_curve25519"])
        for _ in range(2):
            again = await self.claim(bob, want)
            self.assertEqual(again["one_time_keys"][alice_id]["DEV"],
                             {"signed_curve25519:F": {"key": "f", "fallback": True}})
        self.assertEqual((await self.sync_ok(alice))["device_unused_fallback_key_types"],
                         [])
        # a new fallback key is unused again; the same one re-uploaded stays used
        await self.upload(alice, {"fallback_keys": {
            "signed_curve25519:F": {"key": "f", "fallback": True}}})
        self.assertEqual((await self.sync_ok(alice))["device_unused_fallback_key_types"],
                         [])
        await self.upload(alice, {"fallback_keys": {
            "signed_curve25519:G": {"key": "g", "fallback": True}}})
        self.assertEqual((await self.sync_ok(alice))["device_unused_fallback_key_types"],
                         ["signed_curve25519"])

    async def test_nothing_to_claim_and_remote(self):
        """Devices without keys are left out; remote users end in failures."""
        alice_id, alice = await self.register("alice", device_id="DEV")
        resp = await self.claim(alice, {alice_id: {"DEV": "signed_curve25519"},
                                        "@z:far.example": {"D": "signed_curve25519"}})
        self.assertEqual(resp["one_time_keys"], {})
        self.assertEqual(list(resp["failures"]), ["far.example"])
        for body in ({}, {"one_time_keys": {alice_id: ["DEV"]}},
                     {"one_time_keys": {alice_id: {"DEV": 1}}}):
            status, resp = await self.request("POST", f"{V3}/keys/claim", body, token=alice)
            self.assertEqual(status, 400, resp)


class DeviceListTests(KeysTestCase):
    async def _shared_room(self):
        alice_id, alice = await self.register("alice", device_id="A1")
        bob_id, bob = await self.register("bob", device_id="B1")
        room = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room)
        return alice_id, alice, bob_id, bob, room

    async def test_key_upload_reaches_room_mates(self):
        """A new device-keys upload lists the user in device_lists.changed of those
        sharing a room with them, and in /keys/changes; not of strangers."""
        alice_id, alice, bob_id, bob, _ = await self._shared_room()
        _, carol = await self.register("carol")
        since = (await self.sync_ok(alice))["next_batch"]
        carol_since = (await self.sync_ok(carol))["next_batch"]
        keys, _ = device_keys(bob_id, "B1")
        await self.upload(bob, {"device_keys": keys})
        body = await self.sync_ok(alice, since=since)
        self.assertIn(bob_id, body["device_lists"]["changed"])
        self.assertEqual(body["device_lists"]["left"], [])
        self.assertNotIn(bob_id, (await self.sync_ok(carol, since=carol_since))[
            "device_lists"]["changed"])
        changes = await self.ok("GET", f"{V3}/keys/changes?from={q(since)}&to="
                                f"{q(body['next_batch'])}", token=alice)
        self.assertIn(bob_id, changes["changed"])
        # the same keys again change nothing
        await self.upload(bob, {"device_keys": keys})
        again = await self.sync_ok(alice, since=body["next_batch"])
        self.assertNotIn(bob_id, again["device_lists"]["changed"])

    async def test_upload_wakes_a_waiting_sync(self):
        """A room mate's long-poll returns when keys change."""
        alice_id, alice, bob_id, bob, _ = await self._shared_room()
        since = (await self.sync_ok(alice))["next_batch"]
        waiting = self.sync_raw(alice, since=since, timeout=20000)
        keys, _ = device_keys(bob_id, "B1")
        await self.upload(bob, {"device_keys": keys})
        status, body = await waiting
        self.assertEqual(status, 200)
        self.assertIn(bob_id, body["device_lists"]["changed"])

    async def test_join_and_leave(self):
        """A newcomer to a shared room is in changed; one who no longer shares any
        room is in left (also when we are the one who left)."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room = await self.create_room(alice, preset="public_chat")
        since = (await self.sync_ok(alice))["next_batch"]
        await self.join(bob, room)
        body = await self.sync_ok(alice, since=since)
        self.assertIn(bob_id, body["device_lists"]["changed"])
        since = body["next_batch"]
        await self.leave(bob, room)
        body = await self.sync_ok(alice, since=since)
        self.assertEqual(body["device_lists"]["left"], [bob_id])
        changes = await self.ok("GET", f"{V3}/keys/changes?from={q(since)}", token=alice)
        self.assertEqual(changes["left"], [bob_id])
        # bob rejoins; then alice leaves: bob is left for alice
        await self.join(bob, room)
        since = (await self.sync_ok(alice))["next_batch"]
        await self.leave(alice, room)
        body = await self.sync_ok(alice, since=since)
        self.assertEqual(body["device_lists"]["left"], [bob_id])

    async def test_still_sharing_another_room_is_not_left(self):
        """Leaving one of two shared rooms does not put the user in left."""
        alice_id, alice, bob_id, bob, room = await self._shared_room()
        other = await self.create_room(alice, preset="public_chat")
        await self.join(bob, other)
        since = (await self.sync_ok(alice))["next_batch"]
        await self.leave(bob, room)
        body = await self.sync_ok(alice, since=since)
        self.assertEqual(body["device_lists"], {"changed": [], "left": []})

    async def test_left_room_hibernates_before_the_sync(self):
        """A leave in a room that hibernated before the client synced still reaches
        device_lists.left (the room's in-memory record is gone; the index is read)."""
        alice_id, alice, bob_id, bob, room = await self._shared_room()
        since = (await self.sync_ok(alice))["next_batch"]
        since = (await self.sync_ok(alice, since=since))["next_batch"]
        await self.leave(bob, room)
        await self.leave(alice, room)
        registry = self.c["rooms"]
        actor = await registry.get(room)
        await actor.drain()
        registry._hibernate(actor)
        self.assertNotIn(room, self.c["store"].streams.member_changes)
        body = await self.sync_ok(alice, since=since)
        self.assertEqual(body["device_lists"]["left"], [bob_id])

    async def test_changes_needs_from(self):
        """/keys/changes without from is 400; a malformed token is M_INVALID_PARAM."""
        _, alice = await self.register("alice")
        status, _ = await self.request("GET", f"{V3}/keys/changes", token=alice)
        self.assertEqual(status, 400)
        self.assertError(await self.request("GET", f"{V3}/keys/changes?from=nope",
                                            token=alice), 400, "M_INVALID_PARAM")
