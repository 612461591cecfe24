"""POST /search: matching, ordering, pagination, context, filters, groups, state,
visibility and redactions (spec: Client-Server API, "Server Side Search")."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase, q

SEARCH = "/_matrix/client/v3/search"


def criteria(term: str, **extra) -> dict:
    return {"search_categories": {"room_events": {"search_term": term, **extra}}}


class SearchTests(ServerTestCase):
    async def setUp(self):
        super().setUp()
        self.alice, self.token = await self.register("alice")
        self.room = await self.create_room(self.token, preset="private_chat")

    async def search(self, body: dict, token: str | None = None, next_batch=None):
        path = SEARCH + ("" if next_batch is None else "?next_batch=" + q(next_batch))
        status, resp = await self.request("POST", path, body, token=token or self.token)
        self.assertEqual(status, 200, resp)
        return resp["search_categories"]["room_events"]

    async def message(self, body: str, room: str | None = None, token: str | None = None):
        return await self.send(token or self.token, room or self.room,
                               {"msgtype": "m.text", "body": body})

    async def test_search_by_body(self):
        """A message is found by a word of its body; the result is a full client event."""
        event_id = await self.message("hello, world")
        await self.message("something else")
        found = await self.search(criteria("hello", keys=["content.body"],
                                           filter={"rooms": [self.room]}))
        self.assertEqual(found["count"], 1)
        [result] = found["results"]
        self.assertEqual(result["result"]["event_id"], event_id)
        self.assertEqual(result["result"]["room_id"], self.room)
        self.assertEqual(result["result"]["type"], "m.room.message")
        self.assertEqual(result["result"]["content"]["body"], "hello, world")
        self.assertIsInstance(result["rank"], float)
        self.assertIn("hello", found["highlights"])
        self.assertNotIn("next_batch", found)

    async def test_all_words_must_match(self):
        """Every word must match (as a prefix): "Message 4" finds one of seven."""
        for i in range(1, 8):
            await self.message(f"Message number {i}")
        found = await self.search(criteria("Message 4", order_by="recent"))
        self.assertEqual(found["count"], 1)
        self.assertEqual(found["results"][0]["result"]["content"]["body"],
                         "Message number 4")
        found = await self.search(criteria("mess numb"))
        self.assertEqual(found["count"], 7)

    async def test_context(self):
        """event_context gives the events before (nearest first) and after the result."""
        for i in range(1, 8):
            await self.message(f"Message number {i}")
        found = await self.search(criteria(
            "Message 4", order_by="recent", filter={"limit": 1, "rooms": [self.room]},
            event_context={"before_limit": 2, "after_limit": 2, "include_profile": True}))
        context = found["results"][0]["context"]
        self.assertEqual([e["content"]["body"] for e in context["events_before"]],
                         ["Message number 3", "Message number 2"])
        self.assertEqual([e["content"]["body"] for e in context["events_after"]],
                         ["Message number 5", "Message number 6"])
        self.assertIn("start", context)
        self.assertIn("end", context)
        self.assertEqual(context["profile_info"][self.alice].get("displayname"), "alice")
        self.assertIn("next_batch", found)

    async def test_recent_pagination(self):
        """Pages of ``recent`` results follow on without gaps; count stays the total."""
        ids = [await self.message(f"Message number {i}") for i in range(20)]
        body = criteria("Message", order_by="recent", filter={"limit": 10,
                                                              "rooms": [self.room]})
        page1 = await self.search(body)
        self.assertEqual([r["result"]["event_id"] for r in page1["results"]], ids[:9:-1])
        self.assertEqual(page1["count"], 20)
        page2 = await self.search(body, next_batch=page1["next_batch"])
        self.assertEqual([r["result"]["event_id"] for r in page2["results"]], ids[9::-1])
        page3 = await self.search(body, next_batch=page2["next_batch"])
        self.assertEqual(page3["results"], [])
        self.assertEqual(page3["count"], 20)
        self.assertNotIn("next_batch", page3)

    async def test_rank_pagination_across_rooms(self):
        """``rank`` pages across several rooms return every hit exactly once."""
        other = await self.create_room(self.token)
        ids = set()
        for i in range(7):
            ids.add(await self.message(f"cake {i}", room=self.room if i % 2 else other))
        body = criteria("cake", filter={"limit": 3})
        seen, next_batch = [], None
        for _ in range(4):
            page = await self.search(body, next_batch=next_batch)
            seen += [r["result"]["event_id"] for r in page["results"]]
            ranks = [r["rank"] for r in page["results"]]
            self.assertEqual(ranks, sorted(ranks, reverse=True))
            next_batch = page.get("next_batch")
            if next_batch is None:
                break
        self.assertEqual(sorted(seen), sorted(ids))
        self.assertEqual(page["count"], 7)

    async def test_recent_across_rooms(self):
        """``recent`` merges rooms newest first and pages across them."""
        other = await self.create_room(self.token)
        ids = [await self.message(f"pie {i}", room=(self.room, other)[i % 2])
               for i in range(6)]
        body = criteria("pie", order_by="recent", filter={"limit": 4})
        page1 = await self.search(body)
        page2 = await self.search(body, next_batch=page1["next_batch"])
        got = [r["result"]["event_id"] for r in page1["results"] + page2["results"]]
        self.assertEqual(got, ids[::-1])

    async def test_names_topics_and_keys(self):
        """Room names and topics are searchable; ``keys`` restricts where to look."""
        await self.request("PUT", f"/_matrix/client/v3/rooms/{q(self.room)}/state/"
                                  "m.room.name/", {"name": "Walrus club"}, token=self.token)
        await self.request("PUT", f"/_matrix/client/v3/rooms/{q(self.room)}/state/"
                                  "m.room.topic/", {"topic": "walruses only"},
                           token=self.token)
        await self.message("walrus facts")
        found = await self.search(criteria("walrus"))
        self.assertEqual(sorted(r["result"]["type"] for r in found["results"]),
                         ["m.room.message", "m.room.name", "m.room.topic"])
        found = await self.search(criteria("walrus", keys=["content.name"]))
        self.assertEqual([r["result"]["type"] for r in found["results"]], ["m.room.name"])
        found = await self.search(criteria("walrus", filter={"types": ["m.room.topic"]}))
        self.assertEqual([r["result"]["type"] for r in found["results"]], ["m.room.topic"])
        found = await self.search(criteria("walrus", filter={"not_types": ["m.room.*"]}))
        self.assertEqual(found["results"], [])

    async def test_redacted_events_are_not_found(self):
        """A redacted message is not found, with either ordering."""
        gone = await self.message("This message is going to be redacted")
        kept = await self.message("This message is not going to be redacted")
        status, _ = await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(self.room)}/redact/{q(gone)}/t1",
            {"reason": "testing"}, token=self.token)
        self.assertEqual(status, 200)
        for order in ("rank", "recent"):
            found = await self.search(criteria("redacted", order_by=order))
            self.assertEqual([r["result"]["event_id"] for r in found["results"]], [kept])

    async def test_only_rooms_of_the_user(self):
        """Other users' rooms are never searched, even when named in the filter."""
        bob, bob_token = await self.register("bob")
        bobs_room = await self.create_room(bob_token)
        await self.message("secret plans", room=bobs_room, token=bob_token)
        found = await self.search(criteria("secret", filter={"rooms": [bobs_room]}))
        self.assertEqual((found["results"], found["count"]), ([], 0))
        found = await self.search(criteria("secret"))
        self.assertEqual(found["count"], 0)

    async def test_history_visibility_and_leaving(self):
        """Messages before joining a joined-only room, or after leaving, are not found."""
        bob, bob_token = await self.register("bob")
        room = await self.create_room(self.token, preset="public_chat")
        await self.request("PUT", f"/_matrix/client/v3/rooms/{q(room)}/state/"
                                  "m.room.history_visibility/",
                           {"history_visibility": "joined"}, token=self.token)
        await self.message("zebra before", room=room)
        await self.request("POST", f"/_matrix/client/v3/join/{q(room)}", {}, token=bob_token)
        during = await self.message("zebra during", room=room)
        await self.request("POST", f"/_matrix/client/v3/rooms/{q(room)}/leave", {},
                           token=bob_token)
        await self.message("zebra after", room=room)
        found = await self.search(criteria("zebra", order_by="recent"), token=bob_token)
        self.assertEqual([r["result"]["event_id"] for r in found["results"]], [during])
        self.assertEqual(found["count"], 1)
        found = await self.search(criteria("zebra"))
        self.assertEqual(found["count"], 3)

    async def test_groups_and_state(self):
        """groupings give per-room and per-sender result lists; include_state the state."""
        e1 = await self.message("grouped one")
        e2 = await self.message("grouped two")
        found = await self.search(criteria(
            "grouped", order_by="recent", include_state=True,
            groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]}))
        self.assertEqual(found["groups"]["room_id"][self.room]["results"], [e2, e1])
        self.assertEqual(found["groups"]["sender"][self.alice]["results"], [e2, e1])
        types = {e["type"] for e in found["state"][self.room]}
        self.assertIn("m.room.create", types)
        self.assertIn("m.room.member", types)

    async def test_bundled_aggregations_on_results(self):
        """Results carry bundled aggregations (an edit of the result)."""
        original = await self.message("kettle")
        edit = await self.send(self.token, self.room, {
            "msgtype": "m.text", "body": "* teapot",
            "m.new_content": {"msgtype": "m.text", "body": "teapot"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original}})
        found = await self.search(criteria("kettle"))
        [result] = found["results"]
        self.assertEqual(result["result"]["unsigned"]["m.relations"]["m.replace"]["event_id"],
                         edit)

    async def test_no_category_and_empty_terms(self):
        """No room_events category gives no results; a term of punctuation finds nothing."""
        status, body = await self.request("POST", SEARCH, {"search_categories": {}},
                                          token=self.token)
        self.assertEqual((status, body), (200, {"search_categories": {}}))
        await self.message("?!")
        found = await self.search(criteria("?!"))
        self.assertEqual((found["results"], found["count"]), ([], 0))

    async def test_bad_requests(self):
        """Malformed bodies and tokens are 400 with the right errcode; no token is 401."""
        cases = [
            ({}, "M_MISSING_PARAM"),
            ({"search_categories": []}, "M_BAD_JSON"),
            ({"search_categories": {"room_events": {}}}, "M_MISSING_PARAM"),
            (criteria(5), "M_BAD_JSON"),
            (criteria("x", keys=["content.nope"]), "M_INVALID_PARAM"),
            (criteria("x", keys="content.body"), "M_BAD_JSON"),
            (criteria("x", order_by="best"), "M_INVALID_PARAM"),
            (criteria("x", filter={"limit": "ten"}), "M_BAD_JSON"),
            (criteria("x", filter=[]), "M_BAD_JSON"),
            (criteria("x", event_context={"before_limit": -1}), "M_BAD_JSON"),
            (criteria("x", event_context=3), "M_BAD_JSON"),
            (criteria("x", groupings={"group_by": [{"key": "colour"}]}), "M_INVALID_PARAM"),
            (criteria("x", include_state="yes"), "M_BAD_JSON"),
            (criteria("x" * 2000), "M_INVALID_PARAM"),
        ]
        for body, errcode in cases:
            status, resp = await self.request("POST", SEARCH, body, token=self.token)
            self.assertEqual((status, resp.get("errcode")), (400, errcode), body)
        for token in ("nonsense", "eyJvIjoicmFuayIsIm4iOi01fQ"):
            status, resp = await self.request("POST", SEARCH + "?next_batch=" + token,
                                              criteria("x"), token=self.token)
            self.assertEqual((status, resp["errcode"]), (400, "M_INVALID_PARAM"), token)
        status, resp = await self.request("POST", SEARCH, criteria("x"))
        self.assertEqual((status, resp["errcode"]), (401, "M_MISSING_TOKEN"))
