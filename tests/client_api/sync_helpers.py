"""Shared helpers for the sync & live-data client-API tests (test_sync,
test_sync_long_poll, test_typing_receipts, test_presence, test_account_data,
test_to_device, test_websocket)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from tests.client_api.harness import ServerTestCase, _FAST, q

V3 = "/_matrix/client/v3"


class SyncTestCase(ServerTestCase):
    config_overrides = {"rc_presence": {"per_user": _FAST}}

    def room(self, room_id: str, suffix: str = "") -> str:
        return f"{V3}/rooms/{q(room_id)}{suffix}"

    async def ok(self, method: str, path: str, body: Any = None, *,
                 token: str | None = None) -> Any:
        """The JSON body of a request that must succeed."""
        status, resp = await self.request(method, path, body, token=token)
        self.assertEqual(status, 200, resp)
        return resp

    async def join(self, token: str, room_id: str) -> None:
        await self.ok("POST", self.room(room_id, "/join"), {}, token=token)

    async def invite(self, token: str, room_id: str, user_id: str) -> None:
        await self.ok("POST", self.room(room_id, "/invite"), {"user_id": user_id},
                      token=token)

    async def leave(self, token: str, room_id: str) -> None:
        await self.ok("POST", self.room(room_id, "/leave"), {}, token=token)

    async def put_state(self, token: str, room_id: str, event_type: str,
                        content: dict, state_key: str = "") -> str:
        resp = await self.ok("PUT", self.room(room_id, f"/state/{event_type}/{q(state_key)}"),
                             content, token=token)
        return resp["event_id"]

    async def sync_raw(self, token: str, **params: Any) -> tuple[int, Any]:
        """GET /sync with any query parameters (dicts are sent as inline JSON)."""
        query = {k: json.dumps(v) if isinstance(v, dict) else
                 ("true" if v is True else "false" if v is False else v)
                 for k, v in params.items() if v is not None}
        return await self.request("GET", f"{V3}/sync?{urlencode(query)}", token=token)

    async def sync_ok(self, token: str, **params: Any) -> dict:
        status, body = await self.sync_raw(token, **params)
        self.assertEqual(status, 200, body)
        return body

    def assertError(self, result: tuple[int, Any], status: int, errcode: str) -> None:
        self.assertEqual(result[0], status, result[1])
        self.assertEqual(result[1]["errcode"], errcode, result[1])


def timeline(body: dict, room_id: str, section: str = "join") -> list[dict]:
    return body["rooms"][section][room_id]["timeline"]["events"]


def bodies(events: list[dict]) -> list[Any]:
    """The ``content.body`` of the messages among ``events``, in order."""
    return [e["content"].get("body") for e in events if e["type"] == "m.room.message"]


def ephemeral(body: dict, room_id: str, event_type: str) -> list[dict]:
    room = body["rooms"]["join"].get(room_id)
    if room is None:
        return []
    return [e for e in room["ephemeral"]["events"] if e["type"] == event_type]


__all__ = ["SyncTestCase", "V3", "q", "quote", "timeline", "bodies", "ephemeral"]
