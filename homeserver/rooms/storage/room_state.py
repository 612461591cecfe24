"""A room's state as events: the state at a state group, the current state, and the
membership of its users, over :class:`StateGroupStore` (which maps state keys to
event seqs) and :class:`EventReads` (which turns seqs into events).

This class shares the room DB connection and never begins or commits a transaction:
``RoomStore`` wraps ``set_current`` in one.
"""

from __future__ import annotations

import sqlite3
from typing import TypeVar

from homeserver.events.pdu import PDU
from homeserver.rooms.storage.event_reads import EventReads
from homeserver.rooms.storage.event_rows import DecodedEvents
from homeserver.rooms.storage.room_meta import RoomMeta
from homeserver.rooms.storage.state_store import StateFilter, StateGroupStore, StateKey

K = TypeVar("K")


class RoomState:
    __slots__ = ("_conn", "_events", "_meta", "_state", "_reads")

    def __init__(self, conn: sqlite3.Connection, events: DecodedEvents, meta: RoomMeta,
                 state: StateGroupStore, reads: EventReads) -> None:
        self._conn = conn
        self._events = events
        self._meta = meta
        self._state = state
        self._reads = reads

    @property
    def current_group(self) -> int | None:
        return self._meta.get("current_state_group")

    def set_current(self, group: int, changes: dict[StateKey, int | None] | None
                    ) -> dict[StateKey, int | None]:
        """See ``RoomStore.set_current_state``."""
        old = self.current_group
        if old == group:
            return {}
        if changes is None:
            old_map = self._state.current_map() if old is not None else {}
            changes = self._state.diff(old_map, self._state.group_map(group))
        self._state.change_current(changes)
        self._meta.write({"current_state_group": group})
        return changes

    def groups_of(self, event_id: str) -> tuple[int | None, int | None] | None:
        """(state group before, state group after) ``event_id``; None if unknown."""
        cached = self._events.get(event_id)
        if cached is not None:
            meta = cached.internal_metadata
            return meta["state_before"], meta["state_after"]
        row = self._conn.execute(
            "SELECT state_before, state_after FROM events WHERE event_id = ?",
            (event_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def ids(self, group: int, pairs: StateFilter = None) -> dict[StateKey, str]:
        return self._seqs_to_ids(self._state.group_map(group, pairs))

    def current_ids(self, pairs: StateFilter = None) -> dict[StateKey, str]:
        return self._seqs_to_ids(self._state.current_map(pairs))

    def events(self, group: int, pairs: StateFilter = None) -> dict[StateKey, PDU]:
        return self._seqs_to_events(self._state.group_map(group, pairs))

    def current_events(self, pairs: StateFilter = None) -> dict[StateKey, PDU]:
        return self._seqs_to_events(self._state.current_map(pairs))

    def current_event(self, event_type: str, state_key: str = "") -> PDU | None:
        seq = self._state.current_seq(event_type, state_key)
        return None if seq is None else self._reads.get_event_by_seq(seq)

    def membership(self, user_id: str) -> str | None:
        """The user's current membership ("join", "invite", …) or None if never any."""
        seq = self._state.current_seq("m.room.member", user_id)
        if seq is None:
            return None
        return self._conn.execute(
            "SELECT membership FROM events WHERE seq = ?", (seq,)).fetchone()[0]

    def member_seqs(self, membership: str | None = None) -> dict[str, int]:
        """user_id → seq of their current member event, optionally one membership only."""
        if membership is None:
            return dict(self._state.current_type_rows("m.room.member"))
        type_id = self._state.lookup_id("m.room.member")
        if type_id is None:
            return {}
        rows = self._conn.execute(
            "SELECT c.state_key_id, c.event_seq FROM current_state c"
            " JOIN events e ON e.seq = c.event_seq"
            " WHERE c.type_id = ? AND e.membership = ?", (type_id, membership))
        return {self._state.string(key_id): seq for key_id, seq in rows}

    def members(self, membership: str | None = None) -> dict[str, PDU]:
        return self._seqs_to_events(self.member_seqs(membership))

    def _seqs_to_events(self, by_seq: dict[K, int]) -> dict[K, PDU]:
        events = self._reads.events_by_seqs(by_seq.values())
        return {key: events[seq] for key, seq in by_seq.items()}

    def _seqs_to_ids(self, by_seq: dict[StateKey, int]) -> dict[StateKey, str]:
        names = self._reads.ids_for_seqs(by_seq.values())
        return {pair: names[seq] for pair, seq in by_seq.items()}
