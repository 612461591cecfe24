"""GET /sync over real HTTP: initial and incremental syncs, timelines, state, filters,
lazy-loading, invites and leaves, summaries and unread counts."""

from __future__ import annotations

from homeserver.sync.tokens import StreamToken
from tests.client_api.sync_helpers import SyncTestCase, V3, bodies, q, timeline


class InitialSyncTests(SyncTestCase):
    async def test_initial_sync_shape(self):
        """An initial sync lists the joined room with its timeline, state, summary and
        counts, and every top-level section."""
        alice, token = await self.register("alice")
        room_id = await self.create_room(token, name="Lounge")
        await self.send(token, room_id, {"msgtype": "m.text", "body": "hi"})
        body = await self.sync_ok(token)
        StreamToken.parse(body["next_batch"])
        for key in ("rooms", "presence", "account_data", "to_device", "device_lists"):
            self.assertIn(key, body)
        room = body["rooms"]["join"][room_id]
        self.assertEqual(set(room), {"timeline", "state", "ephemeral", "account_data",
                                     "unread_notifications", "summary"})
        events = room["timeline"]["events"]
        self.assertEqual(bodies(events), ["hi"])
        self.assertNotIn("room_id", events[-1])
        self.assertEqual(events[-1]["sender"], alice)
        self.assertIn("prev_batch", room["timeline"])
        self.assertEqual(room["summary"]["m.joined_member_count"], 1)
        self.assertEqual(room["summary"]["m.invited_member_count"], 0)
        self.assertEqual(room["unread_notifications"],
                         {"notification_count": 0, "highlight_count": 0})
        # state at the start of the timeline + timeline = the whole room state
        state_types = {e["type"] for e in room["state"]["events"]} | \
            {e["type"] for e in events if "state_key" in e}
        self.assertTrue({"m.room.create", "m.room.member", "m.room.power_levels",
                         "m.room.name"} <= state_types)

    async def test_initial_sync_state_is_at_timeline_start(self):
        """With a limited timeline, state holds what came before it and not what the
        timeline itself carries."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        await self.put_state(token, room_id, "m.room.topic", {"topic": "old"})
        for i in range(3):
            await self.send(token, room_id, {"msgtype": "m.text", "body": f"m{i}"})
        await self.put_state(token, room_id, "m.room.topic", {"topic": "new"})
        body = await self.sync_ok(token, filter={"room": {"timeline": {"limit": 2}}})
        room = body["rooms"]["join"][room_id]
        self.assertTrue(room["timeline"]["limited"])
        topics = [e["content"]["topic"] for e in room["state"]["events"]
                  if e["type"] == "m.room.topic"]
        self.assertEqual(topics, ["old"])
        new_topic = room["timeline"]["events"][-1]
        self.assertEqual(new_topic["content"]["topic"], "new")
        self.assertEqual(new_topic["unsigned"]["prev_content"], {"topic": "old"})


class IncrementalSyncTests(SyncTestCase):
    async def test_incremental_sync_sees_new_events_in_order(self):
        """Events sent after a sync come in the next one, in order, unlimited, with no
        state (the timeline carries every change)."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        first = await self.sync_ok(token)
        sent = [await self.send(token, room_id, {"msgtype": "m.text", "body": f"m{i}"})
                for i in range(3)]
        body = await self.sync_ok(token, since=first["next_batch"])
        room = body["rooms"]["join"][room_id]
        self.assertEqual([e["event_id"] for e in room["timeline"]["events"]], sent)
        self.assertFalse(room["timeline"]["limited"])
        self.assertEqual(room["state"]["events"], [])
        # nothing new: the room is not listed at all
        again = await self.sync_ok(token, since=body["next_batch"])
        self.assertEqual(again["rooms"]["join"], {})

    async def test_token_past_the_servers_positions_hides_nothing(self):
        """A since token beyond the server's own stream positions (commits a power cut
        or a restored backup took away) is answered from the server's position, and
        next_batch is the server's: events the server then writes at the positions
        the token claimed are delivered, not skipped."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        first = StreamToken.parse((await self.sync_ok(token))["next_batch"])
        ahead = first.replace(room=first.room + 50, to_device=first.to_device + 50)
        body = await self.sync_ok(token, since=str(ahead))
        resumed = StreamToken.parse(body["next_batch"])
        self.assertEqual((resumed.room, resumed.to_device), (first.room, first.to_device))
        sent = await self.send(token, room_id, {"msgtype": "m.text", "body": "again"})
        body = await self.sync_ok(token, since=body["next_batch"])
        events = body["rooms"]["join"][room_id]["timeline"]["events"]
        self.assertEqual([e["event_id"] for e in events], [sent])

    async def test_transaction_id_only_for_the_sending_device(self):
        """The sending device sees unsigned.transaction_id; another device does not."""
        _, token = await self.register("alice", device_id="PHONE")
        status, login = await self.request("POST", f"{V3}/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "correct horse", "device_id": "LAPTOP"})
        self.assertEqual(status, 200, login)
        room_id = await self.create_room(token)
        since = (await self.sync_ok(token))["next_batch"]
        await self.send(token, room_id, {"msgtype": "m.text", "body": "x"}, txn="t-1")
        mine = timeline(await self.sync_ok(token, since=since), room_id)
        theirs = timeline(await self.sync_ok(login["access_token"], since=since), room_id)
        self.assertEqual(mine[-1]["unsigned"]["transaction_id"], "t-1")
        self.assertNotIn("transaction_id", theirs[-1]["unsigned"])

    async def test_limited_timeline_prev_batch_works_with_messages(self):
        """A limited incremental timeline's prev_batch pages back through /messages
        to the events left out."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        since = (await self.sync_ok(token))["next_batch"]
        for i in range(8):
            await self.send(token, room_id, {"msgtype": "m.text", "body": f"m{i}"})
        body = await self.sync_ok(token, since=since,
                                  filter={"room": {"timeline": {"limit": 3}}})
        room = body["rooms"]["join"][room_id]
        self.assertTrue(room["timeline"]["limited"])
        self.assertEqual(bodies(room["timeline"]["events"]), ["m5", "m6", "m7"])
        resp = await self.ok("GET", self.room(room_id, "/messages?dir=b&limit=5&from=" +
                                              q(room["timeline"]["prev_batch"])), token=token)
        self.assertEqual(bodies(resp["chunk"]), ["m4", "m3", "m2", "m1", "m0"])

    async def test_limited_sync_carries_state_delta(self):
        """A state change in the gap of a limited sync comes in ``state``."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token, name="before")
        since = (await self.sync_ok(token))["next_batch"]
        await self.put_state(token, room_id, "m.room.name", {"name": "after"})
        for i in range(4):
            await self.send(token, room_id, {"msgtype": "m.text", "body": f"m{i}"})
        body = await self.sync_ok(token, since=since,
                                  filter={"room": {"timeline": {"limit": 2}}})
        room = body["rooms"]["join"][room_id]
        self.assertTrue(room["timeline"]["limited"])
        self.assertEqual([(e["type"], e["content"]) for e in room["state"]["events"]],
                         [("m.room.name", {"name": "after"})])

    async def test_full_state(self):
        """full_state=true returns the whole state even on an incremental sync."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token, name="n")
        since = (await self.sync_ok(token))["next_batch"]
        body = await self.sync_ok(token, since=since, full_state=True)
        state = body["rooms"]["join"][room_id]["state"]["events"]
        self.assertTrue({"m.room.create", "m.room.name", "m.room.member"}
                        <= {e["type"] for e in state})
        self.assertEqual(body["rooms"]["join"][room_id]["timeline"]["events"], [])

    async def test_newly_joined_room_comes_with_full_state(self):
        """A room joined since the last sync arrives with its state."""
        _, alice = await self.register("alice")
        _, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat", name="Pub")
        since = (await self.sync_ok(bob))["next_batch"]
        for i in range(5):
            await self.send(alice, room_id, {"msgtype": "m.text", "body": f"m{i}"})
        await self.join(bob, room_id)
        body = await self.sync_ok(bob, since=since,
                                  filter={"room": {"timeline": {"limit": 2}}})
        room = body["rooms"]["join"][room_id]
        self.assertIn("m.room.name", {e["type"] for e in room["state"]["events"]})
        self.assertEqual(room["summary"]["m.joined_member_count"], 2)


class FilterTests(SyncTestCase):
    async def test_timeline_types_and_senders(self):
        """timeline types / not_senders pick the events and the limit counts matches."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        await self.send(alice, room_id, {"msgtype": "m.text", "body": "a1"})
        await self.send(bob, room_id, {"msgtype": "m.text", "body": "b1"})
        await self.send(alice, room_id, {"k": 1}, event_type="org.example.custom")
        body = await self.sync_ok(alice, filter={"room": {"timeline": {
            "types": ["m.room.mess*"], "not_senders": [bob_id]}}})
        events = timeline(body, room_id)
        self.assertEqual(bodies(events), ["a1"])
        self.assertEqual({e["type"] for e in events}, {"m.room.message"})

    async def test_rooms_and_not_rooms(self):
        """room.rooms / room.not_rooms choose which rooms are synced at all."""
        _, token = await self.register("alice")
        one = await self.create_room(token)
        two = await self.create_room(token)
        body = await self.sync_ok(token, filter={"room": {"not_rooms": [one]}})
        self.assertEqual(set(body["rooms"]["join"]), {two})
        body = await self.sync_ok(token, filter={"room": {"rooms": [one]}})
        self.assertEqual(set(body["rooms"]["join"]), {one})

    async def test_uploaded_filter_and_event_fields(self):
        """A filter uploaded by ID applies, including event_fields."""
        user_id, token = await self.register("alice")
        room_id = await self.create_room(token)
        await self.send(token, room_id, {"msgtype": "m.text", "body": "x"})
        resp = await self.ok("POST", f"{V3}/user/{q(user_id)}/filter", {
            "event_fields": ["type", "content.body"],
            "room": {"timeline": {"types": ["m.room.message"]}}}, token=token)
        body = await self.sync_ok(token, filter=resp["filter_id"])
        self.assertEqual(timeline(body, room_id), [{"type": "m.room.message",
                                                    "content": {"body": "x"}}])

    async def test_inline_filter_state_without_timeline(self):
        """An inline JSON filter with timeline limit 0 and state types gives the room's
        one member event and no timeline (sytest "Can pass a JSON filter as a query
        parameter")."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        body = await self.sync_ok(token, filter={"room": {
            "state": {"types": ["m.room.member"]}, "timeline": {"limit": 0}}})
        room = body["rooms"]["join"][room_id]
        self.assertEqual(room["timeline"]["events"], [])
        self.assertEqual([e["type"] for e in room["state"]["events"]], ["m.room.member"])

    async def test_bad_filters_and_tokens(self):
        """Malformed filters are M_BAD_JSON, unknown filter IDs and bad tokens
        M_INVALID_PARAM, all 400."""
        _, token = await self.register("alice")
        self.assertError(await self.sync_raw(token, filter="{not json"), 400, "M_BAD_JSON")
        self.assertError(await self.sync_raw(token, filter={"room": {"timeline": {
            "limit": "ten"}}}), 400, "M_BAD_JSON")
        self.assertError(await self.sync_raw(token, filter={"room": {"rooms": "!a:b"}}),
                         400, "M_BAD_JSON")
        self.assertError(await self.sync_raw(token, filter="12345"), 400,
                         "M_INVALID_PARAM")
        self.assertError(await self.sync_raw(token, since="not-a-token"), 400,
                         "M_INVALID_PARAM")
        self.assertError(await self.sync_raw(token, full_state="yes"), 400,
                         "M_INVALID_PARAM")
        self.assertError(await self.sync_raw(token, set_presence="away"), 400,
                         "M_INVALID_PARAM")


    async def test_filter_endpoints(self):
        """Filters round-trip by ID; others' filters are 403, unknown IDs 404 and
        malformed filters 400 M_BAD_JSON."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        definition = {"room": {"timeline": {"limit": 5, "types": ["m.room.message"]}},
                      "presence": {"not_types": ["*"]}}
        resp = await self.ok("POST", f"{V3}/user/{q(alice_id)}/filter", definition,
                             token=alice)
        self.assertFalse(resp["filter_id"].startswith("{"))
        self.assertEqual(await self.ok(
            "GET", f"{V3}/user/{q(alice_id)}/filter/{resp['filter_id']}", token=alice),
            definition)
        self.assertError(await self.request(
            "GET", f"{V3}/user/{q(alice_id)}/filter/{resp['filter_id']}", token=bob),
            403, "M_FORBIDDEN")
        self.assertError(await self.request(
            "POST", f"{V3}/user/{q(alice_id)}/filter", {}, token=bob), 403, "M_FORBIDDEN")
        self.assertError(await self.request(
            "GET", f"{V3}/user/{q(alice_id)}/filter/999", token=alice), 404, "M_NOT_FOUND")
        self.assertError(await self.request(
            "POST", f"{V3}/user/{q(alice_id)}/filter", {"room": {"timeline": []}},
            token=alice), 400, "M_BAD_JSON")

    async def test_account_data_and_presence_filters(self):
        """account_data and presence filters choose the global events listed."""
        alice_id, alice = await self.register("alice")
        for data_type in ("org.example.a", "org.example.b"):
            await self.ok("PUT", f"{V3}/user/{q(alice_id)}/account_data/{data_type}",
                          {"x": 1}, token=alice)
        body = await self.sync_ok(alice, filter={"account_data": {"types": ["*.b"]},
                                                 "presence": {"types": ["none"]}})
        self.assertEqual([e["type"] for e in body["account_data"]["events"]],
                         ["org.example.b"])
        self.assertEqual(body["presence"]["events"], [])
        body = await self.sync_ok(alice)
        self.assertEqual([e["sender"] for e in body["presence"]["events"]], [alice_id])

    async def test_ephemeral_only_change_with_filtered_timeline(self):
        """A room listed only for a new receipt carries no state, even with a filter
        that hides events from the timeline."""
        alice_id, alice = await self.register("alice")
        room_id = await self.create_room(alice, name="r")
        event_id = await self.send(alice, room_id, {"msgtype": "m.text", "body": "x"})
        flt = {"room": {"timeline": {"types": ["m.room.message"]}}}
        since = (await self.sync_ok(alice, filter=flt))["next_batch"]
        await self.ok("POST", self.room(room_id, f"/receipt/m.read/{q(event_id)}"), {},
                      token=alice)
        room = (await self.sync_ok(alice, filter=flt, since=since))["rooms"]["join"][room_id]
        self.assertEqual(room["state"]["events"], [])
        self.assertEqual(room["timeline"]["events"], [])
        self.assertEqual(room["timeline"]["prev_batch"], since)
        # a sync token is a valid /messages position (spec: "Syncing")
        resp = await self.ok("GET", self.room(room_id, "/messages?dir=b&limit=1&from=" +
                                              q(since)), token=alice)
        self.assertEqual([e["event_id"] for e in resp["chunk"]], [event_id])
        self.assertEqual([e["type"] for e in room["ephemeral"]["events"]], ["m.receipt"])


class LazyLoadingTests(SyncTestCase):
    async def test_lazy_loading_members(self):
        """With lazy_load_members, state holds only the members the timeline needs
        (senders, and the user on a full sync); redundant ones are skipped later
        unless include_redundant_members."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        carol_id, carol = await self.register("carol")
        room_id = await self.create_room(alice, preset="public_chat", name="r")
        await self.join(bob, room_id)
        await self.join(carol, room_id)
        for i in range(3):
            await self.send(bob, room_id, {"msgtype": "m.text", "body": f"b{i}"})
        lazy = {"room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": True}}}
        body = await self.sync_ok(alice, filter=lazy)
        members = {e["state_key"] for e in body["rooms"]["join"][room_id]["state"]["events"]
                   if e["type"] == "m.room.member"}
        self.assertEqual(members, {alice_id, bob_id})

        await self.send(bob, room_id, {"msgtype": "m.text", "body": "again"})
        later = await self.sync_ok(alice, filter=lazy, since=body["next_batch"])
        self.assertEqual(later["rooms"]["join"][room_id]["state"]["events"], [])

        redundant = {"room": {"state": {"lazy_load_members": True,
                                        "include_redundant_members": True}}}
        await self.send(bob, room_id, {"msgtype": "m.text", "body": "more"})
        again = await self.sync_ok(alice, filter=redundant, since=later["next_batch"])
        self.assertEqual([e["state_key"] for e in
                          again["rooms"]["join"][room_id]["state"]["events"]], [bob_id])

        # heroes of an unnamed room come with their member events
        await self.put_state(alice, room_id, "m.room.name", {})
        heroes = await self.sync_ok(alice, filter={
            "room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}})
        room = heroes["rooms"]["join"][room_id]
        self.assertEqual(set(room["summary"]["m.heroes"]), {bob_id, carol_id})
        self.assertEqual({e["state_key"] for e in room["state"]["events"]
                          if e["type"] == "m.room.member"}, {alice_id, bob_id, carol_id})

        # without lazy loading every member is there
        full = await self.sync_ok(alice, filter={"room": {"timeline": {"limit": 1}}})
        self.assertIn(carol_id, {e["state_key"] for e in
                                 full["rooms"]["join"][room_id]["state"]["events"]
                                 if e["type"] == "m.room.member"})


class MembershipSectionTests(SyncTestCase):
    async def test_invite_join_leave(self):
        """An invite shows in rooms.invite with stripped state; after joining the
        room is in rooms.join; after leaving in rooms.leave with the leave last."""
        _, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, name="Secret")
        since = (await self.sync_ok(bob))["next_batch"]
        await self.invite(alice, room_id, bob_id)
        body = await self.sync_ok(bob, since=since)
        invite = body["rooms"]["invite"][room_id]["invite_state"]["events"]
        self.assertIn(("m.room.name", {"name": "Secret"}),
                      [(e["type"], e["content"]) for e in invite])
        self.assertEqual(invite[-1]["type"], "m.room.member")
        self.assertEqual(invite[-1]["content"]["membership"], "invite")
        self.assertEqual(body["rooms"]["join"], {})

        await self.join(bob, room_id)
        body = await self.sync_ok(bob, since=body["next_batch"])
        self.assertIn(room_id, body["rooms"]["join"])
        self.assertEqual(body["rooms"]["invite"], {})

        await self.send(alice, room_id, {"msgtype": "m.text", "body": "bye?"})
        await self.leave(bob, room_id)
        await self.send(alice, room_id, {"msgtype": "m.text", "body": "after"})
        body = await self.sync_ok(bob, since=body["next_batch"])
        left = body["rooms"]["leave"][room_id]["timeline"]["events"]
        self.assertEqual(bodies(left), ["bye?"])
        self.assertEqual(left[-1]["content"]["membership"], "leave")
        self.assertNotIn(room_id, body["rooms"]["join"])

        # an initial sync lists the left room only with include_leave
        self.assertEqual((await self.sync_ok(bob))["rooms"]["leave"], {})
        with_leave = await self.sync_ok(bob, filter={"room": {"include_leave": True}})
        self.assertIn(room_id, with_leave["rooms"]["leave"])

    async def test_rejected_invite(self):
        """Rejecting an invite lists the room under rooms.leave with just the user's
        own leave: nothing of the room's history."""
        _, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, name="Private")
        await self.send(alice, room_id, {"msgtype": "m.text", "body": "secret"})
        await self.invite(alice, room_id, bob_id)
        since = (await self.sync_ok(bob))["next_batch"]
        await self.leave(bob, room_id)
        left = (await self.sync_ok(bob, since=since))["rooms"]["leave"][room_id]
        self.assertEqual([(e["type"], e["content"]["membership"])
                          for e in left["timeline"]["events"]], [("m.room.member", "leave")])
        self.assertEqual(left["state"]["events"], [])

    async def test_knock_and_ban(self):
        """A knock shows in rooms.knock with knock_state; a ban moves the room to
        rooms.leave."""
        _, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, name="Knockable")
        await self.put_state(alice, room_id, "m.room.join_rules", {"join_rule": "knock"})
        since = (await self.sync_ok(bob))["next_batch"]
        await self.ok("POST", f"{V3}/knock/{q(room_id)}", {"reason": "hi"}, token=bob)
        body = await self.sync_ok(bob, since=since)
        knock = body["rooms"]["knock"][room_id]["knock_state"]["events"]
        self.assertEqual(knock[-1]["content"]["membership"], "knock")
        self.assertIn("m.room.name", [e["type"] for e in knock])
        await self.invite(alice, room_id, bob_id)
        await self.join(bob, room_id)
        since = (await self.sync_ok(bob))["next_batch"]
        await self.ok("POST", self.room(room_id, "/ban"), {"user_id": bob_id}, token=alice)
        body = await self.sync_ok(bob, since=since)
        left = body["rooms"]["leave"][room_id]["timeline"]["events"]
        self.assertEqual(left[-1]["content"]["membership"], "ban")

    async def test_summary_heroes(self):
        """An unnamed room's summary names up to 5 other members as heroes."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        body = await self.sync_ok(bob)
        summary = body["rooms"]["join"][room_id]["summary"]
        self.assertEqual(summary, {"m.joined_member_count": 2,
                                   "m.invited_member_count": 0, "m.heroes": [alice_id]})

    async def test_ignored_users_are_hidden(self):
        """Messages of users in m.ignored_user_list are left out of the timeline."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        await self.ok("PUT", f"{V3}/user/{q(alice_id)}/account_data/m.ignored_user_list",
                      {"ignored_users": {bob_id: {}}}, token=alice)
        await self.send(bob, room_id, {"msgtype": "m.text", "body": "spam"})
        await self.send(alice, room_id, {"msgtype": "m.text", "body": "mine"})
        self.assertEqual(bodies(timeline(await self.sync_ok(alice), room_id)), ["mine"])


class UnreadTests(SyncTestCase):
    async def test_unread_counts_follow_read_receipt(self):
        """Messages from others after the read receipt count; mentions highlight."""
        alice_id, alice = await self.register("alice")
        _, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        await self.send(bob, room_id, {"msgtype": "m.text", "body": "one"})
        last = await self.send(bob, room_id, {"msgtype": "m.text", "body": "hey alice",
                                              "m.mentions": {"user_ids": [alice_id]}})
        await self.send(alice, room_id, {"msgtype": "m.text", "body": "own"})
        await self.send(bob, room_id, {"msgtype": "m.notice", "body": "bot"})
        room = (await self.sync_ok(alice))["rooms"]["join"][room_id]
        self.assertEqual(room["unread_notifications"],
                         {"notification_count": 2, "highlight_count": 1})
        await self.ok("POST", self.room(room_id, f"/receipt/m.read/{q(last)}"), {},
                      token=alice)
        room = (await self.sync_ok(alice))["rooms"]["join"][room_id]
        self.assertEqual(room["unread_notifications"],
                         {"notification_count": 0, "highlight_count": 0})
