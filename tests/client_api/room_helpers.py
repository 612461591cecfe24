"""Shared helpers for the rooms client-API tests (test_create_room, test_membership,
test_send, test_state, test_messages, test_directory, test_upgrade)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tests.client_api.harness import ServerTestCase, q

V3 = "/_matrix/client/v3"


class RoomsTestCase(ServerTestCase):
    def room(self, room_id: str, suffix: str = "") -> str:
        return f"{V3}/rooms/{q(room_id)}{suffix}"

    async def users(self, *names: str) -> list[tuple[str, str]]:
        return [await self.register(name) for name in names]

    async def post(self, token: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.request("POST", path, {} if body is None else body, token=token)

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

    async def get_state(self, token: str, room_id: str, event_type: str,
                        state_key: str = "") -> tuple[int, Any]:
        return await self.request(
            "GET", self.room(room_id, f"/state/{event_type}/{q(state_key)}"), token=token)

    async def messages(self, token: str, room_id: str, **params: Any) -> tuple[int, Any]:
        params.setdefault("dir", "b")
        return await self.request("GET", self.room(room_id, "/messages?" + urlencode(params)),
                                  token=token)

    def assertError(self, result: tuple[int, Any], status: int, errcode: str) -> None:
        self.assertEqual(result[0], status, result[1])
        self.assertEqual(result[1]["errcode"], errcode, result[1])


__all__ = ["RoomsTestCase", "V3", "q"]
