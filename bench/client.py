"""A minimal asyncio Matrix client for load generation (aiohttp), the same for both
servers: register, create/join rooms, send, sync, /messages."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp

_txn = itertools.count()


class ApiError(Exception):
    pass


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base
        self.token: str | None = None
        self.user_id: str | None = None

    async def call(self, method: str, path: str, body: Any = None, *,
                   params: dict | None = None, timeout: float = 120) -> tuple[Any, int]:
        """(parsed JSON body, response size in bytes); raises ApiError on non-200."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.session.request(
                method, self.base + path, json=body, params=params, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise ApiError(f"{method} {path}: {resp.status} {raw[:300]!r}")
            return json.loads(raw), len(raw)

    async def register(self, username: str, password: str = "bench-password-1") -> None:
        body, _ = await self.call("POST", "/_matrix/client/v3/register", {
            "username": username, "password": password, "auth": {"type": "m.login.dummy"},
            "initial_device_display_name": "bench"})
        self.token, self.user_id = body["access_token"], body["user_id"]

    async def create_room(self, **body: Any) -> str:
        resp, _ = await self.call("POST", "/_matrix/client/v3/createRoom", body)
        return resp["room_id"]

    async def join(self, room_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/join/{quote(room_id, safe='')}", {})

    async def invite(self, room_id: str, user_id: str) -> None:
        await self.call("POST", f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/invite",
                        {"user_id": user_id})

    async def send(self, room_id: str, content: dict) -> str:
        txn = f"{uuid.uuid4().hex}{next(_txn)}"
        resp, _ = await self.call(
            "PUT", f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/send/m.room.message/"
                   f"{txn}", content)
        return resp["event_id"]

    async def sync(self, since: str | None = None, timeout_ms: int = 0,
                   filter: str | None = None) -> tuple[dict, int]:
        params = {"timeout": str(timeout_ms)}
        if since:
            params["since"] = since
        if filter:
            params["filter"] = filter
        return await self.call("GET", "/_matrix/client/v3/sync", params=params,
                               timeout=timeout_ms / 1000 + 120)

    async def upload(self, data: bytes, content_type: str, filename: str) -> str:
        """POST /_matrix/media/v3/upload; the mxc URI."""
        async with self.session.post(
                self.base + "/_matrix/media/v3/upload", data=data,
                params={"filename": filename},
                headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
                timeout=aiohttp.ClientTimeout(total=120)) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise ApiError(f"upload: {resp.status} {raw[:300]!r}")
            return json.loads(raw)["content_uri"]

    async def media_get(self, path: str, params: dict | None = None) -> bytes:
        """GET an authenticated media path (/_matrix/client/v1/media/...); the bytes."""
        async with self.session.get(
                self.base + "/_matrix/client/v1/media/" + path, params=params,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=120)) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise ApiError(f"GET media/{path}: {resp.status} {raw[:300]!r}")
            return raw

    async def messages(self, room_id: str, limit: int = 20) -> dict:
        resp, _ = await self.call(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages",
            params={"dir": "b", "limit": str(limit)})
        return resp


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def now() -> float:
    return time.perf_counter()
