"""The HTTP site: the access log follows the log level."""

from __future__ import annotations

import io
import os

from twisted.logger import LogLevel
from twisted.trial import unittest
from twisted.web import resource
from twisted.web.test.requesthelper import DummyChannel

from homeserver.runtime import log_level
from homeserver.http.server import make_site


class AccessLogTests(unittest.TestCase):
    def _logged(self, access_log: bool) -> str:
        site = make_site(resource.Resource(), hard_limit=1000, access_log=access_log)
        site._logFile = out = io.StringIO()  # what startFactory would open
        request = site.requestFactory(DummyChannel())
        request.method, request.uri, request.clientproto = b"GET", b"/x", b"HTTP/1.1"
        request.code, request.sentLength = 200, 2
        site.log(request)
        return out.getvalue()

    def test_requests_logged_at_info(self) -> None:
        self.assertIn('"GET /x HTTP/1.1" 200', self._logged(True))

    def test_no_line_formatted_when_the_level_drops_it(self) -> None:
        self.assertEqual(self._logged(False), "")

    def test_level_from_the_environment(self) -> None:
        self.patch(os, "environ", {"ROOMSERVER_LOG_LEVEL": "WARN"})
        self.assertEqual(log_level(), LogLevel.warn)
        self.patch(os, "environ", {})
        self.assertEqual(log_level(), LogLevel.info)


class SendNowTests(unittest.TestCase):
    """Answers go to the kernel as soon as they are finished (send_now)."""

    async def test_answers_on_a_kept_alive_connection(self) -> None:
        import treq
        from twisted.internet import reactor
        from twisted.web.client import HTTPConnectionPool

        from homeserver.http.server import JsonResource, Router

        router = Router()

        async def hello(request):
            return 200, {"hello": "world"}

        router.add("GET", "/hello", hello)
        from homeserver.http import server as http_server
        real, unsent = http_server.send_now, []

        def spy(transport) -> None:
            real(transport)
            unsent.append(transport._tempDataLen + len(transport.dataBuffer)
                          - transport.offset)

        self.patch(http_server, "send_now", spy)
        site = make_site(JsonResource(router, max_body=1000), hard_limit=1000)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(pool.closeCachedConnections)
        url = f"http://127.0.0.1:{port.getHost().port}/hello"
        for _ in range(3):  # the same connection, reused
            response = await treq.get(url, pool=pool)
            self.assertEqual(await response.json(), {"hello": "world"})
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertEqual(unsent, [0, 0, 0])   # nothing left for the reactor to send
