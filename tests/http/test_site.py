"""The HTTP site: the access log follows the log level."""

from __future__ import annotations

import io
import os

from twisted.logger import LogLevel
from twisted.trial import unittest
from twisted.web import resource
from twisted.web.test.requesthelper import DummyChannel

from homeserver.app import log_level
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
