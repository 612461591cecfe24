"""End to end: E2EE plumbing against the real server process, driven by matrix-nio.

python-olm is not installed, so nio cannot run its own Olm machine here; the keys are
made and signed with pynacl as a client would (``tests.client_api.e2e_helpers``) and
sent through nio's raw ``send``; everything else (registration, rooms, sync parsing,
to-device sending) is nio's own. Two users in an encrypted room upload device,
one-time and fallback keys, query and claim each other's keys, exchange a to-device
message, and see each other's new devices in ``device_lists.changed``.
"""

from __future__ import annotations

import json

import nio

from tests.client_api.e2e_helpers import device_keys
from tests.e2e.harness import as_deferred
from tests.e2e.nio_case import NioServerTestCase


class NioE2ee(NioServerTestCase):
    timeout = 180

    async def _raw(self, client: nio.AsyncClient, method: str, path: str,
                   body: dict | None = None) -> dict:
        resp = await client.send(method, "/_matrix/client/v3" + path,
                                 None if body is None else json.dumps(body),
                                 headers={"Authorization": f"Bearer {client.access_token}",
                                          "Content-Type": "application/json"})
        payload = await resp.json()
        self.assertEqual(resp.status, 200, payload)
        return payload

    async def _upload(self, client: nio.AsyncClient, n_keys: int) -> dict:
        keys, _ = device_keys(client.user_id, client.device_id)
        return await self._raw(client, "POST", "/keys/upload", {
            "device_keys": keys,
            "one_time_keys": {f"signed_curve25519:{client.device_id}{i}": {
                "key": f"k{i}"} for i in range(n_keys)},
            "fallback_keys": {f"signed_curve25519:{client.device_id}F": {
                "key": "f", "fallback": True}}})

    def test_keys_and_to_device(self):
        """Upload, query, claim, to-device and device-list changes with nio."""
        return as_deferred(self._scenario())

    async def _scenario(self):
        alice, bob = self.client("alice"), self.client("bob")
        await self._ok(alice.register("alice", "alice-pw", "Alice phone"),
                       nio.RegisterResponse)
        await self._ok(bob.register("bob", "bob-pw", "Bob laptop"), nio.RegisterResponse)
        created = await self._ok(alice.room_create(
            invite=[bob.user_id], initial_state=[{
                "type": "m.room.encryption", "state_key": "",
                "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]),
            nio.RoomCreateResponse)
        await self._ok(bob.join(created.room_id), nio.JoinResponse)

        counts = await self._upload(alice, 3)
        self.assertEqual(counts["one_time_key_counts"], {"signed_curve25519": 3})
        await self._upload(bob, 2)
        bob_since = (await self._ok(bob.sync(timeout=0), nio.SyncResponse)).next_batch

        # bob queries alice's keys and claims one of her one-time keys
        query = await self._raw(bob, "POST", "/keys/query",
                                {"device_keys": {alice.user_id: []}})
        got = query["device_keys"][alice.user_id][alice.device_id]
        self.assertEqual(got["unsigned"]["device_display_name"], "Alice phone")
        self.assertIn(f"ed25519:{alice.device_id}", got["keys"])
        claim = await self._raw(bob, "POST", "/keys/claim", {"one_time_keys": {
            alice.user_id: {alice.device_id: "signed_curve25519"}}})
        claimed = claim["one_time_keys"][alice.user_id][alice.device_id]
        self.assertEqual(len(claimed), 1)
        alice_sync = await self._ok(alice.sync(timeout=0), nio.SyncResponse)
        self.assertEqual(alice_sync.device_key_count.signed_curve25519, 2)

        # a to-device message from bob reaches alice's device, once
        await self._ok(bob.to_device(nio.event_builders.ToDeviceMessage(
            "org.example.hello", alice.user_id, alice.device_id, {"hi": 1}), "tx1"),
            nio.ToDeviceResponse)
        await self._ok(bob.to_device(nio.event_builders.ToDeviceMessage(
            "org.example.hello", alice.user_id, alice.device_id, {"hi": 1}), "tx1"),
            nio.ToDeviceResponse)
        resp = await self._ok(alice.sync(timeout=5000, since=alice_sync.next_batch),
                              nio.SyncResponse)
        hellos = [e.source for e in resp.to_device_events
                  if e.source.get("type") == "org.example.hello"]
        self.assertEqual(hellos, [{"sender": bob.user_id, "type": "org.example.hello",
                                   "content": {"hi": 1}}])
        after = await self._ok(alice.sync(timeout=0, since=resp.next_batch),
                               nio.SyncResponse)
        self.assertEqual(after.to_device_events, [])

        # alice logs in on a second device and uploads its keys: bob is told
        alice2 = self.client("alice")
        await self._ok(alice2.login("alice-pw", device_name="Alice tablet"),
                       nio.LoginResponse)
        await self._upload(alice2, 1)
        changed = await self._ok(bob.sync(timeout=5000, since=bob_since), nio.SyncResponse)
        self.assertIn(alice.user_id, changed.device_list.changed)
        query = await self._raw(bob, "POST", "/keys/query",
                                {"device_keys": {alice.user_id: []}})
        self.assertEqual(set(query["device_keys"][alice.user_id]),
                         {alice.device_id, alice2.device_id})
