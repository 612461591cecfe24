"""Typing notifications, receipts and read markers over HTTP, as /sync shows them."""

from __future__ import annotations

from tests.client_api.sync_helpers import SyncTestCase, V3, ephemeral, q


class TypingTests(SyncTestCase):
    async def test_typing_appears_in_sync_and_stops(self):
        """A member's typing shows as m.typing in others' syncs until it stops."""
        alice_id, alice = await self.register("alice")
        _, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        since = (await self.sync_ok(bob))["next_batch"]
        await self.ok("PUT", self.room(room_id, f"/typing/{q(alice_id)}"),
                      {"typing": True, "timeout": 30000}, token=alice)
        body = await self.sync_ok(bob, since=since)
        self.assertEqual(ephemeral(body, room_id, "m.typing"),
                         [{"type": "m.typing", "content": {"user_ids": [alice_id]}}])
        # an initial sync sees who is typing now
        self.assertEqual(ephemeral(await self.sync_ok(bob), room_id, "m.typing")[0]
                         ["content"]["user_ids"], [alice_id])
        await self.ok("PUT", self.room(room_id, f"/typing/{q(alice_id)}"),
                      {"typing": False}, token=alice)
        body = await self.sync_ok(bob, since=body["next_batch"])
        self.assertEqual(ephemeral(body, room_id, "m.typing")[0]["content"]["user_ids"], [])

    async def test_typing_errors(self):
        """Non-members and other users' typing are 403; a bad body is 400."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice)
        path = self.room(room_id, f"/typing/{q(bob_id)}")
        self.assertError(await self.request("PUT", path, {"typing": True}, token=bob),
                         403, "M_FORBIDDEN")
        self.assertError(await self.request("PUT", path, {"typing": True}, token=alice),
                         403, "M_FORBIDDEN")
        own = self.room(room_id, f"/typing/{q(alice_id)}")
        self.assertError(await self.request("PUT", own, {"typing": "yes"}, token=alice),
                         400, "M_BAD_JSON")
        self.assertError(await self.request("PUT", own, {}, token=alice),
                         400, "M_MISSING_PARAM")


class ReceiptTests(SyncTestCase):
    async def _room_with_message(self):
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        event_id = await self.send(alice, room_id, {"msgtype": "m.text", "body": "hi"})
        return (alice_id, alice), (bob_id, bob), room_id, event_id

    async def test_read_receipt_seen_by_others(self):
        """An m.read receipt appears in everyone's ephemeral events with its ts."""
        (alice_id, alice), (bob_id, bob), room_id, event_id = await self._room_with_message()
        since = (await self.sync_ok(alice))["next_batch"]
        await self.ok("POST", self.room(room_id, f"/receipt/m.read/{q(event_id)}"), {},
                      token=bob)
        body = await self.sync_ok(alice, since=since)
        [receipt] = ephemeral(body, room_id, "m.receipt")
        self.assertIn("ts", receipt["content"][event_id]["m.read"][bob_id])
        self.assertNotIn("thread_id", receipt["content"][event_id]["m.read"][bob_id])

    async def test_private_receipt_only_for_its_sender(self):
        """m.read.private reaches the sender's own sync and nobody else's."""
        (alice_id, alice), (bob_id, bob), room_id, event_id = await self._room_with_message()
        alice_since = (await self.sync_ok(alice))["next_batch"]
        bob_since = (await self.sync_ok(bob))["next_batch"]
        await self.ok("POST", self.room(room_id, f"/receipt/m.read.private/{q(event_id)}"),
                      {}, token=bob)
        self.assertEqual(ephemeral(await self.sync_ok(alice, since=alice_since), room_id,
                                   "m.receipt"), [])
        self.assertEqual(ephemeral(await self.sync_ok(alice), room_id, "m.receipt"), [])
        [mine] = ephemeral(await self.sync_ok(bob, since=bob_since), room_id, "m.receipt")
        self.assertIn(bob_id, mine["content"][event_id]["m.read.private"])

    async def test_threaded_receipt_and_validation(self):
        """thread_id is kept; empty thread_id, m.fully_read with a thread, unknown
        types and events are refused."""
        (alice_id, alice), (bob_id, bob), room_id, event_id = await self._room_with_message()
        await self.ok("POST", self.room(room_id, f"/receipt/m.read/{q(event_id)}"),
                      {"thread_id": "main"}, token=bob)
        [receipt] = ephemeral(await self.sync_ok(alice), room_id, "m.receipt")
        self.assertEqual(receipt["content"][event_id]["m.read"][bob_id]["thread_id"], "main")
        path = self.room(room_id, f"/receipt/m.read/{q(event_id)}")
        self.assertError(await self.request("POST", path, {"thread_id": ""}, token=bob),
                         400, "M_INVALID_PARAM")
        self.assertError(await self.request(
            "POST", self.room(room_id, f"/receipt/m.fully_read/{q(event_id)}"),
            {"thread_id": "main"}, token=bob), 400, "M_INVALID_PARAM")
        self.assertError(await self.request(
            "POST", self.room(room_id, f"/receipt/m.seen/{q(event_id)}"), {}, token=bob),
            400, "M_INVALID_PARAM")
        self.assertError(await self.request(
            "POST", self.room(room_id, "/receipt/m.read/$nope"), {}, token=bob),
            404, "M_NOT_FOUND")
        _, carol = await self.register("carol")
        self.assertError(await self.request("POST", path, {}, token=carol),
                         403, "M_FORBIDDEN")

    async def test_receipts_never_move_back(self):
        """A receipt for an earlier event than the current one changes nothing."""
        (alice_id, alice), (bob_id, bob), room_id, first = await self._room_with_message()
        second = await self.send(alice, room_id, {"msgtype": "m.text", "body": "2"})
        await self.ok("POST", self.room(room_id, f"/receipt/m.read/{q(second)}"), {},
                      token=bob)
        await self.ok("POST", self.room(room_id, f"/receipt/m.read/{q(first)}"), {},
                      token=bob)
        [receipt] = ephemeral(await self.sync_ok(alice), room_id, "m.receipt")
        self.assertIn(second, receipt["content"])
        self.assertNotIn(first, receipt["content"])

    async def test_read_markers(self):
        """read_markers sets m.fully_read room account data and the receipts;
        m.fully_read cannot be set as account data directly."""
        (alice_id, alice), (bob_id, bob), room_id, event_id = await self._room_with_message()
        await self.ok("POST", self.room(room_id, "/read_markers"),
                      {"m.fully_read": event_id, "m.read.private": event_id}, token=bob)
        body = await self.sync_ok(bob)
        room = body["rooms"]["join"][room_id]
        self.assertIn({"type": "m.fully_read", "content": {"event_id": event_id}},
                      room["account_data"]["events"])
        [receipt] = ephemeral(body, room_id, "m.receipt")
        self.assertIn("m.read.private", receipt["content"][event_id])
        # the receipt endpoint with m.fully_read is the same marker, not a receipt
        await self.ok("POST", self.room(room_id, f"/receipt/m.fully_read/{q(event_id)}"),
                      {}, token=alice)
        self.assertEqual(await self.ok(
            "GET", f"{V3}/user/{q(alice_id)}/rooms/{q(room_id)}/account_data/m.fully_read",
            token=alice), {"event_id": event_id})
        self.assertError(await self.request(
            "PUT", f"{V3}/user/{q(bob_id)}/rooms/{q(room_id)}/account_data/m.fully_read",
            {"event_id": event_id}, token=bob), 405, "M_BAD_JSON")
        self.assertError(await self.request("POST", self.room(room_id, "/read_markers"),
                                            {"m.read": 5}, token=bob), 400, "M_BAD_JSON")

    async def test_fully_read_never_moves_back(self):
        """Setting the fully read marker to an earlier event keeps the later one."""
        (alice_id, alice), (bob_id, bob), room_id, first = await self._room_with_message()
        second = await self.send(alice, room_id, {"msgtype": "m.text", "body": "2"})
        for event_id in (second, first):
            await self.ok("POST", self.room(room_id, "/read_markers"),
                          {"m.fully_read": event_id}, token=bob)
        self.assertEqual(await self.ok(
            "GET", f"{V3}/user/{q(bob_id)}/rooms/{q(room_id)}/account_data/m.fully_read",
            token=bob), {"event_id": second})
