"""End to end: the real server process driven by a real client library (matrix-nio).

Two users register, create rooms, invite, join, exchange 100 messages that arrive in
order through incremental sync, paginate back to the room's creation, see typing,
receipts, presence, profile changes, redactions, kicks and bans, directory and alias
round trips. The server is restarted (SIGTERM, exit 0) in the middle of the scenario and
accounts, tokens, rooms, history and account data all survive.
"""

from __future__ import annotations

import asyncio

import nio

from tests.e2e.harness import as_deferred
from tests.e2e.nio_case import NioServerTestCase


class NioScenario(NioServerTestCase):
    timeout = 300

    async def _sync_until(self, client, predicate, since, rounds=20):
        """Incremental syncs until predicate(resp) is true; returns (matched, token)."""
        collected = []
        for _ in range(rounds):
            resp = await self._ok(client.sync(timeout=5000, since=since), nio.SyncResponse)
            since = resp.next_batch
            collected.append(resp)
            if predicate(resp, collected):
                return collected, since
        self.fail("sync never showed what was expected")

    def test_two_users(self):
        """The whole scenario, with a restart in the middle."""
        return as_deferred(self._scenario())

    async def _scenario(self):
        alice, bob = self.client("alice"), self.client("bob")
        await self._ok(alice.register("alice", "alice-password"), nio.RegisterResponse)
        await self._ok(bob.register("bob", "bob-password"), nio.RegisterResponse)
        whoami = await self._ok(alice.whoami(), nio.WhoamiResponse)
        self.assertEqual(whoami.user_id, "@alice:localhost")

        # -- rooms, aliases, directory ------------------------------------------------
        created = await self._ok(alice.room_create(
            visibility=nio.RoomVisibility.public, alias="chat", name="Chat",
            topic="Talk here"), nio.RoomCreateResponse)
        room_id = created.room_id
        resolved = await self._ok(alice.room_resolve_alias("#chat:localhost"),
                                  nio.RoomResolveAliasResponse)
        self.assertEqual(resolved.room_id, room_id)
        public = await self._ok(bob.list_public_rooms(), nio.responses.PublicRoomsResponse)
        self.assertIn(room_id, [r.room_id for r in public.public_rooms])

        await self._ok(alice.room_invite(room_id, "@bob:localhost"), nio.RoomInviteResponse)
        bob_first = await self._ok(bob.sync(timeout=0), nio.SyncResponse)
        self.assertIn(room_id, bob_first.rooms.invite)
        await self._ok(bob.join(room_id), nio.JoinResponse)
        alice_first = await self._ok(alice.sync(timeout=0), nio.SyncResponse)
        since_alice = alice_first.next_batch
        since_bob = (await self._ok(bob.sync(timeout=0, since=bob_first.next_batch),
                                    nio.SyncResponse)).next_batch

        # -- 100 messages, in order through incremental sync --------------------------
        # bob syncs incrementally while the messages are being sent, so nothing is cut
        timeline_filter = {"room": {"timeline": {"limit": 50}}}
        sent, bodies = [], []

        def take(resp):
            if room_id in resp.rooms.join:
                bodies.extend(e.body for e in resp.rooms.join[room_id].timeline.events
                              if isinstance(e, nio.RoomMessageText))
                self.assertFalse(resp.rooms.join[room_id].timeline.limited)

        for i in range(100):
            sender = alice if i % 2 == 0 else bob
            resp = await self._ok(sender.room_send(
                room_id, "m.room.message", {"msgtype": "m.text", "body": f"message {i}"}),
                nio.RoomSendResponse)
            sent.append(resp.event_id)
            if i % 10 == 9:
                resp = await self._ok(bob.sync(timeout=0, since=since_bob,
                                               sync_filter=timeline_filter), nio.SyncResponse)
                since_bob = resp.next_batch
                take(resp)
        self.assertEqual(bodies, [f"message {i}" for i in range(100)])

        # -- paginate back to the room's creation ---------------------------------------
        token, types = None, []
        for _ in range(50):
            page = await self._ok(alice.room_messages(room_id, start=token, limit=30),
                                  nio.RoomMessagesResponse)
            types += [getattr(e, "source", {}).get("type") for e in page.chunk]
            if not page.chunk or page.end is None:
                break
            token = page.end
        self.assertEqual(types[-1], "m.room.create")
        self.assertEqual(sum(1 for t in types if t == "m.room.message"), 100)

        # -- typing, receipts, presence, profile ---------------------------------------
        await self._ok(alice.room_typing(room_id, True, timeout=30000), nio.RoomTypingResponse)
        await self._ok(alice.room_read_markers(room_id, sent[-1], sent[-1]),
                       nio.RoomReadMarkersResponse)
        await self._ok(alice.set_presence("online", "writing tests"), nio.PresenceSetResponse)
        await self._ok(alice.set_displayname("Alice A."), nio.ProfileSetDisplayNameResponse)

        def saw_live_data(resp, collected):
            kinds = set()
            for r in collected:
                if room_id in r.rooms.join:
                    room = r.rooms.join[room_id]
                    for e in room.ephemeral:
                        if isinstance(e, nio.TypingNoticeEvent) and "@alice:localhost" in e.users:
                            kinds.add("typing")
                        if isinstance(e, nio.ReceiptEvent):
                            kinds.add("receipt")
                    for e in room.timeline.events:
                        if isinstance(e, nio.RoomMemberEvent) and \
                                e.content.get("displayname") == "Alice A.":
                            kinds.add("profile")
                for p in r.presence_events:
                    if p.user_id == "@alice:localhost" and p.presence == "online":
                        kinds.add("presence")
            return kinds >= {"typing", "receipt", "profile", "presence"}

        _, since_bob = await self._sync_until(bob, saw_live_data, since_bob)
        presence = await self._ok(bob.get_presence("@alice:localhost"),
                                  nio.PresenceGetResponse)
        self.assertEqual(presence.status_msg, "writing tests")

        # -- account data, then a restart ----------------------------------------------
        status, _ = self.server.request(
            "PUT", "/_matrix/client/v3/user/%40alice%3Alocalhost/account_data/org.example.k",
            {"kept": True}, token=alice.access_token)
        self.assertEqual(status, 200)

        self.assertEqual(self.server.stop(), 0, self.server.logs())
        self.server.start()

        whoami = await self._ok(alice.whoami(), nio.WhoamiResponse)  # token survived
        self.assertEqual(whoami.user_id, "@alice:localhost")
        status, body = self.server.request(
            "GET", "/_matrix/client/v3/user/%40alice%3Alocalhost/account_data/org.example.k",
            token=alice.access_token)
        self.assertEqual((status, body), (200, {"kept": True}))
        page = await self._ok(bob.room_messages(room_id, limit=150), nio.RoomMessagesResponse)
        self.assertEqual(len([e for e in page.chunk if isinstance(e, nio.RoomMessageText)]),
                         100)
        # the old sync token still works after the restart
        after = await self._ok(bob.sync(timeout=0, since=since_bob), nio.SyncResponse)
        self.assertTrue(after.next_batch)
        relogin = self.client("alice")
        await self._ok(relogin.login("alice-password"), nio.LoginResponse)

        # -- redaction ---------------------------------------------------------------
        await self._ok(alice.room_redact(room_id, sent[0], reason="oops"),
                       nio.RoomRedactResponse)
        event = await self._ok(bob.room_get_event(room_id, sent[0]),
                               nio.RoomGetEventResponse)
        self.assertNotIn("body", event.event.source["content"])

        # -- kick and ban ------------------------------------------------------------
        await self._ok(alice.room_kick(room_id, "@bob:localhost", "bye"), nio.RoomKickResponse)
        members = await self._ok(alice.joined_members(room_id), nio.JoinedMembersResponse)
        self.assertEqual([m.user_id for m in members.members], ["@alice:localhost"])
        await self._ok(bob.join(room_id), nio.JoinResponse)
        await self._ok(alice.room_ban(room_id, "@bob:localhost", "really bye"),
                       nio.RoomBanResponse)
        refused = await bob.join(room_id)
        self.assertIsInstance(refused, nio.JoinError)
        self.assertEqual(refused.status_code, "M_FORBIDDEN")
        await self._ok(alice.room_unban(room_id, "@bob:localhost"), nio.RoomUnbanResponse)
        await self._ok(bob.join(room_id), nio.JoinResponse)

        # -- alias deletion round trip -------------------------------------------------
        await self._ok(alice.room_delete_alias("#chat:localhost"), nio.RoomDeleteAliasResponse)
        gone = await alice.room_resolve_alias("#chat:localhost")
        self.assertIsInstance(gone, nio.RoomResolveAliasError)
        await self._ok(alice.room_put_alias("#chat2:localhost", room_id),
                       nio.RoomPutAliasResponse)
        resolved = await self._ok(bob.room_resolve_alias("#chat2:localhost"),
                                  nio.RoomResolveAliasResponse)
        self.assertEqual(resolved.room_id, room_id)
        await asyncio.sleep(0)
