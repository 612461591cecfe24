"""A push gateway for tests: records what a homeserver's pusher POSTs to it.

Push Gateway API, ``POST /_matrix/push/v1/notify``: the body is ``{"notification":
{...}}`` and the answer ``{"rejected": []}`` (no pushkey rejected). The test-only
``GET /_test/notifications`` lists every body received, oldest first, so a client script
can wait for a push.
"""

from __future__ import annotations

import json
import threading

from tests.clients.http_thread import HttpThread, QuietHandler


class PushGateway:
    """Listens on a free loopback port; ``received`` holds the notify bodies."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        lock = threading.Lock()
        received = self.received

        class Handler(QuietHandler):
            def do_POST(self):
                if self.path != "/_matrix/push/v1/notify":
                    return self.send_json(404, b'{"errcode": "M_UNRECOGNIZED"}')
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.send_json(400, b'{"errcode": "M_NOT_JSON"}')
                with lock:
                    received.append(body)
                self.send_json(200, b'{"rejected": []}')

            def do_GET(self):
                if self.path != "/_test/notifications":
                    return self.send_json(404, b'{"errcode": "M_UNRECOGNIZED"}')
                with lock:
                    listing = json.dumps(received).encode()
                self.send_json(200, listing)

        self._http = HttpThread(Handler)
        self.url = self._http.url

    def stop(self) -> None:
        self._http.stop()
