"""Send-to-device messages: delivered by /sync to the right devices, once, and
deleted once a later sync acknowledges them."""

from __future__ import annotations

from tests.client_api.sync_helpers import SyncTestCase, V3, q


class ToDeviceTests(SyncTestCase):
    async def _send(self, token: str, messages: dict, txn: str = "t1",
                    event_type: str = "org.example.ping") -> None:
        await self.ok("PUT", f"{V3}/sendToDevice/{event_type}/{txn}",
                      {"messages": messages}, token=token)

    async def test_delivery_and_deletion(self):
        """A message reaches its device's sync, is repeated until acknowledged by a
        later since, and is deleted then."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob", device_id="BOBPHONE")
        await self._send(alice, {bob_id: {"BOBPHONE": {"n": 1}}})
        first = await self.sync_ok(bob)
        self.assertEqual(first["to_device"]["events"], [
            {"sender": alice_id, "type": "org.example.ping", "content": {"n": 1}}])
        # not acknowledged yet: an initial sync delivers it again
        self.assertEqual(len((await self.sync_ok(bob))["to_device"]["events"]), 1)
        second = await self.sync_ok(bob, since=first["next_batch"])
        self.assertEqual(second["to_device"]["events"], [])
        self.assertEqual(await self.c["store"].to_device.get_messages(bob_id, "BOBPHONE", 0),
                         ([], await self.c["store"].current_position("to_device")))
        self.assertEqual((await self.sync_ok(bob))["to_device"]["events"], [])

    async def test_wildcard_and_other_devices(self):
        """``*`` reaches every device of the user; a named device only itself."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob", device_id="ONE")
        status, login = await self.request("POST", f"{V3}/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
            "password": "correct horse", "device_id": "TWO"})
        self.assertEqual(status, 200, login)
        bob_two = login["access_token"]
        await self._send(alice, {bob_id: {"*": {"all": True}}}, txn="a")
        await self._send(alice, {bob_id: {"TWO": {"only": 2}}}, txn="b")
        one = [e["content"] for e in (await self.sync_ok(bob))["to_device"]["events"]]
        two = [e["content"] for e in (await self.sync_ok(bob_two))["to_device"]["events"]]
        self.assertEqual(one, [{"all": True}])
        self.assertEqual(two, [{"all": True}, {"only": 2}])

    async def test_retried_transaction_is_delivered_once(self):
        """The same txn ID from the same device queues the messages once."""
        _, alice = await self.register("alice")
        bob_id, bob = await self.register("bob", device_id="B")
        await self._send(alice, {bob_id: {"B": {"n": 1}}}, txn="same")
        await self._send(alice, {bob_id: {"B": {"n": 1}}}, txn="same")
        self.assertEqual(len((await self.sync_ok(bob))["to_device"]["events"]), 1)

    async def test_bad_bodies(self):
        """messages must map user IDs to device IDs to objects."""
        _, alice = await self.register("alice")
        self.assertError(await self.request("PUT", f"{V3}/sendToDevice/t/z", {},
                                            token=alice), 400, "M_MISSING_PARAM")
        for body in ({"messages": []}, {"messages": {"@bob:test.local": []}},
                     {"messages": {"@bob:test.local": {"D": "x"}}}):
            status, resp = await self.request("PUT", f"{V3}/sendToDevice/t/{q('x')}", body,
                                              token=alice)
            self.assertEqual((status, resp["errcode"]), (400, "M_BAD_JSON"), body)
        self.assertError(await self.request(
            "PUT", f"{V3}/sendToDevice/t/y", {"messages": {"bob": {}}}, token=alice),
            400, "M_INVALID_PARAM")
