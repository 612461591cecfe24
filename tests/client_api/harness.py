"""An in-process server for client API tests: the real service tree from
``homeserver.app.build_service`` on a free loopback port, driven over real HTTP.

Subclass ``ServerTestCase``; ``self.request(...)`` returns ``(status, json)``;
``self.register(name)`` returns ``(user_id, access_token)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any
from urllib.parse import quote

import treq
from treq.client import HTTPClient
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from homeserver.app import build_service
from homeserver.config import parse_config
from homeserver.crypto.signing import generate_signing_key, write_signing_key
from tests.e2e.harness import free_port

_FAST = {"per_second": 100000, "burst_count": 1000000}


def test_config(data_dir: str, port: int, **overrides: Any):
    write_signing_key(os.path.join(data_dir, "test.signing.key"), generate_signing_key())
    raw: dict[str, Any] = {
        "server_name": "test.local",
        "data_dir": data_dir,
        "signing_key_path": "test.signing.key",
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http",
                       "resources": [{"names": ["client", "federation"]}]}],
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "rc_message": _FAST, "rc_registration": _FAST,
        "rc_login": {"address": _FAST, "account": _FAST, "failed_attempts": _FAST},
        "rc_joins": {"local": _FAST, "remote": _FAST},
        "rc_invites": {"per_room": _FAST, "per_user": _FAST},
        "registration_shared_secret": "s3cret",
    }
    raw.update(overrides)
    return parse_config(raw, data_dir)


def password_auth(user: str, password: str = "correct horse",
                  session: str | None = None) -> dict:
    auth = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password}
    if session is not None:
        auth["session"] = session
    """A UIA m.login.password stage for ``user``."""
    return auth


class ServerTestCase(unittest.TestCase):
    #: extra config keys for a subclass
    config_overrides: dict[str, Any] = {}
    timeout = 60

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="roomserver-test-")
        self.port = free_port()
        self.config = test_config(self.data_dir, self.port, **self.config_overrides)
        self.hs = build_service(self.config, reactor)
        self.hs.startService()
        self.base = f"http://127.0.0.1:{self.port}"
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.addCleanup(self.hs.stopService)

    @property
    def c(self) -> dict[str, Any]:
        """The service tree's components (store, rooms, notifier, …)."""
        return self.hs.components

    async def request(self, method: str, path: str, body: Any = None, *,
                      token: str | None = None, raw: bytes | None = None,
                      headers: dict[str, str] | None = None) -> tuple[int, Any]:
        hdrs = {"Content-Type": ["application/json"]}
        if token:
            hdrs["Authorization"] = [f"Bearer {token}"]
        for k, v in (headers or {}).items():
            hdrs[k] = [v]
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        resp = await self.http.request(method, self.base + path, data=data, headers=hdrs)
        payload = await resp.content()
        try:
            return resp.code, json.loads(payload) if payload else None
        except ValueError:
            return resp.code, payload

    async def register(self, localpart: str, password: str = "correct horse",
                       device_id: str | None = None) -> tuple[str, str]:
        body: dict[str, Any] = {"username": localpart, "password": password,
                                "auth": {"type": "m.login.dummy"}}
        if device_id:
            body["device_id"] = device_id
        status, resp = await self.request("POST", "/_matrix/client/v3/register", body)
        assert status == 200, (status, resp)
        return resp["user_id"], resp["access_token"]

    async def create_room(self, token: str, **body: Any) -> str:
        status, resp = await self.request("POST", "/_matrix/client/v3/createRoom", body,
                                          token=token)
        assert status == 200, (status, resp)
        return resp["room_id"]

    async def send(self, token: str, room_id: str, content: dict, event_type: str =
                   "m.room.message", txn: str | None = None) -> str:
        txn = txn or os.urandom(8).hex()
        status, resp = await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{event_type}/{txn}",
            content, token=token)
        assert status == 200, (status, resp)
        return resp["event_id"]

    async def sync(self, token: str, since: str | None = None, timeout: int = 0,
                   filter: str | None = None) -> dict:
        qs = [f"timeout={timeout}"]
        if since:
            qs.append(f"since={quote(since)}")
        if filter:
            qs.append(f"filter={quote(filter)}")
        status, resp = await self.request("GET", "/_matrix/client/v3/sync?" + "&".join(qs),
                                          token=token)
        assert status == 200, (status, resp)
        return resp


def q(value: str) -> str:
    """URL-quote a path segment (room IDs, event IDs, user IDs)."""
    return quote(value, safe="")


__all__ = ["ServerTestCase", "q", "defer", "password_auth"]
