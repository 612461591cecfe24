"""Notifications: the outcome of push rule evaluation for each (user, event) that
notifies (spec: Client-Server API, "Push Notifications", "Receiving notifications";
GET /notifications).

Table ``event_push_actions``: one row per notifying event per user, keyed by the
event's room seq (its arrival order in the room: unread counts are "after the read
receipt", and receipts are compared by seq); ``stream_pos`` is the event's room-stream
position, the order /notifications pages through across rooms. ``thread_id`` is the
thread root (``''`` for the main timeline).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from twisted.internet import defer

from homeserver.store.database import Database
from homeserver.store.sql import (JsonText, canonical_json_text, driver_executemany,
                                  metadata)

MAIN = ""

event_push_actions = sa.Table(
    "event_push_actions", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("room_seq", sa.BigInteger, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("stream_pos", sa.BigInteger, nullable=False),
    sa.Column("thread_id", sa.Text, nullable=False),
    sa.Column("highlight", sa.Boolean, nullable=False),
    sa.Column("actions", JsonText, nullable=False),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Index(None, "user_id", "stream_pos"),
)

_c = event_push_actions.c
_INSERT = ("INSERT INTO event_push_actions (user_id, room_id, room_seq, event_id, "
           "stream_pos, thread_id, highlight, actions, ts) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (user_id, room_id, room_seq) DO NOTHING")


@dataclasses.dataclass(frozen=True)
class Notification:
    user_id: str
    room_id: str
    room_seq: int
    event_id: str
    stream_pos: int
    thread_id: str | None
    highlight: bool
    actions: list[Any]
    ts: int


def _notification(row: Any) -> Notification:
    return Notification(row.user_id, row.room_id, row.room_seq, row.event_id,
                        row.stream_pos, row.thread_id or None, bool(row.highlight),
                        row.actions, row.ts)


class Notifications:
    def __init__(self, db: Database) -> None:
        self._db = db
        #: add() calls whose rows are not stored yet (see :meth:`stored`)
        self._writing: set[defer.Deferred] = set()

    async def add(self, notifications: Iterable[Notification]) -> None:
        """Record notifications (idempotent per user and event: a re-evaluation after
        a crash adds nothing twice).

        An event in a big room notifies many users at once, so the rows go in one
        DB-API executemany with plain tuples (SQLAlchemy's per-row parameter handling
        was most of the global DB thread's time in the shared-room benchmark;
        ``sql.driver_executemany``)."""
        texts: dict[int, str] = {}
        rows = []
        for n in notifications:
            text = texts.get(id(n.actions))
            if text is None:
                text = texts[id(n.actions)] = canonical_json_text(n.actions)
            rows.append((n.user_id, n.room_id, n.room_seq, n.event_id, n.stream_pos,
                         n.thread_id or MAIN, bool(n.highlight), text, n.ts))
        if not rows:
            return

        def txn(conn: Connection) -> None:
            driver_executemany(conn, _INSERT, rows)

        # behind the answers the event wakes, on the reactor thread when the pool is idle
        write = defer.ensureDeferred(self._db.run_behind(txn))
        self._writing.add(write)
        write.addBoth(lambda result: (self._writing.discard(write), result)[1])
        await write

    async def stored(self) -> None:
        """Once every :meth:`add` begun so far has stored its rows (or failed): what a
        reader of this table waits for, the rows being gathered for a moment before
        they are written (``Database.run_behind``)."""
        if self._writing:
            pending = list(self._writing)
            self._db.write_behind_now()
            await defer.DeferredList(pending)   # their callers see their failures

    async def remove_event(self, room_id: str, event_id: str) -> None:
        """Forget every user's notification of one event (it was redacted)."""
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(event_push_actions).where(
                _c.room_id == room_id, _c.event_id == event_id))

        await self._db.run(txn)

    async def in_room_after(self, user_id: str, room_id: str, after_seq: int,
                            upto_seq: int) -> list[Notification]:
        """The user's notifications in one room with after_seq < room_seq <= upto_seq."""
        def txn(conn: Connection) -> list[Notification]:
            rows = conn.execute(sa.select(event_push_actions).where(
                _c.user_id == user_id, _c.room_id == room_id, _c.room_seq > after_seq,
                _c.room_seq <= upto_seq))
            return [_notification(r) for r in rows]

        return await self._db.run(txn)

    async def page(self, user_id: str, before_pos: int | None, limit: int,
                   only_highlight: bool) -> list[Notification]:
        """The user's notifications, newest first, with stream_pos < ``before_pos``."""
        def txn(conn: Connection) -> list[Notification]:
            stmt = sa.select(event_push_actions).where(_c.user_id == user_id)
            if before_pos is not None:
                stmt = stmt.where(_c.stream_pos < before_pos)
            if only_highlight:
                stmt = stmt.where(_c.highlight == sa.true())
            rows = conn.execute(stmt.order_by(_c.stream_pos.desc()).limit(limit))
            return [_notification(r) for r in rows]

        return await self._db.run(txn)

    async def latest_per_room(self, user_id: str) -> dict[str, int]:
        """room_id → the room seq of the user's newest notification there."""
        def txn(conn: Connection) -> dict[str, int]:
            return dict(conn.execute(sa.select(_c.room_id, sa.func.max(_c.room_seq)).where(
                _c.user_id == user_id).group_by(_c.room_id)).all())

        return await self._db.run(txn)
