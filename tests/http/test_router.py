"""Routing: the first route added whose method and pattern match wins; path groups
become URL-decoded parameters; a known path with another method is 405, an unknown
one 404."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.errors import MethodNotAllowed, Unrecognized
from homeserver.http.server import Router

_C = "/_matrix/client/(?:v3|r0)"


def handler(name: str):
    async def h(request):
        return 200, {"name": name}
    h.name = name
    return h


class RouterTests(unittest.TestCase):
    def setUp(self) -> None:
        self.router = Router()
        add = self.router.add
        add("GET", _C + "/rooms/(?P<room_id>[^/]+)/state", handler("state"))
        add("GET", _C + "/rooms/(?P<room_id>[^/]+)/state/(?P<type>[^/]+)"
                        "(?:/(?P<state_key>[^/]*))?", handler("state_event"))
        # overlaps the next one: added first, so it wins
        add("GET", _C + "/rooms/(?P<room_id>[^/]+)/members", handler("members"))
        add("GET", _C + "/rooms/(?P<room_id>[^/]+)/(?P<what>[^/]+)", handler("any"))
        add(["PUT", "POST"], _C + "/rooms/(?P<room_id>[^/]+)/send/(?P<type>[^/]+)"
                                  "(?:/(?P<txn_id>[^/]+))?", handler("send"))
        add("GET", _C + "/sync", handler("sync"))
        add("DELETE", "/a|/b", handler("top-level alternation"))

    def match(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        route, params = self.router.match(method, path)
        return route.handler.name, params

    def test_parameters_are_decoded_and_optional_groups_left_out(self) -> None:
        self.assertEqual(self.match("GET", "/_matrix/client/v3/rooms/%21r%3Ax/state/m.topic"),
                         ("state_event", {"room_id": "!r:x", "type": "m.topic"}))
        self.assertEqual(
            self.match("GET", "/_matrix/client/r0/rooms/!r:x/state/m.member/%40a%3Ax"),
            ("state_event", {"room_id": "!r:x", "type": "m.member", "state_key": "@a:x"}))
        self.assertEqual(self.match("PUT", "/_matrix/client/v3/rooms/!r:x/send/m.text/t1"),
                         ("send", {"room_id": "!r:x", "type": "m.text", "txn_id": "t1"}))
        self.assertEqual(self.match("POST", "/_matrix/client/v3/rooms/!r:x/send/m.text"),
                         ("send", {"room_id": "!r:x", "type": "m.text"}))

    def test_first_route_added_wins(self) -> None:
        self.assertEqual(self.match("GET", "/_matrix/client/v3/rooms/!r:x/members")[0],
                         "members")
        self.assertEqual(self.match("GET", "/_matrix/client/v3/rooms/!r:x/messages"),
                         ("any", {"room_id": "!r:x", "what": "messages"}))
        self.assertEqual(self.match("GET", "/_matrix/client/v3/rooms/!r:x/state")[0], "state")

    def test_whole_path_must_match(self) -> None:
        """A pattern matching only the start of the path (or of a longer one) is not
        taken: the next pattern that matches all of it is."""
        with self.assertRaises(Unrecognized):
            self.router.match("GET", "/_matrix/client/v3/sync/more")
        with self.assertRaises(Unrecognized):
            self.router.match("GET", "/_matrix/client/v3/rooms/!r:x/a/b/c/d")
        self.assertEqual(self.match("DELETE", "/b")[0], "top-level alternation")

    def test_head_takes_get_routes_and_other_methods_are_405(self) -> None:
        self.assertEqual(self.match("HEAD", "/_matrix/client/v3/sync")[0], "sync")
        with self.assertRaises(MethodNotAllowed):
            self.router.match("POST", "/_matrix/client/v3/sync")
        with self.assertRaises(MethodNotAllowed):
            self.router.match("PATCH", "/_matrix/client/v3/sync")
        with self.assertRaises(Unrecognized):
            self.router.match("GET", "/_matrix/client/v3/nothing")

    def test_routes_added_after_a_match_are_seen(self) -> None:
        with self.assertRaises(Unrecognized):
            self.router.match("GET", "/late")
        self.router.add("GET", "/late", handler("late"))
        self.assertEqual(self.match("GET", "/late")[0], "late")
