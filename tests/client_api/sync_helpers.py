"""Shared helpers for the sync & live-data client-API tests (test_sync,
test_sync_long_poll, test_typing_receipts, test_presence, test_account_data,
test_to_device, test_websocket)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from tests.client_api.harness import _FAST, q
from tests.client_api.room_helpers import V3, RoomsTestCase


class SyncTestCase(RoomsTestCase):
    config_overrides = {"rc_presence": {"per_user": _FAST}}

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
