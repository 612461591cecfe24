"""Hand-made PDUs for room store tests: no hashing or signing, just the fields the
store reads. Event IDs are ``$<n>``; bytes are plain JSON."""

from __future__ import annotations

import json
from typing import Any

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version
from homeserver.rooms.storage.store import EventContext, RoomStore


class DagBuilder:
    """Appends events to a RoomStore, each after the previous one unless told."""

    def __init__(self, store: RoomStore, room_id: str = "!room:test",
                 room_version: str = "10") -> None:
        self.store = store
        self.room_id = room_id
        self.version = get_room_version(room_version)
        self._n = 0
        self.last: PDU | None = None
        self.depth = 0

    def pdu(self, event_type: str, sender: str = "@alice:test", *, state_key: str | None = None,
            content: dict[str, Any] | None = None, prev: list[PDU] | None = None,
            auth: list[PDU] = (), **extra: Any) -> PDU:
        self._n += 1
        if prev is None:
            prev = [self.last] if self.last is not None else []
        depth = max((p.depth for p in prev), default=0) + 1
        event = {"type": event_type, "sender": sender, "room_id": self.room_id,
                 "content": content or {}, "depth": depth,
                 "prev_events": [p.event_id for p in prev],
                 "auth_events": [a.event_id for a in auth],
                 "origin_server_ts": 1000 + self._n}
        if state_key is not None:
            event["state_key"] = state_key
        event.update(extra)
        raw = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
        return PDU(self.version, json.loads(raw), f"${self._n}", raw)

    def add(self, event_type: str, sender: str = "@alice:test", *,
            state_key: str | None = None, content: dict[str, Any] | None = None,
            prev: list[PDU] | None = None, current: bool = True,
            context: dict[str, Any] | None = None, **extra: Any) -> EventContext:
        """Build and persist one event after ``prev`` (default: the last one).

        The state before it is the state after its first prev event; with ``current``
        an accepted event also becomes the current state.
        """
        pdu = self.pdu(event_type, sender, state_key=state_key, content=content,
                       prev=prev, **extra)
        before = None
        if pdu.prev_event_ids:
            before = self.store.state_groups_of(pdu.prev_event_ids[0])[1]
        ctx = EventContext(pdu, state_before=before, **(context or {}))
        with self.store.transaction():
            self.store.persist([ctx])
            if current and ctx.in_timeline and ctx.state_after is not None:
                self.store.set_current_state(ctx.state_after)
        self.last = pdu
        return ctx

    def member(self, user: str, membership: str = "join", **kw: Any) -> EventContext:
        return self.add("m.room.member", user, state_key=user,
                        content={"membership": membership}, **kw)
