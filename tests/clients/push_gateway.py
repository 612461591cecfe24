"""A push gateway for tests: records what a homeserver's pusher POSTs to it.

Push Gateway API, ``POST /_matrix/push/v1/notify``: the body is ``{"notification":
{...}}`` and the answer ``{"rejected": []}`` (no pushkey rejected). The test-only
``GET /_test/notifications`` lists every body received, oldest first, so a client script
can wait for a push.
"""

from __future__ import annotations

import json

from twisted.web import resource, server


class _Notify(resource.Resource):
    isLeaf = True

    def __init__(self, received: list[dict]) -> None:
        super().__init__()
        self._received = received

    def render_POST(self, request):
        try:
            body = json.loads(request.content.read())
        except ValueError:
            request.setResponseCode(400)
            return b'{"errcode": "M_NOT_JSON", "error": "not JSON"}'
        self._received.append(body)
        request.setHeader(b"Content-Type", b"application/json")
        return b'{"rejected": []}'


class _Listing(resource.Resource):
    isLeaf = True

    def __init__(self, received: list[dict]) -> None:
        super().__init__()
        self._received = received

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self._received).encode()


class PushGateway:
    """Listens on a free loopback port; ``received`` holds the notify bodies."""

    def __init__(self, reactor) -> None:
        self.received: list[dict] = []
        root = resource.Resource()
        matrix = resource.Resource()
        push = resource.Resource()
        v1 = resource.Resource()
        root.putChild(b"_matrix", matrix)
        matrix.putChild(b"push", push)
        push.putChild(b"v1", v1)
        v1.putChild(b"notify", _Notify(self.received))
        test = resource.Resource()
        root.putChild(b"_test", test)
        test.putChild(b"notifications", _Listing(self.received))
        self._port = reactor.listenTCP(0, server.Site(root), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self._port.getHost().port}"

    def stop(self):
        return self._port.stopListening()
