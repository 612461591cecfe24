"""Reading history: /messages, /context, /event, /members, /joined_members (spec:
message_pagination.yaml, event_context.yaml, rooms.yaml; "Room History Visibility")."""

from __future__ import annotations

import json

from homeserver.sync.tokens import StreamToken
from tests.client_api.room_helpers import RoomsTestCase, q


def text(body: str) -> dict:
    return {"msgtype": "m.text", "body": body}


def bodies(chunk: list) -> list:
    return [e["content"].get("body") for e in chunk if e["type"] == "m.room.message"]


class PaginationTests(RoomsTestCase):
    async def walk(self, token: str, room_id: str, direction: str, limit: int,
                   start: str | None = None) -> list:
        """Every event from ``start`` to the end, page by page, following ``end``."""
        seen, params = [], {"dir": direction, "limit": limit}
        if start is not None:
            params["from"] = start
        for _ in range(100):
            status, page = await self.messages(token, room_id, **params)
            self.assertEqual(status, 200, page)
            self.assertLessEqual(len(page["chunk"]), limit)
            seen += page["chunk"]
            if "end" not in page:
                return seen
            params["from"] = page["end"]
        self.fail("pagination did not end")

    async def test_backwards_to_creation_and_forwards(self):
        """dir=b from the newest event reaches the create event and stops (no end);
        dir=f from the start gives the same events in the other order; v10 and v12."""
        _, tok = await self.register("alice")
        for version in ("10", "12"):
            room_id = await self.create_room(tok, room_version=version)
            for i in range(7):
                await self.send(tok, room_id, text(f"m{i}"))
            backwards = await self.walk(tok, room_id, "b", 3)
            self.assertEqual(backwards[-1]["type"], "m.room.create")
            self.assertEqual(bodies(backwards), [f"m{i}" for i in reversed(range(7))])
            forwards = await self.walk(tok, room_id, "f", 4)
            self.assertEqual(forwards[0]["type"], "m.room.create")
            self.assertEqual([e["event_id"] for e in forwards],
                             [e["event_id"] for e in reversed(backwards)])
            ids = [e["event_id"] for e in forwards]
            self.assertEqual(len(ids), len(set(ids)))

    async def test_tokens_continue_and_bound(self):
        """`end` continues a walk, the `start` of a dir=b page read forwards gives
        nothing older, and `to` bounds a page."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        for i in range(6):
            await self.send(tok, room_id, text(f"m{i}"))
        _, page = await self.messages(tok, room_id, limit=2)
        self.assertEqual(bodies(page["chunk"]), ["m5", "m4"])
        _, later = await self.messages(tok, room_id, limit=2, **{"from": page["end"]})
        self.assertEqual(bodies(later["chunk"]), ["m3", "m2"])
        _, nothing_new = await self.messages(tok, room_id, dir="f", **{"from": page["start"]})
        self.assertEqual(nothing_new["chunk"], [])
        self.assertNotIn("end", nothing_new)
        await self.send(tok, room_id, text("m6"))
        _, news = await self.messages(tok, room_id, dir="f", **{"from": page["start"]})
        self.assertEqual(bodies(news["chunk"]), ["m6"])
        _, bounded = await self.messages(tok, room_id, limit=10,
                                         **{"from": page["start"], "to": later["end"]})
        self.assertEqual(bodies(bounded["chunk"]), ["m5", "m4", "m3", "m2"])

    async def test_sync_token_as_from(self):
        """A /sync token (s…) names a point in the room's history."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        await self.send(tok, room_id, text("old"))
        positions = await self.c["store"].current_positions()
        token = str(StreamToken.from_positions(positions))
        await self.send(tok, room_id, text("new"))
        _, forwards = await self.messages(tok, room_id, dir="f", **{"from": token})
        self.assertEqual(bodies(forwards["chunk"]), ["new"])
        _, backwards = await self.messages(tok, room_id, limit=1, **{"from": token})
        self.assertEqual(bodies(backwards["chunk"]), ["old"])

    async def test_start_is_the_given_from(self):
        """`start` is the `from` token as given (spec: "the same as the value given in
        from"), for /messages and /sync tokens alike."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        await self.send(tok, room_id, text("old"))
        sync_token = str(StreamToken.from_positions(await self.c["store"].current_positions()))
        _, page = await self.messages(tok, room_id, limit=1)
        for given in (page["end"], sync_token):
            for direction in ("b", "f"):
                _, again = await self.messages(tok, room_id, dir=direction,
                                               **{"from": given})
                self.assertEqual(again["start"], given)

    async def test_prev_batch_pages_strictly_before_the_timeline(self):
        """dir=b from a limited timeline's prev_batch starts with the event just before
        its first one and walks back to what an earlier sync gave: nothing skipped,
        nothing repeated (spec: "Syncing", limited timelines)."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        for i in range(8):
            await self.send(tok, room_id, text(f"m{i}"))
        flt = json.dumps({"room": {"timeline": {"limit": 3}}})
        _, first = await self.request("GET", f"/_matrix/client/v3/sync?filter={q(flt)}",
                                      token=tok)
        timeline = first["rooms"]["join"][room_id]["timeline"]
        self.assertEqual((bodies(timeline["events"]), timeline["limited"]),
                         (["m5", "m6", "m7"], True))
        older = await self.walk(tok, room_id, "b", 4, start=timeline["prev_batch"])
        self.assertEqual(bodies(older), ["m4", "m3", "m2", "m1", "m0"])
        self.assertEqual(older[-1]["type"], "m.room.create")
        known = {e["event_id"] for e in timeline["events"] + older}
        self.assertEqual(len(known), len(timeline["events"]) + len(older))

        for i in range(8, 14):
            await self.send(tok, room_id, text(f"m{i}"))
        _, second = await self.request(
            "GET", f"/_matrix/client/v3/sync?filter={q(flt)}&since={first['next_batch']}",
            token=tok)
        timeline = second["rooms"]["join"][room_id]["timeline"]
        self.assertEqual((bodies(timeline["events"]), timeline["limited"]),
                         (["m11", "m12", "m13"], True))
        _, gap = await self.messages(tok, room_id, limit=4,
                                     **{"from": timeline["prev_batch"]})
        self.assertEqual(bodies(gap["chunk"]), ["m10", "m9", "m8", "m7"])
        self.assertIn(gap["chunk"][-1]["event_id"], known)

    async def test_forwards_from_the_end_of_a_backward_walk(self):
        """Every dir=b page with events has an `end` (the cut just before its oldest
        event) and a walk ends with an empty page without one (as Synapse): dir=f from
        the walk's last `end` reads the room from its create event; for every page
        size."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        for i in range(6):
            await self.send(tok, room_id, text(f"m{i}"))
        _, everything = await self.messages(tok, room_id, dir="f", limit=100)
        oldest_first = [e["event_id"] for e in everything["chunk"]]
        self.assertEqual(everything["chunk"][0]["type"], "m.room.create")
        for limit in range(1, len(oldest_first) + 2):
            params, last_end, walked = {"limit": limit}, None, []
            while True:
                _, page = await self.messages(tok, room_id, **params)
                walked += [e["event_id"] for e in page["chunk"]]
                if "end" not in page:
                    self.assertEqual(page["chunk"], [], limit)
                    break
                last_end = params["from"] = page["end"]
            self.assertEqual(walked, oldest_first[::-1], limit)
            _, forwards = await self.messages(tok, room_id, dir="f", limit=limit,
                                              **{"from": last_end})
            self.assertEqual([e["event_id"] for e in forwards["chunk"]],
                             oldest_first[:limit], limit)

    async def test_filters(self):
        """types/not_types (with *), senders/not_senders and contains_url filter the
        chunk; lazy_load_members adds the senders' member events as state."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        await self.send(alice_tok, room_id, text("a1"))
        await self.send(bob_tok, room_id, {"msgtype": "m.image", "body": "pic",
                                           "url": "mxc://test.local/x"})
        await self.send(bob_tok, room_id, {"x": 1}, event_type="org.example.custom")

        async def chunk(flt: dict) -> list:
            status, page = await self.messages(alice_tok, room_id, limit=50,
                                               filter=json.dumps(flt))
            self.assertEqual(status, 200, page)
            return page["chunk"]

        self.assertEqual({e["type"] for e in await chunk({"types": ["m.room.m*"]})},
                         {"m.room.message", "m.room.member"})
        self.assertNotIn("m.room.member",
                         {e["type"] for e in await chunk({"not_types": ["m.room.member"]})})
        self.assertEqual(bodies(await chunk({"senders": [bob],
                                             "types": ["m.room.message"]})), ["pic"])
        self.assertEqual({e["sender"] for e in await chunk({"not_senders": [bob]})}, {alice})
        self.assertEqual(bodies(await chunk({"contains_url": True})), ["pic"])
        self.assertNotIn("pic", bodies(await chunk({"contains_url": False})))
        self.assertEqual(await chunk({"not_rooms": [room_id]}), [])
        status, page = await self.messages(alice_tok, room_id, limit=1,
                                           filter=json.dumps({"lazy_load_members": True,
                                                              "types": ["m.room.message"]}))
        self.assertEqual([(e["type"], e["state_key"]) for e in page["state"]],
                         [("m.room.member", bob)])

    async def test_bad_parameters(self):
        """Missing dir: M_MISSING_PARAM; bad dir, token or limit: M_INVALID_PARAM; a
        filter that is not JSON: M_NOT_JSON, of the wrong shape: M_BAD_JSON."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        self.assertError(await self.request("GET", self.room(room_id, "/messages"),
                                            token=tok), 400, "M_MISSING_PARAM")
        self.assertError(await self.messages(tok, room_id, dir="x"), 400, "M_INVALID_PARAM")
        self.assertError(await self.messages(tok, room_id, **{"from": "bogus"}), 400,
                         "M_INVALID_PARAM")
        self.assertError(await self.messages(tok, room_id, limit="many"), 400,
                         "M_INVALID_PARAM")
        self.assertError(await self.messages(tok, room_id, filter="{"), 400, "M_NOT_JSON")
        self.assertError(await self.messages(tok, room_id, filter='{"types": "x"}'), 400,
                         "M_BAD_JSON")

    async def test_context(self):
        """/context gives events before (newest first) and after, the state, and
        tokens that continue with /messages; a hidden or unknown event is 404."""
        _, tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(tok, name="Ctx")
        ids = [await self.send(tok, room_id, text(f"m{i}")) for i in range(7)]
        ctx = await self.ok("GET", self.room(room_id, f"/context/{q(ids[3])}?limit=4"),
                            token=tok)
        self.assertEqual(ctx["event"]["event_id"], ids[3])
        self.assertEqual(bodies(ctx["events_before"]), ["m2", "m1"])
        self.assertEqual(bodies(ctx["events_after"]), ["m4", "m5"])
        state = {(e["type"], e["state_key"]) for e in ctx["state"]}
        self.assertIn(("m.room.name", ""), state)
        _, older = await self.messages(tok, room_id, limit=1, **{"from": ctx["start"]})
        self.assertEqual(bodies(older["chunk"]), ["m0"])
        _, newer = await self.messages(tok, room_id, dir="f", **{"from": ctx["end"]})
        self.assertEqual(bodies(newer["chunk"]), ["m6"])
        zero = await self.ok("GET", self.room(room_id, f"/context/{q(ids[0])}?limit=0"),
                             token=tok)
        self.assertEqual((zero["events_before"], zero["events_after"]), ([], []))
        self.assertError(await self.request("GET", self.room(room_id, "/context/$nope"),
                                            token=tok), 404, "M_NOT_FOUND")
        self.assertError(await self.request("GET", self.room(room_id,
                                                             f"/context/{q(ids[0])}"),
                                            token=bob_tok), 403, "M_FORBIDDEN")

    async def test_event(self):
        """/event: unknown events and events the user may not see are 404."""
        _, tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(tok)
        event_id = await self.send(tok, room_id, text("x"))
        self.assertError(await self.request("GET", self.room(room_id, "/event/$unknown"),
                                            token=tok), 404, "M_NOT_FOUND")
        self.assertError(await self.request("GET", self.room(room_id,
                                                             f"/event/{q(event_id)}"),
                                            token=bob_tok), 404, "M_NOT_FOUND")
        self.assertError(await self.request("GET", self.room(room_id, "/event/nodollar"),
                                            token=tok), 400, "M_INVALID_PARAM")

    async def test_ignored_users_are_left_out(self):
        """Messages from users in m.ignored_user_list are not in /messages."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        await self.send(bob_tok, room_id, text("noise"))
        await self.send(alice_tok, room_id, text("signal"))
        await self.c["store"].account_data.set_account_data(
            alice, "m.ignored_user_list", {"ignored_users": {bob: {}}})
        _, page = await self.messages(alice_tok, room_id, limit=50)
        self.assertEqual(bodies(page["chunk"]), ["signal"])
        self.assertIn(bob, [e["state_key"] for e in page["chunk"]
                            if e["type"] == "m.room.member"])


class MembersTests(RoomsTestCase):
    async def test_members_and_filters(self):
        """/members lists member events, filtered by membership / not_membership."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        carol, _ = await self.register("carol")
        room_id = await self.create_room(alice_tok)
        await self.invite(alice_tok, room_id, bob)
        await self.join(bob_tok, room_id)
        await self.invite(alice_tok, room_id, carol)

        async def members(query: str = "") -> dict:
            page = await self.ok("GET", self.room(room_id, "/members" + query),
                                 token=alice_tok)
            return {e["state_key"]: e["content"]["membership"] for e in page["chunk"]}

        self.assertEqual(await members(), {alice: "join", bob: "join", carol: "invite"})
        self.assertEqual(await members("?membership=invite"), {carol: "invite"})
        self.assertEqual(await members("?not_membership=join"), {carol: "invite"})
        self.assertEqual(await members("?membership=invite&not_membership=invite"),
                         {alice: "join", bob: "join", carol: "invite"})
        self.assertError(await self.request("GET", self.room(room_id, "/members?membership=x"),
                                            token=alice_tok), 400, "M_INVALID_PARAM")

    async def test_members_at_a_token_and_after_leaving(self):
        """?at= gives the members at that point; a member who left sees the members
        as they were when they left; strangers get 403."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        carol, carol_tok = await self.register("carol")
        _, dave_tok = await self.register("dave")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        _, page = await self.messages(alice_tok, room_id, limit=1)
        at = page["start"]
        await self.join(carol_tok, room_id)
        past = await self.ok("GET", self.room(room_id, f"/members?at={q(at)}"),
                             token=alice_tok)
        self.assertEqual({e["state_key"] for e in past["chunk"]}, {alice, bob})
        await self.ok("POST", self.room(room_id, "/leave"), {}, token=bob_tok)
        await self.ok("POST", self.room(room_id, "/kick"), {"user_id": carol},
                      token=alice_tok)
        left = await self.ok("GET", self.room(room_id, "/members"), token=bob_tok)
        memberships = {e["state_key"]: e["content"]["membership"] for e in left["chunk"]}
        self.assertEqual(memberships, {alice: "join", bob: "leave", carol: "join"})
        self.assertError(await self.request("GET", self.room(room_id, "/members"),
                                            token=dave_tok), 403, "M_FORBIDDEN")

    async def test_joined_members(self):
        """/joined_members maps joined users to display names, for members only."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        resp = await self.ok("GET", self.room(room_id, "/joined_members"), token=bob_tok)
        self.assertEqual(resp, {"joined": {alice: {"display_name": "alice"},
                                           bob: {"display_name": "bob"}}})
        await self.ok("POST", self.room(room_id, "/leave"), {}, token=bob_tok)
        self.assertError(await self.request("GET", self.room(room_id, "/joined_members"),
                                            token=bob_tok), 403, "M_FORBIDDEN")


class HistoryVisibilityTests(RoomsTestCase):
    """The history visibility rules as seen through /messages and /event."""

    async def room_with_history(self, visibility: str) -> tuple:
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(
            alice_tok, initial_state=[{"type": "m.room.history_visibility",
                                       "content": {"history_visibility": visibility}}])
        await self.send(alice_tok, room_id, text("before invite"))
        await self.invite(alice_tok, room_id, bob)
        await self.send(alice_tok, room_id, text("while invited"))
        await self.join(bob_tok, room_id)
        await self.send(alice_tok, room_id, text("while joined"))
        await self.ok("POST", self.room(room_id, "/leave"), {}, token=bob_tok)
        await self.send(alice_tok, room_id, text("after leaving"))
        return room_id, alice_tok, bob_tok

    async def seen_by_bob(self, visibility: str) -> list:
        room_id, _, bob_tok = await self.room_with_history(visibility)
        status, page = await self.messages(bob_tok, room_id, dir="f", limit=100)
        self.assertEqual(status, 200, page)
        return bodies(page["chunk"])

    async def test_shared(self):
        """shared: everything up to leaving, nothing after."""
        self.assertEqual(await self.seen_by_bob("shared"),
                         ["before invite", "while invited", "while joined"])

    async def test_invited(self):
        """invited: from the invite on, until leaving."""
        self.assertEqual(await self.seen_by_bob("invited"),
                         ["while invited", "while joined"])

    async def test_joined(self):
        """joined: only while joined."""
        self.assertEqual(await self.seen_by_bob("joined"), ["while joined"])

    async def test_world_readable(self):
        """world_readable: everything, even after leaving, and for strangers."""
        room_id, _, bob_tok = await self.room_with_history("world_readable")
        status, page = await self.messages(bob_tok, room_id, dir="f", limit=100)
        self.assertEqual(bodies(page["chunk"]), ["before invite", "while invited",
                                                 "while joined", "after leaving"])
        _, stranger = await self.register("stranger")
        status, page = await self.messages(stranger, room_id, dir="b", limit=100)
        self.assertEqual(status, 200, page)
        self.assertEqual(bodies(page["chunk"])[0], "after leaving")

    async def test_own_membership_events_are_visible(self):
        """With joined visibility the user still sees their own join and leave."""
        room_id, _, bob_tok = await self.room_with_history("joined")
        _, page = await self.messages(bob_tok, room_id, dir="f", limit=100)
        bob_members = [e["content"]["membership"] for e in page["chunk"]
                       if e["type"] == "m.room.member" and e["state_key"] == "@bob:test.local"]
        self.assertEqual(bob_members, ["join", "leave"])

    async def test_hidden_history_pages_backwards_to_an_end(self):
        """A joined member of a 'joined' room paging back through many hidden events
        still reaches an end with only the visible events."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(
            alice_tok, visibility="public",
            initial_state=[{"type": "m.room.history_visibility",
                            "content": {"history_visibility": "joined"}}])
        for i in range(30):
            await self.send(alice_tok, room_id, text(f"hidden {i}"))
        await self.join(bob_tok, room_id)
        await self.send(alice_tok, room_id, text("seen"))
        seen, params = [], {"limit": 5}
        for _ in range(50):
            _, page = await self.messages(bob_tok, room_id, **params)
            seen += bodies(page["chunk"])
            if "end" not in page:
                break
            params["from"] = page["end"]
        else:
            self.fail("never reached the end")
        self.assertEqual(seen, ["seen"])

    async def test_event_endpoint_applies_visibility(self):
        """/event of an event from before a 'joined' member joined is 404."""
        alice, alice_tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(
            alice_tok, visibility="public",
            initial_state=[{"type": "m.room.history_visibility",
                            "content": {"history_visibility": "joined"}}])
        early = await self.send(alice_tok, room_id, text("early"))
        await self.join(bob_tok, room_id)
        late = await self.send(alice_tok, room_id, text("late"))
        self.assertError(await self.request("GET", self.room(room_id, f"/event/{q(early)}"),
                                            token=bob_tok), 404, "M_NOT_FOUND")
        await self.ok("GET", self.room(room_id, f"/event/{q(late)}"), token=bob_tok)
