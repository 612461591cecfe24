"""History visibility as later joiners see it through /sync, /messages and /context
(spec: "Room History Visibility"; sytest tests/31sync/06state.pl "Current state
appears in timeline in private history", tests/30rooms/30history-visibility.pl)."""

from __future__ import annotations

from tests.client_api.room_helpers import RoomsTestCase, q


class CurrentStateInTimelineTests(RoomsTestCase):
    async def _scenario(self, before: int, after: int) -> None:
        """Syncer leaves a "joined"-visibility room, the invitee joins while it is
        away, ``before``/``after`` messages are sent around that; on rejoining, the
        syncer's incremental sync shows the invitee's join in the timeline."""
        _, creator = await self.register("creator")
        _, syncer = await self.register("syncer")
        invitee, invitee_tok = await self.register("invitee")
        room_id = await self.create_room(creator, preset="public_chat")
        await self.join(syncer, room_id)
        await self.put_state(creator, room_id, "m.room.history_visibility",
                             {"history_visibility": "joined"})
        await self.invite(creator, room_id, invitee)
        since = (await self.sync(syncer))["next_batch"]
        for i in range(before):
            await self.send(creator, room_id, {"msgtype": "m.text", "body": f"b{i}"})
        await self.leave(syncer, room_id)
        await self.join(invitee_tok, room_id)
        for i in range(after):
            await self.send(creator, room_id, {"msgtype": "m.text", "body": f"a{i}"})
        await self.join(syncer, room_id)
        sync = await self.sync(syncer, since=since)
        events = sync["rooms"]["join"][room_id]["timeline"]["events"]
        self.assertTrue(any(e["type"] == "m.room.member" and e["state_key"] == invitee
                            and e["content"]["membership"] == "join" for e in events),
                        events)
        # history hidden from the syncer stays hidden
        self.assertFalse([e for e in events if e["type"] == "m.room.message"
                          and e["content"]["body"].startswith("a")])

    async def test_current_state_in_timeline(self):
        """sytest "Current state appears in timeline in private history"."""
        await self._scenario(0, 0)

    async def test_with_many_messages_before(self):
        """sytest "… in private history with many messages before"."""
        await self._scenario(50, 0)

    async def test_with_many_messages_after(self):
        """sytest "… in private history with many messages after"."""
        await self._scenario(0, 50)


#: sytest's %PERMITTED_ACTIONS: (see without join, see before join, see after invite)
_PERMITTED = {
    "world_readable": (True, True, True),
    "shared": (False, True, True),
    "invited": (False, False, True),
    "joined": (False, False, False),
    "default": (False, True, True),  # left as the preset set it (shared)
}


async def set_visibility(case: RoomsTestCase, token: str, room_id: str,
                         visibility: str) -> None:
    """sytest's matrix_set_room_history_visibility: "default" sets nothing."""
    if visibility != "default":
        await case.put_state(token, room_id, "m.room.history_visibility",
                             {"history_visibility": visibility})


class SytestHistoryVisibilityTests(RoomsTestCase):
    """sytest tests/30rooms/30history-visibility.pl, for real (non-guest) users."""

    async def test_messages_allow_and_forbid(self):
        """'m.room.history_visibility == "…" allows/forbids appropriately for Real
        users' (/messages before joining, and after)."""
        _, creator = await self.register("creator")
        for i, (visibility, (without, before, after)) in enumerate(_PERMITTED.items()):
            joiner, joiner_tok = await self.register(f"joiner{i}")
            room_id = await self.create_room(creator)
            await set_visibility(self, creator, room_id, visibility)
            await self.put_state(creator, room_id, "m.room.guest_access",
                                 {"guest_access": "can_join"})
            before_join = await self.send(creator, room_id, {"msgtype": "m.text",
                                                             "body": "Before join"})
            status, resp = await self.messages(joiner_tok, room_id, limit=10)
            seen = status == 200 and before_join in {e["event_id"] for e in resp["chunk"]}
            self.assertEqual(seen, without, visibility)
            await self.invite(creator, room_id, joiner)
            after_invite = await self.send(creator, room_id, {"msgtype": "m.text",
                                                              "body": "After invite"})
            await self.join(joiner_tok, room_id)
            status, resp = await self.messages(joiner_tok, room_id, limit=10)
            ids = {e["event_id"] for e in resp["chunk"]}
            self.assertEqual((before_join in ids, after_invite in ids), (before, after),
                             visibility)

    async def test_sync_from_rooms_if_joined(self):
        """'Real users can sync from … guest_access rooms if joined': the last four
        timeline events of the joiner's first sync."""
        _, creator = await self.register("creator")
        for i, visibility in enumerate(_PERMITTED):
            _, joiner_tok = await self.register(f"joiner{i}")
            room_id = await self.create_room(creator, preset="public_chat")
            await self.put_state(creator, room_id, "m.room.guest_access",
                                 {"guest_access": "can_join"})
            await self.send(creator, room_id, {"msgtype": "m.text", "body": "shared"})
            await set_visibility(self, creator, room_id, visibility)
            await self.send(creator, room_id, {"msgtype": "m.text", "body": "pre_join"})
            await self.join(joiner_tok, room_id)
            await self.send(creator, room_id, {"msgtype": "m.text", "body": "post_join"})
            sync = await self.sync(joiner_tok)
            chunk = sync["rooms"]["join"][room_id]["timeline"]["events"][-4:]
            got = [(e["type"], e["content"].get("body")) for e in chunk]
            if _PERMITTED[visibility][1]:
                first = "m.room.message" if visibility in ("shared", "default") \
                    else "m.room.history_visibility"
                self.assertEqual([t for t, _ in got[:1]], [first], visibility)
                self.assertEqual(got[1], ("m.room.message", "pre_join"), visibility)
            else:
                self.assertEqual(got[:2], [("m.room.message", "shared"),
                                           ("m.room.history_visibility", None)], visibility)
            self.assertEqual(got[2][0], "m.room.member", visibility)
            self.assertEqual(got[3], ("m.room.message", "post_join"), visibility)

    async def test_changes_on_boundaries(self):
        """'Only see history_visibility changes on boundaries'."""
        _, creator = await self.register("creator")
        _, joiner_tok = await self.register("joiner")
        room_id = await self.create_room(creator, preset="public_chat")
        for visibility, body in (("joined", "1"), ("invited", "2"), ("shared", "3")):
            await self.put_state(creator, room_id, "m.room.history_visibility",
                                 {"history_visibility": visibility})
            await self.send(creator, room_id, {"msgtype": "m.text", "body": body})
        await self.join(joiner_tok, room_id)
        sync = await self.sync(joiner_tok)
        chunk = sync["rooms"]["join"][room_id]["timeline"]["events"][-4:]
        self.assertEqual([(e["type"], e["content"].get("history_visibility")
                           or e["content"].get("body") or e["content"].get("membership"))
                          for e in chunk],
                         [("m.room.history_visibility", "joined"),
                          ("m.room.history_visibility", "shared"),
                          ("m.room.message", "3"), ("m.room.member", "join")])

    async def test_state_for_world_readable_rooms(self):
        """'non-joined users can get state / individual state for world_readable
        rooms', also 'after leaving'; they cannot send to a can_join room unjoined."""
        creator, creator_tok = await self.register("creator")
        _, other = await self.register("other")
        room_id = await self.create_room(creator_tok)
        await self.put_state(creator_tok, room_id, "m.room.history_visibility",
                             {"history_visibility": "world_readable"})
        await self.ok("GET", self.room(room_id, "/state"), token=other)
        await self.ok("GET", self.room(room_id, f"/state/m.room.member/{creator}"),
                      token=other)
        await self.put_state(creator_tok, room_id, "m.room.join_rules",
                             {"join_rule": "public"})
        await self.put_state(creator_tok, room_id, "m.room.guest_access",
                             {"guest_access": "can_join"})
        status, _ = await self.request("PUT", self.room(room_id, "/send/m.room.message/t"),
                                       {"msgtype": "m.text", "body": "sup"}, token=other)
        self.assertEqual(status, 403)
        await self.join(other, room_id)
        await self.leave(other, room_id)
        await self.ok("GET", self.room(room_id, f"/state/m.room.member/{creator}"),
                      token=other)


class ErasureTests(RoomsTestCase):
    async def test_only_original_members_see_erased_messages(self):
        """sytest "Only original members of the room can see messages from erased
        users": after ``erase: true`` the member who was there still sees the
        message in /sync; the later joiner gets it pruned in /sync, /messages,
        /event and /context."""
        creator, creator_tok = await self.register("creator")
        _, member_tok = await self.register("member")
        _, joiner_tok = await self.register("joiner")
        room_id = await self.create_room(creator_tok, preset="public_chat")
        await self.join(member_tok, room_id)
        message = await self.send(creator_tok, room_id, {"msgtype": "m.text",
                                                         "body": "body1"})
        await self.join(joiner_tok, room_id)

        def find(sync: dict) -> dict:
            events = sync["rooms"]["join"][room_id]["timeline"]["events"]
            return next(e for e in events if e["event_id"] == message)

        self.assertEqual(find(await self.sync(joiner_tok))["content"]["body"], "body1")
        await self.ok("POST", "/_matrix/client/v3/account/deactivate",
                      {"erase": True, "auth": {
                          "type": "m.login.password", "password": "correct horse",
                          "identifier": {"type": "m.id.user", "user": creator}}},
                      token=creator_tok)
        self.assertEqual(find(await self.sync(member_tok))["content"]["body"], "body1")
        pruned = find(await self.sync(joiner_tok))
        self.assertEqual((pruned["type"], pruned["content"]), ("m.room.message", {}))
        _, resp = await self.messages(joiner_tok, room_id, limit=20)
        self.assertEqual(next(e for e in resp["chunk"] if e["event_id"] == message)
                         ["content"], {})
        _, resp = await self.messages(member_tok, room_id, limit=20)
        self.assertEqual(next(e for e in resp["chunk"] if e["event_id"] == message)
                         ["content"]["body"], "body1")
        event = await self.ok("GET", self.room(room_id, f"/event/{q(message)}"),
                              token=joiner_tok)
        self.assertEqual(event["content"], {})
        context = await self.ok("GET", self.room(room_id, f"/context/{q(message)}"),
                                token=joiner_tok)
        self.assertEqual(context["event"]["content"], {})
        # the stored event stays whole
        event = await self.ok("GET", self.room(room_id, f"/event/{q(message)}"),
                              token=member_tok)
        self.assertEqual(event["content"]["body"], "body1")

    async def test_deactivation_without_erase(self):
        """Without ``erase`` later joiners still see the messages."""
        creator, creator_tok = await self.register("creator")
        _, joiner_tok = await self.register("joiner")
        room_id = await self.create_room(creator_tok, preset="public_chat")
        message = await self.send(creator_tok, room_id, {"msgtype": "m.text",
                                                         "body": "kept"})
        await self.ok("POST", "/_matrix/client/v3/account/deactivate",
                      {"auth": {"type": "m.login.password", "password": "correct horse",
                                "identifier": {"type": "m.id.user", "user": creator}}},
                      token=creator_tok)
        await self.join(joiner_tok, room_id)
        event = await self.ok("GET", self.room(room_id, f"/event/{q(message)}"),
                              token=joiner_tok)
        self.assertEqual(event["content"]["body"], "kept")


class FetchEventTests(RoomsTestCase):
    """Complement apidoc_room_history_visibility_test.go: GET /rooms/{id}/event/{id}."""

    async def _fetch(self, visibility: str, *, invite_before: bool, invite_after: bool,
                     join: bool) -> int:
        _, alice = await self.register(f"alice-{visibility}-{invite_before}-{join}")
        bob, bob_tok = await self.register(f"bob-{visibility}-{invite_before}-{join}")
        room_id = await self.create_room(alice, preset="public_chat", initial_state=[
            {"type": "m.room.history_visibility", "state_key": "",
             "content": {"history_visibility": visibility}}])
        if invite_before:
            await self.invite(alice, room_id, bob)
        event_id = await self.send(alice, room_id, {"msgtype": "m.text", "body": "hi"})
        if invite_after:
            await self.invite(alice, room_id, bob)
        if join:
            await self.join(bob_tok, room_id)
        status, _ = await self.request("GET", self.room(room_id, f"/event/{q(event_id)}"),
                                       token=bob_tok)
        return status

    async def test_fetch_event_cases(self):
        """TestFetchHistoricalJoinedEventDenied (404), …SharedEvent (200),
        …InvitedEventFromBetweenInvite (200), …FromBeforeInvite (404),
        TestFetchEventNonWorldReadable (404), TestFetchEventWorldReadable (200)."""
        cases = [
            ("joined", dict(invite_before=False, invite_after=False, join=True), 404),
            ("shared", dict(invite_before=False, invite_after=False, join=True), 200),
            ("invited", dict(invite_before=True, invite_after=False, join=True), 200),
            ("invited", dict(invite_before=False, invite_after=True, join=True), 404),
            ("shared", dict(invite_before=False, invite_after=False, join=False), 404),
            ("world_readable", dict(invite_before=False, invite_after=False, join=False),
             200),
        ]
        for visibility, flow, expected in cases:
            self.assertEqual(await self._fetch(visibility, **flow), expected,
                             (visibility, flow))
