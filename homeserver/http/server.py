"""The JSON HTTP layer: routing, body limits, errors and CORS for every API.

A servlet is ``async def handler(request: ApiRequest) -> (status, body)``. It is
registered with a method and a path regex; named groups become ``request.path``
parameters (URL-decoded). Any ``MatrixError`` becomes the spec's JSON error; anything
else is logged and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import dataclasses
import io
import re
import tempfile
from typing import Any, Awaitable, Callable, Iterable, Mapping
from urllib.parse import unquote

from twisted.internet import defer, tcp
from twisted.logger import Logger
from twisted.web import resource, server

from homeserver.crypto.canonical_json import CanonicalJsonError, encode_json, parse_json_strict
from homeserver.errors import (
    MatrixError, MethodNotAllowed, NotJson, TooLarge, Unrecognized,
)

log = Logger()

Handler = Callable[["ApiRequest"], Awaitable[tuple[int, Any]]]

CORS_HEADERS = {
    b"Access-Control-Allow-Origin": b"*",
    b"Access-Control-Allow-Methods": b"GET, HEAD, POST, PUT, DELETE, OPTIONS",
    b"Access-Control-Allow-Headers":
        b"X-Requested-With, Content-Type, Authorization, Date",
    b"Access-Control-Expose-Headers": b"Synapse-Trace-Id, Server",
}


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    #: bodies larger than this are refused with 413 (None: the server's default)
    max_body: int | None = None


class Router:
    """Method + path regex → handler. Patterns are anchored; groups are named.

    The first route added whose method and pattern match wins. Per method, the
    patterns are joined into one alternation (in the order added) that finds the
    route in one call of the regex engine, whose own pattern then gives the
    parameters: trying ~220 patterns one by one in Python took 16-19 µs of every
    request (a /sync, a send), this 1-4 µs. A method's joined pattern is compiled at
    its first request (~10 ms for GET's ~100 routes, once); all take ~0.14 MB."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        #: method → (joined pattern, marker group name → route)
        self._joined: dict[str, tuple[re.Pattern[str], dict[str, Route]]] = {}

    def add(self, methods: str | Iterable[str], pattern: str, handler: Handler,
            *, max_body: int | None = None) -> None:
        if "(?P=" in pattern:
            raise ValueError("route patterns cannot refer back to a group")
        compiled = re.compile("^" + pattern + "$")
        for method in [methods] if isinstance(methods, str) else methods:
            self._routes.append(Route(method.upper(), compiled, handler, max_body))
        self._joined.clear()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for ``method path``; raises Unrecognized / MethodNotAllowed."""
        joined = self._joined.get(method)
        if joined is None:
            joined = self._joined[method] = self._join(method)
        pattern, routes = joined
        m = pattern.match(path)
        if m is not None:
            route = routes[m.lastgroup]  # type: ignore[index]
            found = route.pattern.match(path)
            assert found is not None
            return route, {k: unquote(v) for k, v in found.groupdict().items()
                           if v is not None}  # an optional group left out
        if self.has_path(path):
            raise MethodNotAllowed("Method not allowed", status=405)
        raise Unrecognized("Unrecognized request")

    def _join(self, method: str) -> tuple[re.Pattern[str], dict[str, Route]]:
        """One alternation of the routes ``method`` may take (HEAD: GET's too), in
        order, their groups made non-capturing; each alternative ends with an empty
        marker group, the last group to close when it matches (``lastgroup``)."""
        if method == "HEAD" and not any(r.method == "HEAD" for r in self._routes):
            # the same routes as GET: share its joined pattern
            if "GET" not in self._joined:
                self._joined["GET"] = self._join("GET")
            return self._joined["GET"]
        alternatives, routes = [], {}
        for i, route in enumerate(self._routes):
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                body = _NAMED_GROUP.sub("(?:", route.pattern.pattern[1:-1])
                alternatives.append(f"(?:{body})(?P<r{i}>)")
                routes[f"r{i}"] = route
        # an alternative matches only if the whole path does: "$" after the group
        # sends the engine on to the next alternative, as trying them in turn did
        joined = "^(?:" + "|".join(alternatives) + ")$" if alternatives else "(?!)"
        return re.compile(joined), routes

    def has_path(self, path: str) -> bool:
        return any(r.pattern.match(path) for r in self._routes)


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


class ApiRequest:
    """What a servlet sees of an HTTP request: parsed, decoded, size-checked."""

    def __init__(self, raw: server.Request, path_params: Mapping[str, str],
                 max_body: int) -> None:
        self.raw = raw
        self.path = dict(path_params)
        self.method = raw.method.decode("ascii")
        self._max_body = max_body
        self._body: bytes | None = None
        #: set by the authenticator for authenticated endpoints
        self.requester: Any = None

    # -- query string ---------------------------------------------------------------
    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.raw.args.get(name.encode("ascii"))
        if not values:
            return default
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise MatrixError(f"query parameter {name} is not UTF-8",
                              errcode="M_INVALID_PARAM") from None

    def args(self, name: str) -> list[str]:
        return [v.decode("utf-8", "replace") for v in self.raw.args.get(name.encode(), [])]

    def header(self, name: str) -> str | None:
        value = self.raw.getHeader(name)
        return value.decode("latin-1") if isinstance(value, bytes) else value

    @property
    def client_ip(self) -> str:
        peer = self.raw.getClientAddress()
        return getattr(peer, "host", "") or ""

    # -- body -----------------------------------------------------------------------
    def body_bytes(self) -> bytes:
        if self._body is None:
            content = self.raw.content
            content.seek(0)
            data = content.read(self._max_body + 1)
            if len(data) > self._max_body or getattr(self.raw, "too_large", False):
                raise TooLarge("Request body too large")
            self._body = data
        return self._body

    def json(self, *, allow_empty: bool = False) -> dict[str, Any]:
        """The body as a JSON object; M_NOT_JSON if it is not JSON, M_BAD_JSON if not an object."""
        data = self.body_bytes()
        if not data.strip():
            if allow_empty:
                return {}
            raise NotJson("Content not JSON.")
        try:
            body = parse_json_strict(data)
        except (CanonicalJsonError, ValueError):
            raise NotJson("Content not JSON.") from None
        if not isinstance(body, dict):
            raise MatrixError("Content must be a JSON object.", errcode="M_BAD_JSON")
        return body


class LimitedRequest(server.Request):
    """A twisted.web Request that stops buffering a body past a hard limit.

    Small bodies of a known length are buffered in memory; a large one, or one of
    unknown length (chunked), goes to an anonymous temp file, so a media upload of
    ``max_upload_size`` never sits whole in memory.
    """

    hard_limit = 64 * 1024 * 1024
    too_large = False
    #: bodies at least this long (or of unknown length) are spooled to disk
    in_memory_limit = 100_000

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.hard_limit:
            self.too_large = True
            length = 0
        if length is not None and length < self.in_memory_limit:
            self.content = io.BytesIO()
        else:
            self.content = tempfile.TemporaryFile()

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        if self.content.tell() + len(data) > self.hard_limit:
            self.too_large = True
            return
        super().handleContentChunk(data)


class JsonResource(resource.Resource):
    """The leaf resource that dispatches every request through a Router."""

    isLeaf = True

    def __init__(self, router: Router, *, max_body: int, cors: bool = True) -> None:
        super().__init__()
        self._router = router
        self._max_body = max_body
        self._cors = cors

    def render(self, request: server.Request) -> Any:
        if self._cors:
            for k, v in CORS_HEADERS.items():
                request.setHeader(k, v)
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("utf-8", "replace")
        if method == "OPTIONS":
            request.setResponseCode(204 if self._router.has_path(path) else 204)
            return b""
        d = defer.ensureDeferred(self._dispatch(request, method, path))
        d.addErrback(lambda f: log.failure("writing response failed", f))
        return server.NOT_DONE_YET

    async def _dispatch(self, request: server.Request, method: str, path: str) -> None:
        try:
            route, params = self._router.match(method, path)
            max_body = route.max_body or self._max_body
            api_request = ApiRequest(request, params, max_body)
            # refuse an oversized body whether or not the servlet would read it
            if getattr(request, "too_large", False) or _body_length(request) > max_body:
                raise TooLarge("Request body too large")
            status, body = await route.handler(api_request)
            if isinstance(body, RawResponse):
                return  # the servlet writes (or is streaming) its own response
        except MatrixError as e:
            status, body = e.status, e.to_json()
        except Exception:
            log.failure("Unhandled error in {method} {path}", method=method, path=path)
            status, body = 500, {"errcode": "M_UNKNOWN", "error": "Internal server error"}
        respond_json(request, status, body)


def _body_length(request: server.Request) -> int:
    content = request.content
    if content is None:
        return 0
    position = content.tell()
    content.seek(0, 2)
    length = content.tell()
    content.seek(position)
    return length


def respond_json(request: server.Request, status: int, body: Any) -> None:
    if request._disconnected or request.finished:
        return
    payload = body if isinstance(body, bytes) else encode_json(body)
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", str(len(payload)).encode())
    request.setHeader(b"Cache-Control", b"no-cache, no-store, must-revalidate")
    if request.method != b"HEAD":
        request.write(payload)
    transport = request.channel.transport   # the request lets go of it when finished
    request.finish()
    send_now(transport)


def send_now(transport: Any) -> None:
    """Hand a finished response to the kernel now instead of when the reactor next
    polls its sockets: several answers built in one reactor turn (the /syncs one
    message wakes) then leave one by one as each is ready, not all after the last.
    Plain TCP only (TLS and HTTP/2 transports buffer their own way), and not while
    the connection is closing (the reactor must see that write's outcome)."""
    if isinstance(transport, tcp.Connection) and transport.connected \
            and not transport.disconnecting:
        transport.doWrite()   # an error is left for the reactor's own next doWrite


class RawResponse:
    """Returned as the body by a servlet that writes its own response (media
    downloads): the resource then writes nothing, and the servlet (or the producer
    it registered) finishes the request."""


class _Site(server.Site):
    #: whether requests are logged (Combined Log Format, at info level)
    access_log = True

    def log(self, request: Any) -> None:
        # formatting the line costs ~10% of a small request's time: skip it when the
        # log level would drop it anyway
        if self.access_log:
            super().log(request)


def make_site(root: resource.Resource, hard_limit: int, *,
              access_log: bool = True) -> server.Site:
    # no HTML forms here: request bodies are JSON or raw bytes (media), so Twisted is
    # not asked to parse a POST's Content-Type (through the email package: ~37 µs per
    # POST, and ~0.6 MB of modules loaded by the first one)
    site = _Site(root, parsePOSTFormSubmission=False)
    site.access_log = access_log
    site.displayTracebacks = False

    class _Request(LimitedRequest):
        pass

    _Request.hard_limit = hard_limit
    site.requestFactory = _Request
    return site


class MountingResource(resource.Resource):
    """A root resource that hands requests for a few exact paths to resources of
    their own (e.g. a WebSocket endpoint, which is not a JSON route) and every other
    request to ``fallback`` (the JSON API's leaf :class:`JsonResource`)."""

    def __init__(self, fallback: resource.Resource,
                 mounts: Mapping[bytes, Any]) -> None:
        super().__init__()
        self._fallback = fallback
        self._mounts = dict(mounts)

    def getChildWithDefault(self, path: bytes, request: server.Request) -> Any:
        # the whole path decides, not its first segment: mounts are exact paths
        return self._mounts.get(request.path, self._fallback)

    def render(self, request: server.Request) -> Any:
        return self._fallback.render(request)
