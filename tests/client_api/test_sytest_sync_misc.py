"""Sytest's sync & misc behaviours, replayed request by request (tests/31sync/05presence.pl,
12receipts.pl, 30rooms/22profile.pl, 30rooms/40joinedapis.pl)."""

from __future__ import annotations

from tests.client_api.harness import q
from tests.client_api.sync_helpers import SyncTestCase, V3

PRESENCE_ONLY = {"presence": {"types": ["m.presence"]}}


class SytestSyncTests(SyncTestCase):
    async def filter_id(self, user_id: str, token: str, body: dict) -> str:
        resp = await self.ok("POST", f"{V3}/user/{q(user_id)}/filter", body, token=token)
        return resp["filter_id"]

    async def test_own_presence_in_initial_sync(self):
        """A user who synced sees themselves online in a fresh initial sync."""
        alice, token = await self.register("alice")
        fid = await self.filter_id(alice, token, {**PRESENCE_ONLY,
                                                  "account_data": {"types": []}})
        await self.sync_ok(token, filter=fid)
        body = await self.sync_ok(token, filter=fid)
        (mine,) = [e for e in body["presence"]["events"] if e["sender"] == alice]
        self.assertEqual(mine["content"]["presence"], "online")

    async def test_others_presence_in_incremental_sync(self):
        """B syncing (so going online) reaches A's incremental sync."""
        alice, a_token = await self.register("alice")
        bob, b_token = await self.register("bob")
        fa = await self.filter_id(alice, a_token, PRESENCE_ONLY)
        fb = await self.filter_id(bob, b_token, PRESENCE_ONLY)
        room_id = await self.create_room(a_token, preset="public_chat")
        await self.join(b_token, room_id)
        first = await self.sync_ok(a_token, filter=fa)
        second = await self.sync_ok(a_token, filter=fa, since=first["next_batch"])
        await self.sync_ok(b_token, filter=fb)
        body = await self.sync_ok(a_token, filter=fa, since=second["next_batch"])
        senders = {e["sender"]: e["content"]["presence"] for e in body["presence"]["events"]}
        self.assertEqual(senders.get(bob), "online")

    async def test_new_receipt_in_incremental_sync(self):
        """With only m.receipt ephemeral events wanted, a new receipt comes alone."""
        alice, token = await self.register("alice")
        fid = await self.filter_id(alice, token, {
            "presence": {"types": []},
            "room": {"state": {"types": []}, "timeline": {"types": []},
                     "ephemeral": {"types": ["m.receipt"]}}})
        room_id = await self.create_room(token)
        event_id = await self.send(token, room_id, {"msgtype": "m.text", "body": "hello"})
        first = await self.sync_ok(token, filter=fid)
        await self.post(token, self.room(room_id, f"/receipt/m.read/{q(event_id)}"), {})
        body = await self.sync_ok(token, filter=fid, since=first["next_batch"])
        (receipt,) = body["rooms"]["join"][room_id]["ephemeral"]["events"]
        self.assertIn(alice, receipt["content"][event_id]["m.read"])

    async def test_avatar_and_displayname_changes_in_incremental_sync(self):
        """Profile changes rewrite the member event, which an incremental sync shows."""
        alice, token = await self.register("alice")
        room_id = await self.create_room(token)
        first = await self.sync_ok(token)
        for field, value in (("displayname", "LemurLover"),
                             ("avatar_url", "LemurLover")):
            await self.ok("PUT", f"{V3}/profile/{q(alice)}/{field}", {field: value},
                          token=token)
            body = await self.sync_ok(token, since=first["next_batch"])
            room = body["rooms"]["join"][room_id]
            members = [e for e in room["timeline"]["events"] + room["state"]["events"]
                       if e["type"] == "m.room.member" and e["state_key"] == alice]
            self.assertEqual(members[-1]["content"][field], value)
            status, member = await self.get_state(token, room_id, "m.room.member", alice)
            self.assertEqual(member[field], value)

    async def test_joined_members(self):
        """joined_members lists only joined users with their profile; non-members 403."""
        alice, a_token = await self.register("alice")
        await self.ok("PUT", f"{V3}/profile/{q(alice)}/displayname",
                      {"displayname": "Display Name"}, token=a_token)
        await self.ok("PUT", f"{V3}/profile/{q(alice)}/avatar_url",
                      {"avatar_url": "http://example.com/avatar.png"}, token=a_token)
        bob, b_token = await self.register("bob")
        carol, c_token = await self.register("carol")
        dave, d_token = await self.register("dave")
        room_id = await self.create_room(a_token, invite=[bob, carol, dave])
        await self.join(b_token, room_id)
        await self.join(c_token, room_id)
        await self.leave(c_token, room_id)
        body = await self.ok("GET", self.room(room_id, "/joined_members"), token=a_token)
        self.assertEqual(set(body["joined"]), {alice, bob})
        self.assertEqual(body["joined"][alice], {"display_name": "Display Name",
                                                 "avatar_url": "http://example.com/avatar.png"})
        status, err = await self.request("GET", self.room(room_id, "/joined_members"),
                                         token=d_token)
        self.assertEqual((status, err["errcode"]), (403, "M_FORBIDDEN"))
