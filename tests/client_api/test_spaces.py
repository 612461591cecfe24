"""GET /_matrix/client/v1/rooms/{roomId}/hierarchy (spec: space_hierarchy.yaml)."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.client_api.room_helpers import RoomsTestCase

V1 = "/_matrix/client/v1"


class HierarchyTests(RoomsTestCase):
    async def hierarchy(self, token: str, room_id: str, **params) -> tuple[int, dict]:
        query = ("?" + urlencode(params)) if params else ""
        return await self.request("GET", f"{V1}/rooms/{room_id}/hierarchy{query}",
                                  token=token)

    async def space(self, token: str, name: str) -> str:
        return await self.create_room(token, preset="public_chat", name=name,
                                      creation_content={"type": "m.space"})

    async def link(self, token: str, space: str, child: str, **content) -> None:
        await self.put_state(token, space, "m.space.child",
                             {"via": ["test.local"], **content}, state_key=child)

    async def settled(self) -> None:
        await self.c["room_service"].stats.settled()

    async def test_walks_children_in_order(self):
        """The space, then its children depth first by ``order``, with children_state
        (stripped m.space.child events) for spaces only."""
        _, token = await self.register("alice")
        root = await self.space(token, "root")
        sub = await self.space(token, "sub")
        a = await self.create_room(token, preset="public_chat", name="a")
        b = await self.create_room(token, preset="public_chat", name="b")
        await self.link(token, root, b, order="2")
        await self.link(token, root, sub, order="1")
        await self.link(token, sub, a)
        await self.settled()
        status, body = await self.hierarchy(token, root)
        self.assertEqual(status, 200, body)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root, sub, a, b])
        first = body["rooms"][0]
        self.assertEqual((first["name"], first["room_type"]), ("root", "m.space"))
        self.assertEqual([c["state_key"] for c in first["children_state"]], [sub, b])
        self.assertEqual(set(first["children_state"][0]),
                         {"type", "state_key", "content", "sender", "origin_server_ts"})
        self.assertEqual(body["rooms"][2]["children_state"], [])
        self.assertNotIn("next_batch", body)

    async def test_max_depth_suggested_only_and_void_links(self):
        """max_depth stops the walk; suggested_only keeps suggested children; a link
        without via is ignored."""
        _, token = await self.register("alice")
        root = await self.space(token, "root")
        sub = await self.space(token, "sub")
        a = await self.create_room(token, preset="public_chat")
        void = await self.create_room(token, preset="public_chat")
        await self.link(token, root, sub, suggested=True)
        await self.link(token, sub, a)
        await self.put_state(token, root, "m.space.child", {"via": []}, state_key=void)
        await self.settled()
        _, body = await self.hierarchy(token, root, max_depth=1)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root, sub])
        _, body = await self.hierarchy(token, root, suggested_only="true")
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root, sub])
        _, body = await self.hierarchy(token, sub, suggested_only="true")
        self.assertEqual([r["room_id"] for r in body["rooms"]], [sub])

    async def test_pagination(self):
        """limit pages the walk; next_batch continues it; changing max_depth between
        pages is 400 M_INVALID_PARAM."""
        _, token = await self.register("alice")
        root = await self.space(token, "root")
        children = [await self.create_room(token, preset="public_chat") for _ in range(3)]
        for i, child in enumerate(children):
            await self.link(token, root, child, order=str(i))
        await self.settled()
        _, page1 = await self.hierarchy(token, root, limit=2)
        self.assertEqual([r["room_id"] for r in page1["rooms"]], [root, children[0]])
        _, page2 = await self.hierarchy(token, root, limit=2, **{"from": page1["next_batch"]})
        self.assertEqual([r["room_id"] for r in page2["rooms"]], children[1:])
        self.assertNotIn("next_batch", page2)
        status, body = await self.hierarchy(token, root, limit=2, max_depth=3,
                                            **{"from": page1["next_batch"]})
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))

    async def test_private_rooms_hidden_and_forbidden(self):
        """A private child the user cannot preview is left out; a private root is 403."""
        _, owner = await self.register("owner")
        _, other = await self.register("other")
        root = await self.space(owner, "root")
        secret = await self.create_room(owner, preset="private_chat")
        await self.link(owner, root, secret)
        await self.settled()
        _, body = await self.hierarchy(other, root)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root])
        _, body = await self.hierarchy(owner, root)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root, secret])
        status, body = await self.hierarchy(other, secret)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))

    async def test_bad_parameters(self):
        """limit 0, a negative max_depth, a bad from and a bad room ID are 400."""
        _, token = await self.register("alice")
        root = await self.space(token, "root")
        for params in ({"limit": 0}, {"max_depth": -1}, {"from": "zzz"},
                       {"suggested_only": "maybe"}):
            status, body = await self.hierarchy(token, root, **params)
            self.assertEqual(status, 400, (params, body))
        status, _ = await self.hierarchy(token, "not-a-room")
        self.assertEqual(status, 400)
