"""A trial case with the real server process and matrix-nio clients closed after it."""

from __future__ import annotations

import nio
from twisted.trial import unittest

from tests.e2e.harness import ServerProcess, as_deferred


class NioServerTestCase(unittest.TestCase):
    """``self.server`` runs for each test; ``self.client(user)`` makes a nio client."""

    def setUp(self):
        self.server = ServerProcess()
        self.server.start()
        self.addCleanup(self.server.stop)
        self.clients: list[nio.AsyncClient] = []

    def tearDown(self):
        return as_deferred(self._close_clients())

    async def _close_clients(self):
        for client in self.clients:
            await client.close()

    def client(self, user: str) -> nio.AsyncClient:
        c = nio.AsyncClient(self.server.base_url, user)
        self.clients.append(c)
        return c

    async def _ok(self, coro, kind):
        """Await a nio call and check its response type."""
        resp = await coro
        self.assertIsInstance(resp, kind, f"{resp!r}")
        return resp
