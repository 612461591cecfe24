"""GET /_matrix/client/v1/rooms/{roomId}/hierarchy (spec: space_hierarchy.yaml)."""

from __future__ import annotations

from urllib.parse import urlencode

from tests.client_api.harness import q
from tests.client_api.room_helpers import RoomsTestCase
from tests.fakes.federation_client import FakeFederationClient

V1 = "/_matrix/client/v1"


class HierarchyCase(RoomsTestCase):
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


class HierarchyTests(HierarchyCase):
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


FED_HIERARCHY = "/_matrix/federation/v1/hierarchy/"


def fed_path(room_id: str) -> str:
    return FED_HIERARCHY + q(room_id)


def chunk(room_id: str, **extra) -> dict:
    return {"room_id": room_id, "num_joined_members": 1, "world_readable": False,
            "guest_can_join": False, "join_rule": "public", **extra}


def child_link(child: str, via: str = "far.example", **content) -> dict:
    return {"type": "m.space.child", "state_key": child, "sender": "@a:far.example",
            "origin_server_ts": 5, "content": {"via": [via], **content}}


class RemoteHierarchyTests(HierarchyCase):
    """Rooms we are not in are asked of the servers in the link's ``via``, with
    the federation client replaced by a fake."""

    def setUp(self):
        super().setUp()
        self.fed = FakeFederationClient()
        self.c["remote_spaces"]._client = self.fed

    async def link_remote(self, token: str, space: str, child: str, **content) -> None:
        await self.put_state(token, space, "m.space.child",
                             {"via": ["far.example"], **content}, state_key=child)

    async def test_remote_child_space_walked(self):
        """A local space's remote child space is described by its server, with its
        children_state; its public non-space child comes from that same answer (no
        second request), an inaccessible child is skipped, and allowed_room_ids is
        not passed on."""
        _, token = await self.register("alice")
        root = await self.space(token, "root")
        remote, leaf, hidden = "!rs:far.example", "!leaf:far.example", "!hid:far.example"
        await self.link_remote(token, root, remote)
        self.fed.answer("GET", "far.example", fed_path(remote), {
            "room": chunk(remote, room_type="m.space", name="remote space",
                          allowed_room_ids=[],
                          children_state=[child_link(leaf, order="a"),
                                          child_link(hidden, order="b")]),
            "children": [chunk(leaf, name="leaf", allowed_room_ids=[])],
            "inaccessible_children": [hidden]})
        await self.settled()
        status, body = await self.hierarchy(token, root)
        self.assertEqual(status, 200, body)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root, remote, leaf])
        described = body["rooms"][1]
        self.assertEqual(described["name"], "remote space")
        self.assertEqual([c["state_key"] for c in described["children_state"]],
                         [leaf, hidden])
        self.assertNotIn("allowed_room_ids", described)
        self.assertEqual((body["rooms"][2]["name"], body["rooms"][2]["children_state"]),
                         ("leaf", []))
        self.assertEqual([(r[1], r[2], r[3]) for r in self.fed.requests],
                         [("far.example", fed_path(remote), {"suggested_only": "false"})])

    async def test_restricted_remote_room_needs_allowed_membership(self):
        """A restricted remote child is shown only to a user joined to one of its
        allowed rooms."""
        _, alice = await self.register("alice")
        _, bob = await self.register("bob")
        root = await self.space(alice, "root")
        members_room = await self.create_room(alice, preset="public_chat")
        await self.join(bob, members_room)
        remote = "!club:far.example"
        await self.link_remote(alice, root, remote)
        self.fed.answer("GET", "far.example", fed_path(remote), {
            "room": chunk(remote, join_rule="restricted",
                          allowed_room_ids=[members_room], children_state=[]),
            "children": [], "inaccessible_children": []})
        await self.settled()
        _, carol = await self.register("carol")
        _, body = await self.hierarchy(bob, root)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root, remote])
        _, body = await self.hierarchy(carol, root)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root])

    async def test_remote_root_and_pagination(self):
        """A space we do not hold is asked of its ID's server; pages and max_depth
        work on the remote walk, and the pages share one request (cached)."""
        _, token = await self.register("alice")
        space = "!top:far.example"
        children = [f"!c{i}:far.example" for i in range(3)]
        self.fed.answer("GET", "far.example", fed_path(space), {
            "room": chunk(space, room_type="m.space",
                          children_state=[child_link(c, order=str(i))
                                          for i, c in enumerate(children)]),
            "children": [chunk(c) for c in children], "inaccessible_children": []})
        _, page1 = await self.hierarchy(token, space, limit=2)
        self.assertEqual([r["room_id"] for r in page1["rooms"]], [space, children[0]])
        _, page2 = await self.hierarchy(token, space, limit=2,
                                        **{"from": page1["next_batch"]})
        self.assertEqual([r["room_id"] for r in page2["rooms"]], children[1:])
        self.assertNotIn("next_batch", page2)
        _, shallow = await self.hierarchy(token, space, max_depth=0)
        self.assertEqual([r["room_id"] for r in shallow["rooms"]], [space])
        self.assertEqual(len(self.fed.requests), 1)

    async def test_private_remote_root_and_unreachable_children(self):
        """A private remote space is 403 like a private local one; a remote child
        whose servers cannot be reached is left out."""
        _, token = await self.register("alice")
        private = "!priv:far.example"
        self.fed.answer("GET", "far.example", fed_path(private), {
            "room": chunk(private, join_rule="invite", children_state=[]),
            "children": [], "inaccessible_children": []})
        status, body = await self.hierarchy(token, private)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        status, body = await self.hierarchy(token, "!unknown:nowhere.example")
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        root = await self.space(token, "root")
        await self.link_remote(token, root, "!gone:far.example")
        await self.settled()
        _, body = await self.hierarchy(token, root)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [root])
