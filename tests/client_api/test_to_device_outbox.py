"""Send-to-device through the federation seam: messages for other servers go to the
federation outbox, one EDU per server; a transaction racing its retry is queued once."""

from __future__ import annotations

from twisted.internet import defer

from homeserver.store.outbox import DIRECT_TO_DEVICE
from tests.client_api.sync_helpers import SyncTestCase, V3


class ToDeviceOutboxTests(SyncTestCase):
    async def test_remote_messages_go_to_the_outbox(self):
        """Messages for remote users become one m.direct_to_device entry per server,
        while local ones are delivered."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob", device_id="B")
        await self.ok("PUT", f"{V3}/sendToDevice/m.room_key_request/t1", {"messages": {
            bob_id: {"B": {"n": 1}},
            "@x:one.example": {"D1": {"n": 2}}, "@y:one.example": {"*": {"n": 3}},
            "@z:two.example": {"D3": {"n": 4}}}}, token=alice)
        self.assertEqual(len((await self.sync_ok(bob))["to_device"]["events"]), 1)
        entries = await self.c["store"].federation_outbox.entries(0)
        edus = [e for e in entries if e.edu_type == DIRECT_TO_DEVICE]
        self.assertEqual([e.destination for e in edus], ["one.example", "two.example"])
        first = edus[0].content
        self.assertEqual((first["sender"], first["type"]),
                         (alice_id, "m.room_key_request"))
        self.assertEqual(first["messages"], {"@x:one.example": {"D1": {"n": 2}},
                                             "@y:one.example": {"*": {"n": 3}}})
        self.assertNotEqual(first["message_id"], edus[1].content["message_id"])

    async def test_racing_retry_is_queued_once(self):
        """Two identical requests in flight together deliver the message once."""
        _, alice = await self.register("alice")
        bob_id, bob = await self.register("bob", device_id="B")
        body = {"messages": {bob_id: {"B": {"n": 1}}}}
        results = await defer.gatherResults([defer.ensureDeferred(self.request(
            "PUT", f"{V3}/sendToDevice/t/same", body, token=alice)) for _ in range(3)])
        self.assertEqual([status for status, _ in results], [200, 200, 200])
        self.assertEqual(len((await self.sync_ok(bob))["to_device"]["events"]), 1)
