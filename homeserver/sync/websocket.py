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

Only :class:`SyncStream` and the mount point live here; autobahn (several MB of
resident memory) is imported from :mod:`homeserver.sync.websocket_protocol` when the
first WebSocket request arrives, so a server nobody streams from never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from twisted.web.resource import IResource
from zope.interface import implementer

if TYPE_CHECKING:
    from autobahn.twisted.websocket import WebSocketServerFactory

    from homeserver.sync.builder import SyncBuilder
    from homeserver.sync.service import SyncService
    from homeserver.sync.websocket_protocol import SyncStreamProtocol

WS_PATH = b"/_matrix/client/unstable/org.roomserver.ws"


class SyncStream:
    """What the WebSocket endpoint needs, and the open connections (for shutdown)."""

    def __init__(self, *, auth: Any, sync_service: "SyncService", builder: "SyncBuilder",
                 notifier: Any, presence: Any, store: Any, reactor: Any) -> None:
        self.auth = auth
        self.sync_service = sync_service
        self.builder = builder
        self.notifier = notifier
        self.presence = presence
        self.store = store
        self.connections: set["SyncStreamProtocol"] = set()
        self._reactor = reactor
        self._factory: "WebSocketServerFactory | None" = None

    def resource(self) -> IResource:
        """The endpoint to mount at :data:`WS_PATH` (autobahn loads on first use)."""
        return _BuiltOnFirstRequest(self._websocket_resource)

    def _websocket_resource(self) -> IResource:
        from autobahn.twisted.resource import WebSocketResource

        from homeserver.sync.websocket_protocol import server_factory

        if self._factory is None:  # one factory however many listeners mount us
            self._factory = server_factory(self, self._reactor)
        return WebSocketResource(self._factory)

    def stop(self) -> None:
        """Close every stream (server shutdown)."""
        for connection in list(self.connections):
            connection.shut()


@implementer(IResource)
class _BuiltOnFirstRequest:
    """A leaf resource standing in for ``build()``'s, which it builds when first used
    and then hands every call to."""

    isLeaf = True

    def __init__(self, build: Callable[[], IResource]) -> None:
        self._build = build
        self._resource: IResource | None = None

    def _real(self) -> IResource:
        if self._resource is None:
            self._resource = self._build()
        return self._resource

    def getChildWithDefault(self, name: bytes, request: Any) -> IResource:
        return self._real().getChildWithDefault(name, request)

    def putChild(self, path: bytes, child: IResource) -> None:
        self._real().putChild(path, child)

    def render(self, request: Any) -> Any:
        return self._real().render(request)
