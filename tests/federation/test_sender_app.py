"""The sender as wired in the real service tree: a room with a remote member, our
message, typing, receipt and to-device message each become a transaction to it."""

from __future__ import annotations

from urllib.parse import quote

from twisted.internet import reactor, task

from homeserver.events.pdu import PDU
from tests.client_api.harness import ServerTestCase
from tests.fakes.federation import FakeFederationClient
from tests.fakes.rooms import remote_event, remote_key

REMOTE = "remote.example"
BOB = f"@bob:{REMOTE}"


class SenderInTheAppTests(ServerTestCase):
    async def asyncSetUp(self) -> None:
        self.client = FakeFederationClient()
        # the one seam a test needs: transactions go to a fake instead of the network
        self.c["federation_sender"]._client = self.client
        self.alice, self.token = await self.register("alice")
        self.room_id = await self.create_room(self.token, preset="public_chat")
        actor = await self.c["rooms"].get(self.room_id)
        state = await actor.current_state()
        prev: list[PDU] = list((await actor.get_events(
            await actor.forward_extremities())).values())
        join = remote_event(self.room_id, actor.room_version.identifier, state, prev,
                            {"type": "m.room.member", "sender": BOB, "state_key": BOB,
                             "content": {"membership": "join"}}, remote_key(),
                            server=REMOTE)
        await actor.apply_remote_pdus([join])

    async def until(self, predicate, what: str) -> None:
        for _ in range(200):
            if predicate():
                return
            await task.deferLater(reactor, 0.02, lambda: None)
        self.fail(f"timed out waiting for {what}")

    def edus(self, edu_type: str) -> list[dict]:
        return [e for e in self.client.delivered(REMOTE, "edus")
                if e["edu_type"] == edu_type]

    async def test_message_becomes_a_transaction(self) -> None:
        """Our user's message reaches the remote member's server as a PDU."""
        await self.asyncSetUp()
        event_id = await self.send(self.token, self.room_id,
                                   {"msgtype": "m.text", "body": "hi bob"})
        await self.until(lambda: any(p["content"].get("body") == "hi bob"
                                     for p in self.client.delivered(REMOTE)), "the PDU")
        [pdu] = [p for p in self.client.delivered(REMOTE)
                 if p["content"].get("body") == "hi bob"]
        self.assertEqual(pdu["sender"], self.alice)
        self.assertEqual(pdu["room_id"], self.room_id)
        actor = await self.c["rooms"].get(self.room_id)
        self.assertEqual((await actor.get_event(event_id)).get_dict()["hashes"],
                         pdu["hashes"])
        destinations = await self.c["store"].federation_destinations.load()
        self.assertIn(REMOTE, destinations[1])

    async def test_typing_receipt_and_to_device(self) -> None:
        """Typing, a read receipt and a to-device message reach the remote server;
        the durable ones leave the outbox once delivered."""
        await self.asyncSetUp()
        event_id = await self.send(self.token, self.room_id, {"msgtype": "m.text",
                                                              "body": "x"})
        rid = quote(self.room_id)
        status, _ = await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{rid}/typing/{quote(self.alice)}",
            {"typing": True, "timeout": 10000}, token=self.token)
        self.assertEqual(status, 200)
        await self.until(lambda: self.edus("m.typing"), "m.typing")
        self.assertEqual(self.edus("m.typing")[0]["content"],
                         {"room_id": self.room_id, "user_id": self.alice, "typing": True})
        status, _ = await self.request(
            "POST", f"/_matrix/client/v3/rooms/{rid}/receipt/m.read/{quote(event_id)}",
            {}, token=self.token)
        self.assertEqual(status, 200)
        await self.until(lambda: self.edus("m.receipt"), "m.receipt")
        receipt = self.edus("m.receipt")[0]["content"][self.room_id]["m.read"][self.alice]
        self.assertEqual(receipt["event_ids"], [event_id])
        status, _ = await self.request(
            "PUT", "/_matrix/client/v3/sendToDevice/m.test/t1",
            {"messages": {BOB: {"BOBDEVICE": {"hello": "bob"}}}}, token=self.token)
        self.assertEqual(status, 200)
        await self.until(lambda: self.edus("m.direct_to_device"), "m.direct_to_device")
        self.assertEqual(self.edus("m.direct_to_device")[0]["content"]["messages"],
                         {BOB: {"BOBDEVICE": {"hello": "bob"}}})
        outbox = self.c["store"].federation_outbox
        for _ in range(50):
            if not await outbox.entries(0):
                break
            await task.deferLater(reactor, 0.02, lambda: None)
        self.assertEqual(await outbox.entries(0), [])
