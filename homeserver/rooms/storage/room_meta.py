"""A room's ``room_meta`` table: its settings and bookkeeping as key → value.

Values are read once and cached. Cheap bookkeeping (``last_announced_seq``) may be
*deferred*: kept here until the store's next commit writes it (or its close), so it
never costs a transaction of its own; a crash may lose it, so only values that are
safe to recompute are deferred.

This class shares the room DB connection and never begins or commits a transaction:
``RoomStore`` calls ``write`` inside its own.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from homeserver.events.room_versions import RoomVersion, get_room_version


class RoomMeta:
    __slots__ = ("_conn", "_cache", "deferred", "_room_version")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._cache: dict[str, Any] = {}
        #: values to write with the next commit (or on close)
        self.deferred: dict[str, Any] = {}
        self._room_version: RoomVersion | None = None

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.deferred:
            return self.deferred[key]
        if key not in self._cache:
            row = self._conn.execute(
                "SELECT value FROM room_meta WHERE key = ?", (key,)).fetchone()
            self._cache[key] = row[0] if row else None
        value = self._cache[key]
        return default if value is None else value

    def write(self, values: dict[str, Any]) -> None:
        """Write ``values`` now, in the caller's transaction."""
        self._conn.executemany("INSERT OR REPLACE INTO room_meta (key, value) VALUES (?, ?)",
                               list(values.items()))
        self._cache.update(values)

    def defer(self, key: str, value: Any) -> None:
        self.deferred[key] = value

    def write_deferred(self) -> None:
        """Write the deferred values (in the caller's transaction, about to commit)."""
        self.write(self.deferred)
        self.deferred = {}

    def forget(self) -> None:
        """Drop the cache (a rolled-back scope may have written what it holds)."""
        self._cache.clear()

    @property
    def room_version(self) -> RoomVersion:
        if self._room_version is None:
            self._room_version = get_room_version(self.get("room_version"))
        return self._room_version
