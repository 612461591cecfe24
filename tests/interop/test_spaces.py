"""The space hierarchy across servers, against a real Synapse.

A space on Synapse links a room that exists only on Synapse. Our user's
``GET /_matrix/client/v1/rooms/{space}/hierarchy`` lists that child: asked of Synapse's
``/_matrix/federation/v1/hierarchy`` (the link's ``via``), whether we hold the space
(our user joined it) or not (a v10 space named by its ID's server). The other way,
Synapse's client walks our space, whose child room is ours only. And between two
instances of ours (tests/interop/pair.py): B's user walks a space of A's.
"""

from __future__ import annotations


from twisted.trial import unittest

from tests.interop.common import (
    ServerSteps, q, register, register_on_synapse)
from tests.interop.synapse import Federation

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"


class SpaceSteps(ServerSteps):
    """A space with a child on one server, and a client's walk of it."""

    def space_with_child(self, server, server_name: str, token: str, version: str
                         ) -> tuple[str, str]:
        """A public space and a public child room on ``server``, linked."""
        space = self.call(server, "POST", f"{V3}/createRoom", {
            "preset": "public_chat", "room_version": version, "name": "the space",
            "creation_content": {"type": "m.space"}}, token)["room_id"]
        child = self.call(server, "POST", f"{V3}/createRoom", {
            "preset": "public_chat", "room_version": version, "name": "the child",
            "topic": "only here"}, token)["room_id"]
        self.call(server, "PUT", f"{V3}/rooms/{q(space)}/state/m.space.child/{q(child)}",
                  {"via": [server_name], "suggested": True}, token)
        return space, child

    def hierarchy(self, server, token: str, room_id: str, query: str = "") -> dict:
        return self.call(server, "GET", f"{V1}/rooms/{q(room_id)}/hierarchy{query}",
                         None, token)


class SpacesAcrossServersTest(SpaceSteps, unittest.TestCase):
    timeout = 300

    def setUp(self) -> None:
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours

    def our_user(self) -> tuple[str, str]:
        return register(self.ours, "sp")

    def synapse_user(self) -> tuple[str, str]:
        return register_on_synapse(self.syn, "sp")

    def walk_until(self, server, token: str, space: str, rooms: int, what: str) -> dict:
        """The hierarchy once it lists ``rooms`` rooms (a join settles first)."""
        return self.wait(lambda: (lambda b: b if len(b["rooms"]) == rooms else None)(
            self.hierarchy(server, token, space)), what)

    def test_joined_synapse_space_lists_synapse_only_child(self):
        """Our user joined Synapse's space (v12); its child, held only by Synapse,
        is listed with its name and topic."""
        _, syn_token = self.synapse_user()
        space, child = self.space_with_child(self.syn, self.syn.server_name, syn_token, "12")
        _, token = self.our_user()
        self.call(self.ours, "POST",
                  f"{V3}/join/{q(space)}?server_name={q(self.syn.server_name)}", {}, token)
        body = self.walk_until(self.ours, token, space, 2, "the child in our hierarchy")
        self.assertEqual([r["room_id"] for r in body["rooms"]], [space, child])
        self.assertEqual((body["rooms"][1]["name"], body["rooms"][1]["topic"]),
                         ("the child", "only here"))
        self.assertEqual(body["rooms"][1]["children_state"], [])
        self.assertEqual([c["state_key"] for c in body["rooms"][0]["children_state"]],
                         [child])
        suggested = self.hierarchy(self.ours, token, space, "?suggested_only=true")
        self.assertEqual([r["room_id"] for r in suggested["rooms"]], [space, child])

    def test_unjoined_synapse_space_asked_of_its_server(self):
        """A v10 space we do not hold at all is asked of the server in its ID."""
        _, syn_token = self.synapse_user()
        space, child = self.space_with_child(self.syn, self.syn.server_name, syn_token, "10")
        _, token = self.our_user()
        body = self.hierarchy(self.ours, token, space)
        self.assertEqual([r["room_id"] for r in body["rooms"]], [space, child])
        self.assertEqual(body["rooms"][0]["name"], "the space")
        page = self.hierarchy(self.ours, token, space, "?limit=1")
        self.assertEqual([r["room_id"] for r in page["rooms"]], [space])
        rest = self.hierarchy(self.ours, token, space,
                              f"?limit=1&from={q(page['next_batch'])}")
        self.assertEqual([r["room_id"] for r in rest["rooms"]], [child])

    def test_synapse_walks_our_space(self):
        """Synapse's user joined our space; our child room, held only by us, is in
        Synapse's hierarchy (it asked our /federation/v1/hierarchy)."""
        _, token = self.our_user()
        space, child = self.space_with_child(self.ours, self.fed.our_name, token, "12")
        _, syn_token = self.synapse_user()
        self.call(self.syn, "POST",
                  f"{V3}/join/{q(space)}?server_name={q(self.fed.our_name)}", {}, syn_token)
        body = self.walk_until(self.syn, syn_token, space, 2,
                               "our child in Synapse's hierarchy")
        self.assertEqual([r["room_id"] for r in body["rooms"]], [space, child])
        self.assertEqual(body["rooms"][1]["name"], "the child")


class SpacesTwoInstancesTest(SpaceSteps, unittest.TestCase):
    """The same between two instances of ours (tests/interop/pair.py)."""

    timeout = 300

    def setUp(self) -> None:
        from tests.interop.pair import OurPair

        pair = OurPair.get()
        self.a, self.b = pair.a, pair.b

    def test_b_walks_a_space_it_is_in_and_one_it_is_not(self):
        """A space on A linking an A-only child: B's user lists the child when
        joined to the space (v12) and when B holds nothing of it (v10)."""
        _, a_token = register(self.a, "spa")
        _, b_token = register(self.b, "spb")
        for version in ("12", "10"):
            space, child = self.space_with_child(self.a, self.a.server_name, a_token,
                                                 version)
            if version == "12":
                self.call(self.b, "POST", f"{V3}/join/{q(space)}?server_name="
                          f"{q(self.a.server_name)}", {}, b_token)
            body = self.hierarchy(self.b, b_token, space)
            self.assertEqual([r["room_id"] for r in body["rooms"]], [space, child],
                             version)
            self.assertEqual(body["rooms"][1]["name"], "the child")
