"""The real server process with the SFU on, users and a room; shared by the SFU tests."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from twisted.trial import unittest

from tests.e2e.harness import ServerProcess

V3 = "/_matrix/client/v3"


def continuous(seqs: list[int]) -> bool:
    """Each RTP sequence number is the one before plus one (mod 2^16)."""
    return all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:]))


async def wait_for(predicate, timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


class SfuServerCase(unittest.TestCase):
    overrides: dict = {}

    def setUp(self):
        self.server = ServerProcess(overrides=self.overrides)
        self.server.start()
        self.addCleanup(self.server.stop)

    def register(self, name: str) -> str:
        status, body = self.server.request("POST", f"{V3}/register", {
            "username": name, "password": "pw-" + name * 2, "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def room_with(self, owner: str, *members: str) -> str:
        status, body = self.server.request("POST", f"{V3}/createRoom",
                                           {"preset": "public_chat"}, token=owner)
        self.assertEqual(status, 200, body)
        for token in members:
            status, joined = self.server.request(
                "POST", f"{V3}/join/{quote(body['room_id'])}", {}, token=token)
            self.assertEqual(status, 200, joined)
        return body["room_id"]
