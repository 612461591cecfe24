"""Live sync over a WebSocket: the same deltas as ``/sync``, pushed as they happen.

Protocol (``org.roomserver.ws``, unstable)
==========================================

Endpoint: ``GET /_matrix/client/unstable/org.roomserver.ws`` upgraded to a WebSocket
(RFC 6455) on the client API listener.

Handshake query parameters / headers:

- the access token, as ``Authorization: Bearer <token>`` or ``?access_token=<token>``
  (a browser cannot set headers on a WebSocket). Missing: HTTP 401; unknown or
  expired: HTTP 401; a guest: HTTP 403.
- ``since`` (optional): a ``next_batch`` token from ``/sync`` or from an earlier
  message of this stream; the stream resumes from it. Malformed: HTTP 400.
- ``filter`` (optional): a filter ID or inline filter JSON, exactly as ``/sync``'s
  ``filter``. Unknown or malformed: HTTP 400.
- ``set_presence`` (optional): as ``/sync``'s; while the socket is open the user
  counts as connected (online, unless ``offline``/``unavailable`` is asked for).

Server → client: text frames, each one JSON object that is exactly a ``/sync``
response body (``next_batch``, ``rooms``, ``presence``, ``account_data``,
``to_device``, ``device_lists``). The first frame is sent at once: an initial sync
without ``since``, else everything since ``since`` (possibly empty — it tells the
client the stream is live). Every later frame is the non-empty delta since the
previous frame's ``next_batch``, sent the moment the change is committed (the stream
waits on the same notifier as a long-polling ``/sync``; there is no poll interval).

Client → server: optional text frames ``{"ack": "<next_batch>"}``. To-device
messages are deleted once acknowledged, as ``/sync`` deletes them once a later
``since`` comes in; reconnecting with ``since`` acknowledges up to it too. Any other
frame is ignored. The server sends WebSocket pings; a peer that stops answering is
dropped.

Resuming: keep the ``next_batch`` of the last frame handled and reconnect with it as
``since`` (or fall back to ``/sync`` with it): nothing is lost or repeated, because
each frame's token is a ``/sync`` token.

Limits (for now): a client that stops reading its socket has its frames buffered by
the server without bound until the ping timeout drops it; the stream does not pin
the rooms it follows in memory (they may hibernate; the notifier wakes it anyway).
"""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.logger import Logger

from homeserver.crypto.canonical_json import encode_json
from homeserver.errors import MatrixError
from homeserver.rooms.transactions import scope_of
from homeserver.sync.builder import SyncBuilder, SyncRequest
from homeserver.sync.service import SET_PRESENCE_VALUES, SyncService, parse_since
from homeserver.sync.tokens import StreamToken

log = Logger()

WS_PATH = b"/_matrix/client/unstable/org.roomserver.ws"
#: a waiting stream re-registers with the notifier this often (it costs one build)
_REWAIT_MS = 5 * 60 * 1000


class _Handshake:
    """The handshake as the Authenticator reads requests (header/arg)."""

    def __init__(self, headers: dict[str, str], params: dict[str, list[str]]) -> None:
        self._headers = headers
        self._params = params
        self.requester = None

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self._params.get(name)
        return values[-1] if values else default


class SyncStream:
    """What the WebSocket endpoint needs, and the open connections (for shutdown)."""

    def __init__(self, *, auth: Any, sync_service: SyncService, builder: SyncBuilder,
                 notifier: Any, presence: Any, store: Any, reactor: Any) -> None:
        self.auth = auth
        self.sync_service = sync_service
        self.builder = builder
        self.notifier = notifier
        self.presence = presence
        self.store = store
        self.connections: set["SyncStreamProtocol"] = set()
        self._factory = WebSocketServerFactory(reactor=reactor)
        self._factory.protocol = SyncStreamProtocol
        self._factory.stream = self
        self._factory.setProtocolOptions(autoPingInterval=30, autoPingTimeout=60)

    def resource(self) -> WebSocketResource:
        return WebSocketResource(self._factory)

    def stop(self) -> None:
        """Close every stream (server shutdown)."""
        for connection in list(self.connections):
            connection.shut()


class SyncStreamProtocol(WebSocketServerProtocol):
    stream: SyncStream

    def onConnect(self, request: Any) -> defer.Deferred:
        self.stream = self.factory.stream
        return defer.ensureDeferred(self._accept(request))

    async def _accept(self, request: Any) -> None:
        # autobahn has already split and percent-decoded the query string
        handshake = _Handshake({k.lower(): v for k, v in request.headers.items()},
                               dict(request.params))
        try:
            requester = await self.stream.auth.authenticate(handshake)
            self.since = parse_since(handshake.arg("since"))
            self.filter = await self.stream.sync_service.resolve_filter(
                requester.user_id, handshake.arg("filter"))
            self.set_presence = handshake.arg("set_presence")
            if self.set_presence is not None and \
                    self.set_presence not in SET_PRESENCE_VALUES:
                raise MatrixError("set_presence must be offline, online or unavailable",
                                  errcode="M_INVALID_PARAM")
        except MatrixError as e:
            raise ConnectionDeny(e.status, f"{e.errcode}: {e.message}") from None
        self.requester = requester
        self.closed = False
        self.waiter: defer.Deferred | None = None

    def onOpen(self) -> None:
        self.stream.connections.add(self)
        defer.ensureDeferred(self._run()).addErrback(self._failed)

    def _failed(self, failure: Any) -> None:
        if not self.closed:  # once closed (e.g. at shutdown) a failed read is moot
            log.failure("sync stream for {user}", failure, user=self.requester.user_id)
        self.shut()

    async def _run(self) -> None:
        user = self.requester.user_id
        await self.stream.presence.connected(user, self.set_presence)
        try:
            await self._push(user)
        finally:
            self.stream.presence.disconnected(user)

    async def _push(self, user: str) -> None:
        token, first = self.since, True
        rooms = [m.room_id for m in await self.stream.store.streams.get_rooms_for_user(user)]
        while not self.closed:
            waiter = self.stream.notifier.wait(user, rooms, _REWAIT_MS)
            self.waiter = waiter
            result = await self.stream.builder.build(SyncRequest(
                user, self.requester.device_id,
                scope_of(self.requester), token,
                self.filter, ack_to_device=first))
            if self.closed:
                _drop(waiter)
                return
            if first or not result.empty:
                self.sendMessage(encode_json(result.body), isBinary=False)
                token, first = result.next_batch, False
            rooms = list(result.joined_room_ids)
            try:
                await waiter  # True: woken; False: time to re-register
            except defer.CancelledError:
                return  # the connection closed

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            return
        try:
            message = json.loads(payload)
            token = StreamToken.parse(message["ack"])
        except (ValueError, TypeError, KeyError, MatrixError):
            return  # not an acknowledgement: ignored (see the protocol above)
        device_id = self.requester.device_id
        if device_id is not None:
            defer.ensureDeferred(self.stream.store.to_device.delete_messages_upto(
                self.requester.user_id, device_id, token.to_device)).addErrback(
                lambda f: log.failure("to-device ack", f))

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.closed = True
        self.stream.connections.discard(self)
        waiter = getattr(self, "waiter", None)
        if waiter is not None:
            _drop(waiter)

    def shut(self) -> None:
        self.closed = True
        self.dropConnection(abort=True)


def _drop(waiter: defer.Deferred) -> None:
    """Unregister a notifier wait that nobody needs (its result becomes None)."""
    if not waiter.called:
        waiter.addErrback(lambda f: f.trap(defer.CancelledError))
        waiter.cancel()
