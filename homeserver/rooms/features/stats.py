"""Keeps each room's directory summary (``store.rooms`` room_stats) in step with its
current state: name, topic, canonical alias, avatar, join rule, guest access, world
readability, room type and joined member count (spec: ``PublishedRoomsChunk``).

A notifier observer marks a room dirty when a relevant state event lands; one refresh
per room runs at a time and re-reads the current state until nothing changed meanwhile,
so updates can neither interleave nor be lost, and a burst of events costs one write.
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet import defer
from twisted.logger import Logger

from homeserver.events.pdu import PDU
from homeserver.rooms.rules.visibility import WORLD_READABLE, history_visibility

log = Logger()

RELEVANT_TYPES = frozenset({
    "m.room.create", "m.room.name", "m.room.topic", "m.room.canonical_alias",
    "m.room.avatar", "m.room.join_rules", "m.room.guest_access",
    "m.room.history_visibility", "m.room.member"})


def plain_topic(content: Any) -> str | None:
    """The text/plain topic: ``topic``, else the ``text/plain`` part of ``m.topic``."""
    if not isinstance(content, Mapping):
        return None
    topic = content.get("topic")
    if isinstance(topic, str) and topic:
        return topic
    block = content.get("m.topic")
    texts = block.get("m.text") if isinstance(block, Mapping) else None
    for text in texts if isinstance(texts, list) else ():
        if isinstance(text, dict) and text.get("mimetype", "text/plain") == "text/plain" \
                and isinstance(text.get("body"), str):
            return text["body"]
    return None


def _string(event: PDU | None, key: str) -> str | None:
    value = event.content.get(key) if event is not None else None
    return value if isinstance(value, str) and value else None


class RoomStatsUpdater:
    def __init__(self, *, rooms, store) -> None:
        self._rooms = rooms
        self._store = store
        self._dirty: set[str] = set()
        self._running: dict[str, defer.Deferred] = {}
        self._stopping = False

    def on_event(self, event: PDU, _stream_pos: int) -> None:
        """Notifier observer (runs synchronously in the announcing turn)."""
        if event.type in RELEVANT_TYPES and event.is_state():
            self.mark(event.room_id)

    def mark(self, room_id: str) -> None:
        if self._stopping:
            return  # rebuilt from current state by the next event after a restart
        self._dirty.add(room_id)
        if room_id not in self._running:
            d = defer.ensureDeferred(self._refresh_while_dirty(room_id))
            if not d.called:
                self._running[room_id] = d

    async def _refresh_while_dirty(self, room_id: str) -> None:
        try:
            while room_id in self._dirty:
                self._dirty.discard(room_id)
                try:
                    await self.refresh(room_id)
                except Exception:
                    if self._stopping:
                        return  # the rooms or the database closed under us: expected
                    log.failure("updating the stats of {room}", room=room_id)
        finally:
            self._running.pop(room_id, None)

    async def settled(self) -> None:
        """Wait until no refresh is pending (tests)."""
        while self._running:
            await defer.DeferredList(list(self._running.values()))

    def stop(self) -> defer.Deferred:
        """Take no new work and fire once pending refreshes are done (shutdown: before
        the rooms and the database stop)."""
        self._stopping = True
        return defer.ensureDeferred(self.settled())

    async def refresh(self, room_id: str) -> None:
        """Recompute the room's summary from its current state."""
        actor = await self._rooms.get(room_id)
        state = await actor.current_state([(t, "") for t in RELEVANT_TYPES
                                           if t != "m.room.member"])
        joined = len(await actor.members("join"))

        def get(event_type: str) -> PDU | None:
            return state.get((event_type, ""))

        create = get("m.room.create")
        access = get("m.room.guest_access")
        topic = get("m.room.topic")
        await self._store.rooms.update_room_stats(
            room_id,
            name=_string(get("m.room.name"), "name"),
            topic=plain_topic(topic.content) if topic is not None else None,
            canonical_alias=_string(get("m.room.canonical_alias"), "alias"),
            avatar=_string(get("m.room.avatar"), "url"),
            join_rule=_string(get("m.room.join_rules"), "join_rule"),
            guest_access=_string(access, "guest_access"),
            world_readable=history_visibility(state) == WORLD_READABLE,
            room_type=_string(create, "type"),
            joined_members=joined)
