"""Asking other servers about spaces we do not hold (federation/remote_hierarchy.py):
the pure answer check, and RemoteSpaces' choice of servers and its cache."""

from __future__ import annotations

from twisted.trial import unittest

from federation.client import RemoteUnreachable
from federation.remote_hierarchy import (
    CACHE_MS, RemoteSpaces, parse_answer, room_chunk, via_servers)
from tests.fakes.federation_client import FakeFederationClient

SPACE = "!space:far.example"
PATH = "/_matrix/federation/v1/hierarchy/%21space%3Afar.example"


def link(child: str, **content) -> dict:
    return {"type": "m.space.child", "state_key": child, "sender": "@a:far.example",
            "origin_server_ts": 1, "content": {"via": ["far.example"], **content}}


def answer(**extra) -> dict:
    return {"room": {"room_id": SPACE, "room_type": "m.space", "num_joined_members": 2,
                     "world_readable": False, "guest_can_join": False,
                     "join_rule": "public", "children_state": [link("!c:far.example")]},
            "children": [{"room_id": "!c:far.example", "num_joined_members": 1,
                          "world_readable": True, "guest_can_join": False}],
            "inaccessible_children": ["!hidden:far.example"], **extra}


class ParseAnswerTest(unittest.TestCase):
    def test_good_answer(self):
        """A well-formed answer keeps the room, its links, children and inaccessible."""
        parsed = parse_answer(SPACE, answer())
        self.assertEqual(parsed.room["room_id"], SPACE)
        self.assertNotIn("children_state", parsed.room)
        self.assertEqual([s["state_key"] for s in parsed.children_state],
                         ["!c:far.example"])
        self.assertEqual(list(parsed.children), ["!c:far.example"])
        self.assertEqual(parsed.inaccessible, frozenset({"!hidden:far.example"}))

    def test_wrong_or_malformed_answers(self):
        """Another room, a non-object or a room without an ID is no answer at all."""
        self.assertIsNone(parse_answer("!other:far.example", answer()))
        self.assertIsNone(parse_answer(SPACE, ["x"]))
        self.assertIsNone(parse_answer(SPACE, {"room": {"name": "no id"}}))

    def test_bad_parts_dropped(self):
        """Links without via or a timestamp, children without an ID, non-string
        inaccessible entries and unknown or mistyped fields are dropped."""
        body = answer(children=[{"name": "x"}, "junk", {"room_id": "!ok:far.example"}],
                      inaccessible_children=[5, "!h:far.example"])
        body["room"]["children_state"] = [
            link("!c:far.example"), link("!novia:far.example", via=[]),
            {**link("!nots:far.example"), "origin_server_ts": "1"}, "junk"]
        body["room"]["evil"] = "<script>"
        body["room"]["num_joined_members"] = "2"
        parsed = parse_answer(SPACE, body)
        self.assertEqual([s["state_key"] for s in parsed.children_state],
                         ["!c:far.example"])
        self.assertEqual(list(parsed.children), ["!ok:far.example"])
        self.assertEqual(parsed.inaccessible, frozenset({"!h:far.example"}))
        self.assertNotIn("evil", parsed.room)
        self.assertEqual(parsed.room["num_joined_members"], 0)

    def test_room_chunk_defaults(self):
        """A chunk missing the required counts and flags reads as zero and false."""
        self.assertEqual(room_chunk({"room_id": "!r:x"}), {
            "room_id": "!r:x", "num_joined_members": 0, "world_readable": False,
            "guest_can_join": False})

    def test_via_servers(self):
        """Ourselves, duplicates, non-strings and invalid names are not asked."""
        self.assertEqual(via_servers(["a.example", "us.example", 3, "a.example",
                                      "bad name", "b.example:8448"], "us.example"),
                         ["a.example", "b.example:8448"])


class RemoteSpacesTest(unittest.TestCase):
    def setUp(self):
        self.now = 1_000_000
        self.client = FakeFederationClient()
        self.spaces = RemoteSpaces(client=self.client, server_name="us.example",
                                   now_ms=lambda: self.now)

    async def test_first_good_answer_wins(self):
        """A server that fails or answers about another room is passed over; the
        next via server's answer is taken, with suggested_only sent along."""
        self.client.answer("GET", "down.example", PATH, RemoteUnreachable("down.example",
                                                                          "refused"))
        self.client.answer("GET", "liar.example", PATH,
                           answer(room={"room_id": "!other:far.example"}))
        self.client.answer("GET", "far.example", PATH, answer())
        got = await self.spaces.fetch(
            SPACE, ["down.example", "liar.example", "far.example"], suggested_only=True)
        self.assertEqual(got.room["room_id"], SPACE)
        self.assertEqual([r[1] for r in self.client.requests],
                         ["down.example", "liar.example", "far.example"])
        self.assertEqual(self.client.requests[-1][3], {"suggested_only": "true"})

    async def test_cached_then_expires(self):
        """A second fetch within CACHE_MS asks nobody; after it, the servers again."""
        self.client.answer("GET", "far.example", PATH, answer())
        await self.spaces.fetch(SPACE, ["far.example"], suggested_only=False)
        self.now += CACHE_MS - 1
        again = await self.spaces.fetch(SPACE, ["far.example"], suggested_only=False)
        self.assertEqual((again.room["room_id"], len(self.client.requests)), (SPACE, 1))
        self.now += 2
        await self.spaces.fetch(SPACE, ["far.example"], suggested_only=False)
        self.assertEqual(len(self.client.requests), 2)

    async def test_no_answer_is_cached_too(self):
        """When no server answers, that is remembered (a page re-walk asks no one)."""
        self.assertIsNone(await self.spaces.fetch(SPACE, ["far.example"],
                                                  suggested_only=False))
        self.assertIsNone(await self.spaces.fetch(SPACE, ["far.example"],
                                                  suggested_only=False))
        self.assertEqual(len(self.client.requests), 1)

    async def test_at_most_three_servers(self):
        """No more than MAX_SERVERS via servers are asked about one room."""
        via = [f"s{i}.example" for i in range(6)]
        self.assertIsNone(await self.spaces.fetch(SPACE, via, suggested_only=False))
        self.assertEqual([r[1] for r in self.client.requests], via[:3])
