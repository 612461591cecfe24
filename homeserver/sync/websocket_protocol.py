"""The WebSocket sync stream's autobahn side: the handshake and the push loop.

The protocol is described in :mod:`homeserver.sync.websocket`, which imports this
module (and with it autobahn) only when the first WebSocket request arrives.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.logger import Logger

from homeserver.crypto.canonical_json import encode_json
from homeserver.errors import MatrixError
from homeserver.rooms.rules.transactions import scope_of
from homeserver.sync.builder import SyncRequest
from homeserver.sync.service import SET_PRESENCE_VALUES, parse_since
from homeserver.sync.tokens import StreamToken

if TYPE_CHECKING:
    from homeserver.sync.websocket import SyncStream

log = Logger()

#: a waiting stream re-registers with the notifier this often (it costs one build)
_REWAIT_MS = 5 * 60 * 1000


def server_factory(stream: "SyncStream", reactor: Any) -> WebSocketServerFactory:
    """The autobahn factory building a :class:`SyncStreamProtocol` per connection."""
    factory = WebSocketServerFactory(reactor=reactor)
    factory.protocol = SyncStreamProtocol
    factory.stream = stream
    factory.setProtocolOptions(autoPingInterval=30, autoPingTimeout=60)
    return factory


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
