"""Relations and threads over HTTP: filtering, pagination in both directions, sync
tokens, recursion, history visibility, bundled aggregations and the threads list
(spec: "Relationships API", "Threading")."""

from __future__ import annotations

from tests.client_api.harness import ServerTestCase, q

V1 = "/_matrix/client/v1/rooms/"


def thread(root: str, body: str = "reply") -> dict:
    return {"msgtype": "m.text", "body": body,
            "m.relates_to": {"rel_type": "m.thread", "event_id": root}}


def edit(target: str, body: str) -> dict:
    return {"msgtype": "m.text", "body": "* " + body,
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target}}


class RelationsTests(ServerTestCase):
    async def setup_room(self):
        self.alice, self.token = await self.register("alice")
        self.room = await self.create_room(self.token, preset="public_chat")
        self.root = await self.send(self.token, self.room, {"msgtype": "m.text",
                                                            "body": "root"})

    async def relations(self, *suffix: str, token: str | None = None, **params):
        path = V1 + q(self.room) + "/relations/" + q(self.root)
        for part in suffix:
            path += "/" + q(part)
        if params:
            path += "?" + "&".join(f"{k}={q(str(v))}" for k, v in params.items())
        return await self.request("GET", path, token=token or self.token)

    async def test_filter_by_rel_type_and_event_type(self):
        """All children, then by relType, then by relType and eventType (as Complement)."""
        await self.setup_room()
        t1 = await self.send(self.token, self.room, thread(self.root))
        dummy = await self.send(self.token, self.room,
                                {"m.relates_to": {"rel_type": "m.thread",
                                                  "event_id": self.root}}, "m.dummy")
        e1 = await self.send(self.token, self.room, edit(self.root, "edited root"))
        status, body = await self.relations()
        self.assertEqual(status, 200)
        self.assertEqual([e["event_id"] for e in body["chunk"]], [e1, dummy, t1])
        self.assertNotIn("next_batch", body)
        self.assertNotIn("recursion_depth", body)
        _, body = await self.relations("m.thread")
        self.assertEqual([e["event_id"] for e in body["chunk"]], [dummy, t1])
        _, body = await self.relations("m.thread", "m.room.message")
        self.assertEqual([e["event_id"] for e in body["chunk"]], [t1])
        self.assertEqual(body["chunk"][0]["content"]["body"], "reply")
        self.assertEqual(body["chunk"][0]["room_id"], self.room)

    async def test_pagination(self):
        """limit/from pages backwards and (dir=f) forwards, as Complement checks."""
        await self.setup_room()
        ids = [await self.send(self.token, self.room, thread(self.root, f"r{i}"))
               for i in range(10)]
        status, body = await self.relations(limit=3)
        self.assertEqual([e["event_id"] for e in body["chunk"]], ids[9:6:-1])
        _, body2 = await self.relations(limit=3, **{"from": body["next_batch"]})
        self.assertEqual([e["event_id"] for e in body2["chunk"]], ids[6:3:-1])
        self.assertEqual(body2["prev_batch"], body["next_batch"])
        _, fwd = await self.relations(limit=3, dir="f")
        self.assertEqual([e["event_id"] for e in fwd["chunk"]], ids[0:3])
        _, fwd2 = await self.relations(limit=3, dir="f", **{"from": fwd["next_batch"]})
        self.assertEqual([e["event_id"] for e in fwd2["chunk"]], ids[3:6])
        _, last = await self.relations(limit=6, dir="f", **{"from": fwd2["next_batch"]})
        self.assertEqual([e["event_id"] for e in last["chunk"]], ids[6:])
        self.assertNotIn("next_batch", last)

    async def test_from_sync_token(self):
        """A /sync next_batch works as ``from``: dir=f gives what came after it."""
        await self.setup_room()
        await self.send(self.token, self.room, thread(self.root, "before"))
        since = (await self.sync(self.token))["next_batch"]
        after = [await self.send(self.token, self.room, thread(self.root, f"after {i}"))
                 for i in range(3)]
        _, body = await self.relations(dir="f", limit=2, **{"from": since})
        self.assertEqual([e["event_id"] for e in body["chunk"]], after[:2])
        _, body = await self.relations(dir="f", limit=2, **{"from": body["next_batch"]})
        self.assertEqual([e["event_id"] for e in body["chunk"]], after[2:])

    async def test_recurse(self):
        """recurse=true includes relations of relations and reports recursion_depth."""
        await self.setup_room()
        t1 = await self.send(self.token, self.room, thread(self.root))
        reaction = await self.send(self.token, self.room, {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": t1, "key": "👍"}}, "m.reaction")
        _, body = await self.relations(recurse="false")
        self.assertEqual([e["event_id"] for e in body["chunk"]], [t1])
        self.assertEqual(body["recursion_depth"], 1)
        _, body = await self.relations(recurse="true")
        self.assertEqual([e["event_id"] for e in body["chunk"]], [reaction, t1])
        self.assertGreaterEqual(body["recursion_depth"], 3)

    async def test_bad_parameters(self):
        """Malformed limit, dir, from and recurse are 400 M_INVALID_PARAM."""
        await self.setup_room()
        for params in ({"limit": "abc"}, {"limit": "0"}, {"dir": "x"},
                       {"from": "garbage"}, {"recurse": "maybe"}, {"to": "s1_2"}):
            status, body = await self.relations(**params)
            self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"), params)

    async def test_unknown_or_hidden_parent_is_404(self):
        """An unknown parent, unknown room or a room the user cannot read is 404."""
        await self.setup_room()
        path = V1 + q(self.room) + "/relations/" + q("$nope")
        status, body = await self.request("GET", path, token=self.token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        path = V1 + q("!nowhere:test.local") + "/relations/" + q(self.root)
        status, body = await self.request("GET", path, token=self.token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        _, stranger = await self.register("stranger")
        private = await self.create_room(self.token)
        secret = await self.send(self.token, private, {"msgtype": "m.text", "body": "s"})
        path = V1 + q(private) + "/relations/" + q(secret)
        status, body = await self.request("GET", path, token=stranger)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.request("GET", path)
        self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"))

    async def test_history_visibility_hides_children(self):
        """Children the user may not see are left out; a hidden parent is 404."""
        await self.setup_room()
        hv = f"/_matrix/client/v3/rooms/{q(self.room)}/state/m.room.history_visibility/"
        status, _ = await self.request("PUT", hv, {"history_visibility": "world_readable"},
                                       token=self.token)
        self.assertEqual(status, 200)
        self.root = await self.send(self.token, self.room, {"msgtype": "m.text",
                                                            "body": "public root"})
        status, _ = await self.request("PUT", hv, {"history_visibility": "joined"},
                                       token=self.token)
        self.assertEqual(status, 200)
        hidden_root = await self.send(self.token, self.room, {"msgtype": "m.text",
                                                              "body": "members only"})
        early = await self.send(self.token, self.room, thread(self.root, "early"))
        bob, bob_token = await self.register("bob")
        status, _ = await self.request("POST", f"/_matrix/client/v3/join/{q(self.room)}",
                                       {}, token=bob_token)
        self.assertEqual(status, 200)
        late = await self.send(self.token, self.room, thread(self.root, "late"))
        _, body = await self.relations(token=self.token)
        self.assertEqual([e["event_id"] for e in body["chunk"]], [late, early])
        _, body = await self.relations(token=bob_token)
        self.assertEqual([e["event_id"] for e in body["chunk"]], [late])
        _, body = await self.relations(token=bob_token, limit=1)
        self.assertEqual([e["event_id"] for e in body["chunk"]], [late])
        self.root = hidden_root
        status, body = await self.relations(token=bob_token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    async def test_bundled_aggregations(self):
        """Returned events carry m.thread, m.replace and m.reference bundles."""
        await self.setup_room()
        target = await self.send(self.token, self.room, thread(self.root, "in thread"))
        first = await self.send(self.token, self.room, edit(target, "edit 1"))
        latest = await self.send(self.token, self.room, edit(target, "edit 2"))
        ref = await self.send(self.token, self.room, {"msgtype": "m.text", "body": "see",
                              "m.relates_to": {"rel_type": "m.reference",
                                               "event_id": target}})
        _, body = await self.relations("m.thread")
        [child] = body["chunk"]
        relations = child["unsigned"]["m.relations"]
        self.assertEqual(relations["m.replace"]["event_id"], latest)
        self.assertNotEqual(relations["m.replace"]["event_id"], first)
        self.assertEqual(relations["m.reference"], {"chunk": [{"event_id": ref}]})
        status, body = await self.request(
            "GET", V1 + q(self.room) + "/threads", token=self.token)
        [root] = body["chunk"]
        self.assertEqual(root["event_id"], self.root)
        bundle = root["unsigned"]["m.relations"]["m.thread"]
        self.assertEqual(bundle["count"], 1)
        self.assertTrue(bundle["current_user_participated"])
        self.assertEqual(bundle["latest_event"]["event_id"], target)
        self.assertEqual(
            bundle["latest_event"]["unsigned"]["m.relations"]["m.replace"]["event_id"],
            latest)


    async def test_check_new_relation(self):
        """A thread off an event that has a relation, or off an unknown event, is
        refused with 400 M_UNKNOWN (spec: "Validation of m.thread relationships")."""
        await self.setup_room()
        child = await self.send(self.token, self.room, thread(self.root))
        actor = await self.c["rooms"].get(self.room)
        relations = self.c["relations"]
        await relations.check_new_relation(actor, thread(self.root))
        await relations.check_new_relation(actor, {"body": "no relation"})
        for content in (thread(child), thread("$unknown")):
            with self.assertRaises(Exception) as caught:
                await relations.check_new_relation(actor, content)
            self.assertEqual((caught.exception.status, caught.exception.errcode),
                             (400, "M_UNKNOWN"))


class ThreadsTests(ServerTestCase):
    async def test_threads_list(self):
        """Roots are listed by latest reply; include=participated and paging work."""
        alice, token = await self.register("alice")
        bob, bob_token = await self.register("bob")
        room = await self.create_room(token, preset="public_chat")
        await self.request("POST", f"/_matrix/client/v3/join/{q(room)}", {}, token=bob_token)
        root_a = await self.send(token, room, {"msgtype": "m.text", "body": "A"})
        root_b = await self.send(bob_token, room, {"msgtype": "m.text", "body": "B"})
        await self.send(bob_token, room, thread(root_a, "a1"))
        await self.send(bob_token, room, thread(root_b, "b1"))
        await self.send(token, room, {"msgtype": "m.text", "body": "no thread"})
        await self.send(bob_token, room, thread(root_a, "a2"))
        path = V1 + q(room) + "/threads"
        status, body = await self.request("GET", path, token=token)
        self.assertEqual(status, 200)
        self.assertEqual([e["event_id"] for e in body["chunk"]], [root_a, root_b])
        self.assertNotIn("next_batch", body)
        self.assertEqual(body["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"], 2)
        _, body = await self.request("GET", path + "?include=participated", token=token)
        self.assertEqual([e["event_id"] for e in body["chunk"]], [root_a])
        _, body = await self.request("GET", path + "?limit=1", token=bob_token)
        self.assertEqual([e["event_id"] for e in body["chunk"]], [root_a])
        _, body = await self.request("GET", path + "?limit=1&from=" + q(body["next_batch"]),
                                     token=bob_token)
        self.assertEqual([e["event_id"] for e in body["chunk"]], [root_b])

    async def test_threads_errors(self):
        """Bad include/limit/from are 400; a room the user cannot see is 403."""
        alice, token = await self.register("alice")
        _, other = await self.register("other")
        room = await self.create_room(token)
        path = V1 + q(room) + "/threads"
        for qs in ("?include=some", "?limit=abc", "?limit=0", "?from=zzz"):
            status, body = await self.request("GET", path + qs, token=token)
            self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"), qs)
        status, body = await self.request("GET", path, token=other)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        status, body = await self.request("GET", V1 + q("!no:test.local") + "/threads",
                                          token=token)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))

    async def test_ignored_users(self):
        """Replies from ignored users are not counted; their roots come back redacted."""
        alice, token = await self.register("alice")
        bob, bob_token = await self.register("bob")
        room = await self.create_room(token, preset="public_chat")
        await self.request("POST", f"/_matrix/client/v3/join/{q(room)}", {}, token=bob_token)
        root = await self.send(token, room, {"msgtype": "m.text", "body": "mine"})
        await self.send(token, room, thread(root, "me"))
        await self.send(bob_token, room, thread(root, "bob"))
        bobs_root = await self.send(bob_token, room, {"msgtype": "m.text", "body": "bob's"})
        await self.send(token, room, thread(bobs_root, "reply to bob"))
        await self.c["store"].account_data.set_account_data(
            alice, "m.ignored_user_list", {"ignored_users": {bob: {}}})
        _, body = await self.request("GET", V1 + q(room) + "/threads", token=token)
        by_id = {e["event_id"]: e for e in body["chunk"]}
        self.assertEqual(by_id[root]["unsigned"]["m.relations"]["m.thread"]["count"], 1)
        self.assertEqual(by_id[bobs_root]["content"], {})
