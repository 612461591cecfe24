"""Bad input over the whole client API: every answer is a Matrix error with the spec's
status and errcode, and nothing a client sends ever causes a 500.

Two layers:

- **The crawl** discovers every route the server registered (so new endpoints are
  covered the day they land) and checks what holds for all of them: no 500 whatever
  the body or query; a missing / unknown access token is 401 M_MISSING_TOKEN /
  M_UNKNOWN_TOKEN (except the endpoints the spec makes public, :data:`PUBLIC`); a
  body over ``http.max_request_body_size`` is 413 M_TOO_LARGE.
- **Case tables** (:data:`CASES`) hold checks that need real rooms, events and
  users. To extend, append a ``Case``: a name, method, path template (``{room}``,
  ``{event}``, ``{me}``, ``{other}``, ``{alias}``, ``{device}``, ``{txn}`` are filled
  in from the fixture), body (``bytes`` are sent raw), who asks (``"me"`` owns the
  room, ``"other"`` is not in it, ``None`` sends no token) and the acceptable
  ``(status, errcode)`` answers. A case that fails because of a known bug elsewhere
  gets ``todo="why"``: it then runs as its own test method marked todo (an expected
  failure) and stays out of the table test.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any

from homeserver.http.server import Router
from tests.client_api.harness import ServerTestCase, q

V3 = "/_matrix/client/v3"
V1 = "/_matrix/client/v1"
BODY_LIMIT = 4096

#: client endpoints the spec gives no (or an optional) access token; regexes over paths
PUBLIC = [re.compile(p) for p in (
    r"^/_matrix/client/versions$", r"^/\.well-known/", r"^/_matrix/client/v3/login$",
    r"^/_matrix/client/v3/register(/available)?$", r"^/_matrix/client/v3/refresh$",
    r"^/_matrix/client/v1/register/m\.login\.registration_token/validity$",
    r"^/_matrix/client/v3/profile/", r"^/_matrix/client/v3/directory/room/",
    r"^/_matrix/client/v3/directory/list/room/", r"^/_matrix/client/v3/publicRooms$",
    r"^/_matrix/client/v3/account/(password|deactivate)$",     # UIA may authenticate
    r"^/_matrix/client/v3/(account/3pid|account/password|register)/[a-z]+/requestToken$",
    r"^/_matrix/client/v3/login/sso/", r"^/_matrix/client/v1/auth_metadata$",
    # MSC4140 management: the delay ID is the capability without a token (Synapse 1.163)
    r"^/_matrix/client/unstable/org\.matrix\.msc4140/delayed_events/[^/]+(/[a-z]+)?$",
    # partytracks fetches it without its headers: no token answers no TURN servers
    r"^/_matrix/client/unstable/org\.roomserver\.sfu/rooms/[^/]+/generate-ice-servers$",
)]
#: endpoints whose spec makes only some methods public
PUBLIC_METHODS = {r"^/_matrix/client/v3/publicRooms$": {"GET"},
                  r"^/_matrix/client/unstable/org\.matrix\.msc4140/delayed_events/[^/]+"
                  r"(/[a-z]+)?$": {"POST"},
                  r"^/_matrix/client/v3/directory/room/": {"GET"},
                  r"^/_matrix/client/v3/directory/list/room/": {"GET"},
                  r"^/_matrix/client/v3/profile/": {"GET"}}
#: dummy path values by the route's group name
DUMMIES = {"room_id": "!nowhere:test.local", "room": "!nowhere:test.local",
           "event_id": "$nowhere", "user_id": "@nobody:test.local",
           "alias": "#nowhere:test.local", "txn_id": "t1", "device_id": "NODEVICE",
           "action": "cancel"}


def routes(hs) -> list[tuple[str, re.Pattern[str]]]:
    """(method, pattern) of every route of the running server's HTTP listener."""
    def find(obj: Any, depth: int) -> Router | None:
        if isinstance(obj, Router):
            return obj
        if depth == 0 or not hasattr(obj, "__dict__"):
            return None
        for value in vars(obj).values():
            found = find(value, depth - 1)
            if found is not None:
                return found
        return None

    for service in hs:
        args = getattr(service, "args", ())
        site = args[1] if len(args) > 1 else None
        router = find(getattr(site, "resource", None), 3)
        if router is not None:
            return [(r.method, r.pattern) for r in router._routes]
    raise AssertionError("no Router found behind the HTTP listener")


def concrete_path(pattern: re.Pattern[str]) -> str | None:
    """A path matching a route's regex, with dummy values for its parameters."""
    text = pattern.pattern.strip("^$")
    text = re.sub(r"\(\?:v3\|r0(\|unstable|\|v1)?\)", "v3", text)
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: q(DUMMIES.get(m.group(1), "x")), text)
    path = re.sub(r"\(\?:[^)]*\)\?", "", text).replace("/?", "").replace("\\", "")
    return path if pattern.match(path) else None


def is_public(method: str, path: str) -> bool:
    for regex in PUBLIC:
        if regex.search(path):
            methods = PUBLIC_METHODS.get(regex.pattern)
            return methods is None or method in methods
    return False


def is_client(path: str) -> bool:
    return path.startswith("/_matrix/client/")


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: Any
    expect: tuple[tuple[int, str], ...]
    who: str | None = "me"
    todo: str | None = None


def bad(status: int, *errcodes: str) -> tuple[tuple[int, str], ...]:
    return tuple((status, e) for e in errcodes)


NOT_JSON = bad(400, "M_NOT_JSON")
BAD_JSON = bad(400, "M_BAD_JSON")
NOT_OBJECT = bad(400, "M_BAD_JSON", "M_NOT_JSON")
FORBIDDEN = bad(403, "M_FORBIDDEN")
NOT_FOUND = bad(404, "M_NOT_FOUND")
NO_ROOM = FORBIDDEN + NOT_FOUND
INVALID = bad(400, "M_INVALID_PARAM")
MISSING = bad(400, "M_MISSING_PARAM")

#: (name, method, path, a valid body) of endpoints taking a JSON object
BODY_ENDPOINTS = [
    ("createRoom", "POST", V3 + "/createRoom", {}),
    ("send", "PUT", V3 + "/rooms/{room}/send/m.room.message/{txn}", {"body": "x"}),
    ("state", "PUT", V3 + "/rooms/{room}/state/m.room.topic/", {"topic": "t"}),
    ("invite", "POST", V3 + "/rooms/{room}/invite", {"user_id": "{other}"}),
    ("kick", "POST", V3 + "/rooms/{room}/kick", {"user_id": "{other}"}),
    ("ban", "POST", V3 + "/rooms/{room}/ban", {"user_id": "{other}"}),
    ("redact", "PUT", V3 + "/rooms/{room}/redact/{event}/{txn}", {}),
    ("displayname", "PUT", V3 + "/profile/{me}/displayname", {"displayname": "x"}),
    ("directory_search", "POST", V3 + "/user_directory/search", {"search_term": "x"}),
    ("search", "POST", V3 + "/search", {"search_categories": {}}),
    ("filter", "POST", V3 + "/user/{me}/filter", {}),
    ("typing", "PUT", V3 + "/rooms/{room}/typing/{me}", {"typing": False}),
    ("receipt", "POST", V3 + "/rooms/{room}/receipt/m.read/{event}", {}),
    ("read_markers", "POST", V3 + "/rooms/{room}/read_markers", {}),
    ("presence", "PUT", V3 + "/presence/{me}/status", {"presence": "online"}),
    ("account_data", "PUT", V3 + "/user/{me}/account_data/org.x", {}),
    ("tag", "PUT", V3 + "/user/{me}/rooms/{room}/tags/u.x", {}),
    ("to_device", "PUT", V3 + "/sendToDevice/org.x/{txn}", {"messages": {}}),
    ("device", "PUT", V3 + "/devices/{device}", {}),
    ("alias", "PUT", V3 + "/directory/room/{alias}", {"room_id": "{room}"}),
    ("visibility", "PUT", V3 + "/directory/list/room/{room}", {"visibility": "private"}),
    ("public_rooms", "POST", V3 + "/publicRooms", {}),
    ("report", "POST", V3 + "/rooms/{room}/report/{event}", {}),
    ("login", "POST", V3 + "/login", {"type": "m.login.password"}),
]

@dataclasses.dataclass(frozen=True)
class Wrong:
    """A body with a mistyped field whose answer is not plain M_BAD_JSON."""

    body: dict
    expect: tuple[tuple[int, str], ...] = ()
    todo: str | None = None


#: fields of the endpoints above given a value of the wrong JSON type (M_BAD_JSON
#: unless a ``Wrong`` says otherwise)
WRONG_TYPES: dict[str, list] = {
    "createRoom": [{"name": 5}, {"topic": []}, {"preset": 3}, {"invite": "x"},
                   {"visibility": 1},
                   {"initial_state": {}}, {"room_version": 12},
                   {"power_level_content_override": []}, {"creation_content": "x"},
                   {"is_direct": "yes"}, {"room_alias_name": 7}],
    "invite": [{"user_id": 5}], "kick": [{"user_id": 5}, {"user_id": "{other}", "reason": 5}],
    "ban": [{"user_id": []}], "redact": [{"reason": 5}],
    "displayname": [{"displayname": 5}],
    "directory_search": [{"search_term": 5}, {"search_term": "x", "limit": "5"}],
    "search": [{"search_categories": []}],
    "filter": [{"room": 5}, {"event_fields": "x"}, {"presence": {"limit": "x"}}],
    "typing": [{"typing": "yes"}, {"typing": True, "timeout": "x"}],
    # spec (receipts.yaml): a thread_id that is not a string is M_INVALID_PARAM
    "receipt": [Wrong({"thread_id": 5}, INVALID)], "read_markers": [{"m.fully_read": 5}],
    "presence": [{"presence": 5}, {"presence": "online", "status_msg": 5}],
    "tag": [{"order": "x"}], "to_device": [{"messages": []}],
    "device": [{"display_name": 5}],
    "alias": [{"room_id": 5}],
    "visibility": [{"visibility": 5}], "public_rooms": [{"limit": "x"}, {"filter": []}],
    "report": [{"reason": 5}, {"score": "x"}],
    "login": [{"type": "m.login.password", "identifier": "x", "password": "p"},
              {"type": "m.login.password", "user": "alice", "password": 5}],
}

CASES: list[Case] = []
for _name, _method, _path, _valid in BODY_ENDPOINTS:
    _who = None if _name == "login" else "me"
    CASES.append(Case(f"{_name}_not_json", _method, _path, b"{not json", NOT_JSON, _who))
    CASES.append(Case(f"{_name}_array", _method, _path, b"[1, 2]", NOT_OBJECT, _who))
    CASES.append(Case(f"{_name}_number", _method, _path, b"3", NOT_OBJECT, _who))
    for _i, _wrong in enumerate(WRONG_TYPES.get(_name, [])):
        if not isinstance(_wrong, Wrong):
            _wrong = Wrong(_wrong)
        CASES.append(Case(f"{_name}_wrong_type_{_i}", _method, _path, _wrong.body,
                          _wrong.expect or BAD_JSON, _who, _wrong.todo))

CASES += [
    # -- forbidden actions (the other user is not in the room) ------------------------
    Case("set_others_profile", "PUT", V3 + "/profile/{me}/displayname",
         {"displayname": "x"}, FORBIDDEN, "other"),
    Case("send_not_joined", "PUT", V3 + "/rooms/{room}/send/m.room.message/{txn}",
         {"body": "x"}, FORBIDDEN, "other"),
    Case("state_not_joined", "PUT", V3 + "/rooms/{room}/state/m.room.name/", {"name": "x"},
         FORBIDDEN, "other"),
    Case("invite_not_joined", "POST", V3 + "/rooms/{room}/invite", {"user_id": "{other}"},
         FORBIDDEN, "other"),
    Case("kick_not_joined", "POST", V3 + "/rooms/{room}/kick", {"user_id": "{me}"},
         FORBIDDEN, "other"),
    Case("ban_not_joined", "POST", V3 + "/rooms/{room}/ban", {"user_id": "{me}"},
         FORBIDDEN, "other"),
    Case("join_invite_only", "POST", V3 + "/rooms/{room}/join", {}, FORBIDDEN, "other"),
    Case("redact_not_joined", "PUT", V3 + "/rooms/{room}/redact/{event}/{txn}", {},
         FORBIDDEN, "other"),
    Case("read_state_not_joined", "GET", V3 + "/rooms/{room}/state", None, FORBIDDEN,
         "other"),
    Case("read_messages_not_joined", "GET", V3 + "/rooms/{room}/messages?dir=b", None,
         FORBIDDEN, "other"),
    Case("read_members_not_joined", "GET", V3 + "/rooms/{room}/members", None, FORBIDDEN,
         "other"),
    Case("read_event_not_joined", "GET", V3 + "/rooms/{room}/event/{event}", None,
         NOT_FOUND + FORBIDDEN, "other"),
    Case("others_account_data_get", "GET", V3 + "/user/{me}/account_data/org.x", None,
         FORBIDDEN, "other"),
    Case("others_account_data_put", "PUT", V3 + "/user/{me}/account_data/org.x", {},
         FORBIDDEN, "other"),
    Case("others_filter", "POST", V3 + "/user/{me}/filter", {}, FORBIDDEN, "other"),
    Case("others_tags", "GET", V3 + "/user/{me}/rooms/{room}/tags", None, FORBIDDEN,
         "other"),
    Case("others_typing", "PUT", V3 + "/rooms/{room}/typing/{me}", {"typing": True},
         FORBIDDEN, "other"),
    Case("others_presence", "PUT", V3 + "/presence/{me}/status", {"presence": "online"},
         FORBIDDEN, "other"),
    Case("publish_not_joined", "PUT", V3 + "/directory/list/room/{room}",
         {"visibility": "public"}, FORBIDDEN, "other"),
    Case("delete_others_alias", "DELETE", V3 + "/directory/room/{alias}", None, FORBIDDEN,
         "other"),
    Case("whois_not_admin", "GET", V3 + "/admin/whois/{me}", None, FORBIDDEN, "other"),
    Case("power_levels_not_joined", "PUT", V3 + "/rooms/{room}/state/m.room.power_levels/",
         {"users": {}}, FORBIDDEN, "other"),
    # -- unknown rooms ----------------------------------------------------------------
    *[Case(f"unknown_room_{n}", m, p, b, NO_ROOM) for n, m, p, b in (
        ("state", "GET", V3 + "/rooms/{unknown_room}/state", None),
        ("messages", "GET", V3 + "/rooms/{unknown_room}/messages?dir=b", None),
        ("members", "GET", V3 + "/rooms/{unknown_room}/members", None),
        ("send", "PUT", V3 + "/rooms/{unknown_room}/send/m.room.message/{txn}", {"body": "x"}),
        ("set_state", "PUT", V3 + "/rooms/{unknown_room}/state/m.room.name/", {"name": "x"}),
        ("join", "POST", V3 + "/join/{unknown_room}", {}),
        ("leave", "POST", V3 + "/rooms/{unknown_room}/leave", {}),
        ("context", "GET", V3 + "/rooms/{unknown_room}/context/{event}", None),
        ("event", "GET", V3 + "/rooms/{unknown_room}/event/{event}", None),
        ("threads", "GET", V1 + "/rooms/{unknown_room}/threads", None),
        ("relations", "GET", V1 + "/rooms/{unknown_room}/relations/{event}", None),
        ("receipt", "POST", V3 + "/rooms/{unknown_room}/receipt/m.read/{event}", {}),
        ("read_markers", "POST", V3 + "/rooms/{unknown_room}/read_markers",
         {"m.fully_read": "{event}"}),
        ("report", "POST", V3 + "/rooms/{unknown_room}/report/{event}", {}),
        ("visibility", "GET", V3 + "/directory/list/room/{unknown_room}", None),
    )],
    Case("unknown_alias", "GET", V3 + "/directory/room/%23nowhere%3Atest.local", None,
         NOT_FOUND),
    Case("malformed_room_id", "GET", V3 + "/rooms/not-a-room/messages?dir=b", None,
         NO_ROOM + INVALID),
    # -- unknown users ----------------------------------------------------------------
    Case("unknown_user_profile", "GET", V3 + "/profile/{unknown_user}", None, NOT_FOUND),
    Case("unknown_user_displayname", "GET", V3 + "/profile/{unknown_user}/displayname",
         None, NOT_FOUND),
    Case("unknown_user_report", "POST", V3 + "/users/{unknown_user}/report",
         {"reason": "x"}, NOT_FOUND),
    Case("unknown_user_presence", "GET", V3 + "/presence/{unknown_user}/status", None,
         NOT_FOUND + FORBIDDEN),
    # -- bad query parameters ---------------------------------------------------------
    *[Case(f"bad_query_{n}", "GET", p, None, e) for n, p, e in (
        ("messages_limit", V3 + "/rooms/{room}/messages?dir=b&limit=abc", INVALID),
        ("messages_dir", V3 + "/rooms/{room}/messages?dir=sideways", INVALID),
        ("messages_from", V3 + "/rooms/{room}/messages?dir=b&from=zzz", INVALID),
        ("context_limit", V3 + "/rooms/{room}/context/{event}?limit=abc", INVALID),
        ("sync_timeout", V3 + "/sync?timeout=abc", INVALID),
        ("sync_since", V3 + "/sync?since=garbage", INVALID),
        ("sync_filter", V3 + "/sync?filter=%7Bnot", INVALID + NOT_JSON + BAD_JSON),
        ("public_rooms_limit", V3 + "/publicRooms?limit=abc", INVALID),
        ("relations_limit", V1 + "/rooms/{room}/relations/{event}?limit=abc", INVALID),
        ("threads_limit", V1 + "/rooms/{room}/threads?limit=abc", INVALID),
        ("members_membership", V3 + "/rooms/{room}/members?membership=wat", INVALID),
        ("available_missing", V3 + "/register/available", MISSING),
    )],
    # -- unknown endpoints and methods ------------------------------------------------
    Case("unknown_endpoint", "GET", V3 + "/no/such/endpoint", None,
         bad(404, "M_UNRECOGNIZED")),
    Case("unknown_prefix", "GET", "/_matrix/client/v9/sync", None,
         bad(404, "M_UNRECOGNIZED")),
    Case("wrong_method", "DELETE", V3 + "/createRoom", None, bad(405, "M_UNRECOGNIZED")),
]


class BadInputTests(ServerTestCase):
    config_overrides = {"http": {"max_request_body_size": BODY_LIMIT}}
    _txn = itertools.count()

    async def fixture(self) -> None:
        me, token = await self.register("alice")
        other, other_token = await self.register("bob")
        self.tokens = {"me": token, "other": other_token, None: None}
        room = await self.create_room(token, preset="private_chat")
        event = await self.send(token, room, {"msgtype": "m.text", "body": "hello"})
        alias = "#alice-room:test.local"
        status, _ = await self.request("PUT", f"{V3}/directory/room/{q(alias)}",
                                       {"room_id": room}, token=token)
        self.assertEqual(status, 200)
        status, whoami = await self.request("GET", V3 + "/account/whoami", token=token)
        self.values = {"room": room, "event": event, "me": me, "other": other,
                       "alias": alias, "device": whoami.get("device_id", "X"),
                       "unknown_room": "!nowhere:test.local",
                       "unknown_user": "@nobody:test.local"}

    def fill(self, template: str, *, quote_values: bool) -> str:
        def value(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "txn":
                return f"txn{next(self._txn)}"
            raw = self.values[key]
            return q(raw) if quote_values else raw
        return re.sub(r"\{(\w+)\}", value, template)

    def fill_body(self, body: Any) -> Any:
        if isinstance(body, str):
            return self.fill(body, quote_values=False)
        if isinstance(body, dict):
            return {k: self.fill_body(v) for k, v in body.items()}
        if isinstance(body, list):
            return [self.fill_body(v) for v in body]
        return body

    async def check(self, case: Case) -> str | None:
        """Run one case; a description of what went wrong, or None."""
        path = self.fill(case.path, quote_values=True)
        body = case.body
        kwargs: dict[str, Any] = {"token": self.tokens[case.who]}
        if isinstance(body, bytes):
            kwargs["raw"] = body
        else:
            kwargs["body"] = self.fill_body(body)
        status, resp = await self.request(case.method, path, **kwargs)
        errcode = resp.get("errcode") if isinstance(resp, dict) else None
        if (status, errcode) in case.expect:
            return None
        return f"{case.name}: {case.method} {path} -> {status} {resp!r}, wanted {case.expect}"

    async def test_case_table(self):
        """Every case of CASES not marked todo gets one of its expected answers."""
        await self.fixture()
        problems = [p for case in CASES if not case.todo
                    for p in [await self.check(case)] if p]
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    async def crawl(self, token_kind: str) -> list[str]:
        """Request every client route; returns the problems found."""
        problems: list[str] = []
        unbuilt: list[str] = []
        checked = 0
        for method, pattern in routes(self.hs):
            path = concrete_path(pattern)
            if path is None:
                unbuilt.append(pattern.pattern)
                continue
            if not is_client(path):
                continue
            checked += 1
            body = {} if method in ("POST", "PUT") else None
            if token_kind == "garbage":
                problems += await self.garbage(method, path)
                continue
            if is_public(method, path):
                continue
            token = {"missing": None, "unknown": "not-a-real-token"}[token_kind]
            status, resp = await self.request(method, path, body, token=token)
            want = {"missing": "M_MISSING_TOKEN", "unknown": "M_UNKNOWN_TOKEN"}[token_kind]
            if (status, (resp or {}).get("errcode")) != (401, want):
                problems.append(f"{method} {path} -> {status} {resp!r}")
        self.assertEqual(unbuilt, [], "extend DUMMIES/concrete_path for these routes")
        self.assertGreater(checked, 20, "the crawl found too few client routes")
        return problems

    async def garbage(self, method: str, path: str) -> list[str]:
        # a fresh token per route: the crawl may log itself out or delete its device
        device = f"CRAWL{next(self._txn)}"
        await self.c["store"].devices.create_device(self.values["me"], device)
        token = await self.c["store"].devices.create_access_token(self.values["me"], device)
        problems = []
        attempts = [(b"{not json", ""), (b"[1]", ""), (b"3", ""),
                    (b'{"a": [1, {"b": null}], "limit": "x"}', "?limit=abc&from=zzz&dir=q")]
        if method in ("POST", "PUT"):
            # first: the others may log this token out
            attempts.insert(0, (b'{"pad": "' + b"x" * (BODY_LIMIT * 2) + b'"}', ""))
        for raw, query in attempts:
            status, resp = await self.request(method, path + query, raw=raw, token=token)
            ok_error = isinstance(resp, dict) and isinstance(resp.get("errcode"), str) \
                or status == 401 and isinstance(resp, dict) and "flows" in resp
            # media of the dummy server "x" is fetched from it: unreachable, which is
            # Synapse's 502 M_UNKNOWN, a Matrix error and not a fault of ours
            remote_media = status == 502 and "/media/" in path and ok_error
            if (status >= 500 and not remote_media) or (status >= 400 and not ok_error):
                problems.append(f"{method} {path + query} {raw[:20]!r} -> {status} {resp!r}")
            if len(raw) > BODY_LIMIT and (status, (resp or {}).get("errcode")) != \
                    (413, "M_TOO_LARGE"):
                problems.append(f"{method} {path} oversized body -> {status} {resp!r}")
        return problems

    async def test_capabilities_requires_token(self):
        """/capabilities answers 401 without a token and the capabilities with one."""
        status, body = await self.request("GET", V3 + "/capabilities")
        self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"))
        _, token = await self.register("alice")
        status, body = await self.request("GET", V3 + "/capabilities", token=token)
        self.assertEqual(status, 200)
        self.assertIn("default", body["capabilities"]["m.room_versions"])

    async def test_crawl_missing_token(self):
        """Every non-public client endpoint answers 401 M_MISSING_TOKEN without a token."""
        await self.fixture()
        problems = await self.crawl("missing")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    async def test_crawl_unknown_token(self):
        """Every non-public client endpoint answers 401 M_UNKNOWN_TOKEN to a bad token."""
        await self.fixture()
        problems = await self.crawl("unknown")
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    async def test_crawl_garbage_never_500(self):
        """Garbage bodies and query strings on every client endpoint give Matrix errors
        (never a 500), and oversized bodies 413 M_TOO_LARGE."""
        await self.fixture()
        problems, _ = split_known(await self.crawl("garbage"))
        self.assertEqual(problems, [], "\n" + "\n".join(problems))

    async def test_crawl_garbage_known_bugs(self):
        """The crawl's problems listed in CRAWL_TODO (known bugs elsewhere) are gone."""
        await self.fixture()
        _, known = split_known(await self.crawl("garbage"))
        self.assertEqual(known, [], "\n" + "\n".join(known))


#: crawl problems caused by known bugs in other engineers' code: (regex over the
#: problem line, reason). They are reported by a todo test instead of failing the crawl.
CRAWL_TODO: list[tuple[str, str]] = []


def split_known(problems: list[str]) -> tuple[list[str], list[str]]:
    """(unexplained problems, problems explained by CRAWL_TODO)."""
    known = [p for p in problems if any(re.search(r, p) for r, _ in CRAWL_TODO)]
    return [p for p in problems if p not in known], known


BadInputTests.test_crawl_garbage_known_bugs.todo = "; ".join(  # type: ignore[attr-defined]
    reason for _, reason in CRAWL_TODO) or None


def _todo_test(case: Case):
    async def test(self: BadInputTests) -> None:
        await self.fixture()
        problem = await self.check(case)
        self.assertIsNone(problem, problem)

    test.__doc__ = f"(known bug) {case.name}: {case.todo}"
    test.todo = case.todo  # type: ignore[attr-defined]
    return test


for _case in CASES:
    if _case.todo:
        setattr(BadInputTests, f"test_todo_{_case.name}", _todo_test(_case))
