"""Cross-signing (spec: "Cross-signing"): key uploads with User-Interactive
Authentication, signature uploads with their checks, and what /keys/query shows."""

from __future__ import annotations

from tests.client_api.e2e_helpers import V3, cross_signing_key, device_keys, sign
from tests.client_api.harness import password_auth
from tests.client_api.sync_helpers import SyncTestCase


class CrossSigningTests(SyncTestCase):
    async def _user_with_device(self, name: str, device: str = "DEV"):
        user_id, token = await self.register(name, device_id=device)
        keys, device_key = device_keys(user_id, device)
        await self.ok("POST", f"{V3}/keys/upload", {"device_keys": keys}, token=token)
        return user_id, token, keys, device_key

    async def _cross_sign(self, user_id: str, token: str):
        master, master_key = cross_signing_key(user_id, "master")
        ssk, ssk_key = cross_signing_key(user_id, "self_signing", master_key)
        usk, usk_key = cross_signing_key(user_id, "user_signing", master_key)
        await self.ok("POST", f"{V3}/keys/device_signing/upload", {
            "master_key": master, "self_signing_key": ssk, "user_signing_key": usk},
            token=token)
        return master, master_key, ssk, ssk_key, usk, usk_key

    async def _query(self, token: str, *users: str) -> dict:
        return await self.ok("POST", f"{V3}/keys/query",
                             {"device_keys": {u: [] for u in users}}, token=token)

    async def test_first_upload_without_uia_then_uia(self):
        """The first upload needs no UIA; replacing keys needs the password; the
        same keys again need nothing."""
        alice_id, alice, _, _ = await self._user_with_device("alice")
        master, master_key, ssk, _, usk, _ = await self._cross_sign(alice_id, alice)
        new_master, _ = cross_signing_key(alice_id, "master")
        status, resp = await self.request("POST", f"{V3}/keys/device_signing/upload",
                                          {"master_key": new_master}, token=alice)
        self.assertEqual(status, 401, resp)
        self.assertIn({"stages": ["m.login.password"]}, resp["flows"])
        self.assertEqual((await self._query(alice, alice_id))["master_keys"][alice_id],
                         master)
        await self.ok("POST", f"{V3}/keys/device_signing/upload", {
            "master_key": new_master, "auth": password_auth("alice",
                                                            session=resp["session"])},
            token=alice)
        self.assertEqual((await self._query(alice, alice_id))["master_keys"][alice_id],
                         new_master)
        await self.ok("POST", f"{V3}/keys/device_signing/upload",
                      {"master_key": new_master}, token=alice)

    async def test_query_shows_user_signing_key_to_its_owner_only(self):
        """master and self-signing keys are public; the user-signing key is not."""
        alice_id, alice, _, _ = await self._user_with_device("alice")
        master, _, ssk, _, usk, _ = await self._cross_sign(alice_id, alice)
        _, bob = await self.register("bob")
        own = await self._query(alice, alice_id)
        self.assertEqual((own["master_keys"], own["self_signing_keys"],
                          own["user_signing_keys"]),
                         ({alice_id: master}, {alice_id: ssk}, {alice_id: usk}))
        other = await self._query(bob, alice_id)
        self.assertEqual(other["self_signing_keys"], {alice_id: ssk})
        self.assertEqual(other["user_signing_keys"], {})

    async def test_upload_checks(self):
        """Keys must be the caller's, name their usage, hold one key, and be signed
        by the master key; without a master key nothing else can be uploaded."""
        alice_id, alice, _, _ = await self._user_with_device("alice")
        master, master_key = cross_signing_key(alice_id, "master")
        unsigned_ssk, _ = cross_signing_key(alice_id, "self_signing")
        wrong_usage, _ = cross_signing_key(alice_id, "user_signing", master_key)
        bobs, _ = cross_signing_key("@bob:test.local", "master")
        two_keys = dict(master, keys={**master["keys"], "ed25519:x": "x"})
        cases = [({"self_signing_key": unsigned_ssk}, 400, "M_MISSING_PARAM"),
                 ({"master_key": master, "self_signing_key": unsigned_ssk}, 400,
                  "M_INVALID_SIGNATURE"),
                 ({"master_key": master, "self_signing_key": wrong_usage}, 400,
                  "M_INVALID_PARAM"),
                 ({"master_key": bobs}, 400, "M_INVALID_PARAM"),
                 ({"master_key": two_keys}, 400, "M_INVALID_PARAM"),
                 ({"master_key": "x"}, 400, "M_BAD_JSON"),
                 ({"master_key": dict(master, signatures=[])}, 400, "M_BAD_JSON")]
        for body, status, errcode in cases:
            self.assertError(await self.request("POST", f"{V3}/keys/device_signing/upload",
                                                body, token=alice), status, errcode)
        self.assertEqual((await self._query(alice, alice_id))["master_keys"], {})

    async def test_cross_signing_change_reaches_room_mates(self):
        """New cross-signing keys list the user in room mates' device_lists.changed."""
        alice_id, alice, _, _ = await self._user_with_device("alice")
        _, bob = await self.register("bob")
        room = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room)
        since = (await self.sync_ok(bob))["next_batch"]
        await self._cross_sign(alice_id, alice)
        self.assertIn(alice_id, (await self.sync_ok(bob, since=since))[
            "device_lists"]["changed"])

    async def test_self_signatures(self):
        """A device signed by the self-signing key and the master key signed by a
        device show up in /keys/query; bad ones are per-key failures."""
        alice_id, alice, keys, device_key = await self._user_with_device("alice")
        master, master_key, ssk, ssk_key, _, _ = await self._cross_sign(alice_id, alice)
        signed_device = sign(keys, alice_id, ssk_key)
        signed_master = sign(master, alice_id, device_key)
        forged, _ = device_keys(alice_id, "DEV")  # another key than the stored one
        resp = await self.ok("POST", f"{V3}/keys/signatures/upload", {alice_id: {
            "DEV": signed_device, master_key.version: signed_master}}, token=alice)
        self.assertEqual(resp, {"failures": {}})
        got = await self._query(alice, alice_id)
        self.assertEqual(got["device_keys"][alice_id]["DEV"]["signatures"][alice_id][
            ssk_key.key_id], signed_device["signatures"][alice_id][ssk_key.key_id])
        self.assertIn(device_key.key_id, got["master_keys"][alice_id]["signatures"][alice_id])

        bad_sig = sign(forged, alice_id, ssk_key)
        wrong_signer = sign(keys, alice_id, master_key)
        unknown = sign(dict(keys, device_id="NOPE"), alice_id, ssk_key)
        resp = await self.ok("POST", f"{V3}/keys/signatures/upload", {alice_id: {
            "DEV": bad_sig}}, token=alice)
        self.assertEqual(resp["failures"][alice_id]["DEV"]["errcode"], "M_INVALID_PARAM")
        resp = await self.ok("POST", f"{V3}/keys/signatures/upload", {alice_id: {
            "DEV": wrong_signer, "NOPE": unknown}}, token=alice)
        self.assertEqual(resp["failures"][alice_id]["DEV"]["errcode"],
                         "M_INVALID_SIGNATURE")
        self.assertEqual(resp["failures"][alice_id]["NOPE"]["status"], 404)
        tampered = dict(signed_device)
        tampered["signatures"] = {alice_id: {ssk_key.key_id: "AAAA" + "A" * 82}}
        resp = await self.ok("POST", f"{V3}/keys/signatures/upload",
                             {alice_id: {"DEV": tampered}}, token=alice)
        self.assertEqual(resp["failures"][alice_id]["DEV"]["errcode"],
                         "M_INVALID_SIGNATURE")

    async def test_signing_another_user(self):
        """A user-signing signature of another user's master key is shown to the
        signer only; without a user-signing key it fails."""
        alice_id, alice, _, _ = await self._user_with_device("alice")
        bob_id, bob, _, _ = await self._user_with_device("bob")
        _, carol = await self.register("carol")
        resp = await self.ok("POST", f"{V3}/keys/signatures/upload",
                             {bob_id: {"x": {"a": 1}}}, token=alice)
        self.assertEqual(resp["failures"][bob_id]["x"]["status"], 404)
        _, _, _, _, _, usk_key = await self._cross_sign(alice_id, alice)
        bob_master, bob_master_key, *_ = await self._cross_sign(bob_id, bob)
        signed = sign(bob_master, alice_id, usk_key)
        resp = await self.ok("POST", f"{V3}/keys/signatures/upload",
                             {bob_id: {bob_master_key.version: signed,
                                       "OTHER": signed}}, token=alice)
        self.assertEqual(list(resp["failures"][bob_id]), ["OTHER"])
        seen = (await self._query(alice, bob_id))["master_keys"][bob_id]
        self.assertIn(usk_key.key_id, seen["signatures"][alice_id])
        hidden = (await self._query(carol, bob_id))["master_keys"][bob_id]
        self.assertNotIn(alice_id, hidden.get("signatures", {}))
        remote = await self.ok("POST", f"{V3}/keys/signatures/upload",
                               {"@d:far.example": {"k": {}}}, token=alice)
        self.assertEqual(remote["failures"]["@d:far.example"]["k"]["status"], 503)

    async def test_malformed_signature_upload(self):
        """A body that does not map users to key IDs to objects is 400 M_BAD_JSON."""
        alice_id, alice = await self.register("alice")
        for body in ({alice_id: []}, {alice_id: {"DEV": "x"}}):
            self.assertError(await self.request("POST", f"{V3}/keys/signatures/upload",
                                                body, token=alice), 400, "M_BAD_JSON")
        # odd shapes inside a signed object are per-key failures, never a 500
        await self._user_with_device("bob")
        resp = await self.ok("POST", f"{V3}/keys/signatures/upload", {alice_id: {
            "DEV": {"signatures": []}, "X": {"signatures": {alice_id: []}}}}, token=alice)
        self.assertEqual(sorted(resp["failures"][alice_id]), ["DEV", "X"])
