"""GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event (spec: v1.6)."""

from __future__ import annotations

from tests.client_api.harness import q
from tests.client_api.room_helpers import RoomsTestCase

V1 = "/_matrix/client/v1"


class TimestampToEventTests(RoomsTestCase):
    async def find(self, token: str, room_id: str, ts, direction) -> tuple[int, dict]:
        return await self.request(
            "GET", f"{V1}/rooms/{q(room_id)}/timestamp_to_event?ts={ts}&dir={direction}",
            token=token)

    async def ts_of(self, token: str, room_id: str, event_id: str) -> int:
        body = await self.ok("GET", self.room(room_id, f"/event/{q(event_id)}"), token=token)
        return body["origin_server_ts"]

    async def test_closest_in_each_direction(self):
        """dir=f finds the first event at or after ts, dir=b the last at or before."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        first = await self.send(token, room_id, {"msgtype": "m.text", "body": "1"})
        last = await self.send(token, room_id, {"msgtype": "m.text", "body": "2"})
        t_last = await self.ts_of(token, room_id, last)
        status, body = await self.find(token, room_id, t_last + 10_000, "b")
        self.assertEqual((status, body["event_id"]), (200, last))
        self.assertEqual(body["origin_server_ts"], t_last)
        status, body = await self.find(token, room_id, 0, "f")
        self.assertEqual(status, 200)
        self.assertTrue(body["event_id"].startswith("$"))  # the room's create event
        t_first = await self.ts_of(token, room_id, first)
        status, body = await self.find(token, room_id, t_first, "b")
        self.assertLessEqual(body["origin_server_ts"], t_first)

    async def test_nothing_found_and_bad_input(self):
        """Nothing after the last event is 404; a missing or bad dir/ts is 400; a
        private room the user is not in is 403."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        status, body = await self.find(token, room_id, 2 ** 52, "f")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        for ts, direction in (("x", "f"), (1, "up")):
            status, body = await self.find(token, room_id, ts, direction)
            self.assertEqual(status, 400, body)
        status, body = await self.request(
            "GET", f"{V1}/rooms/{q(room_id)}/timestamp_to_event?dir=f", token=token)
        self.assertEqual((status, body["errcode"]), (400, "M_MISSING_PARAM"))
        _, other = await self.register("bob")
        status, body = await self.find(other, room_id, 0, "f")
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
