"""``GET /rooms/{roomId}/timestamp_to_event`` (spec: Client-Server API, "Timestamp to
event"; added in v1.6): who may ask, and the answer, read from the room's database
(:class:`homeserver.rooms.storage.timestamps.TimestampLookup`) through its actor.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import InvalidParam, NotFound


class TimestampToEvent:
    """The endpoint's domain: who may ask (members, or anyone for a world-readable
    room, as Synapse's "in room or world readable") and the answer."""

    def __init__(self, *, rooms: Any, visibility: Any) -> None:
        self._rooms = rooms
        self._visibility = visibility

    async def find(self, room_id: str, user_id: str, ts: int,
                   direction: str) -> dict[str, Any]:
        if direction not in ("f", "b"):
            raise InvalidParam("dir must be 'f' or 'b'")
        actor = await self._rooms.get(room_id)
        await self._visibility.access(actor, user_id)  # 403 if the room is closed to them
        found = await actor.read(lambda store: store.timestamps.closest(ts, direction == "f"))
        if found is None:
            raise NotFound(f"No event found {'after' if direction == 'f' else 'before'} "
                           f"{ts} in {room_id}")
        return {"event_id": found[0], "origin_server_ts": found[1]}
