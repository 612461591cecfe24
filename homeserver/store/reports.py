"""Content reports (spec: Client-Server API, "Reporting content").

Table ``event_reports``: one row per report a user made of an event, a room or a
user, for the server's administrators to review. ``event_id`` is set for event
reports, ``target_user_id`` for user reports; a room report has neither.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import Position, metadata

event_reports = sa.Table(
    "event_reports", metadata,
    sa.Column("id", Position, primary_key=True, autoincrement=True),
    sa.Column("received_ts", sa.BigInteger, nullable=False),
    sa.Column("reporter", sa.Text, nullable=False),
    sa.Column("room_id", sa.Text, nullable=True),
    sa.Column("event_id", sa.Text, nullable=True),
    sa.Column("target_user_id", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("score", sa.Integer, nullable=True),
    sa.Index(None, "room_id", "event_id"),
    sqlite_autoincrement=True,
)

_r = event_reports.c


@dataclasses.dataclass(frozen=True)
class Report:
    id: int
    received_ts: int
    reporter: str
    room_id: str | None
    event_id: str | None
    target_user_id: str | None
    reason: str | None
    score: int | None


class Reports:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_report(self, reporter: str, *, room_id: str | None = None,
                         event_id: str | None = None, target_user_id: str | None = None,
                         reason: str | None = None, score: int | None = None) -> int:
        """Store a report; returns its id."""
        values = dict(received_ts=self._db.now_ms(), reporter=reporter, room_id=room_id,
                      event_id=event_id, target_user_id=target_user_id, reason=reason,
                      score=score)

        def txn(conn: Connection) -> int:
            return conn.execute(sa.insert(event_reports).values(**values)
                                .returning(_r.id)).scalar_one()

        return await self._db.run(txn)

    async def list_reports(self, *, room_id: str | None = None, limit: int = 100,
                           before_id: int | None = None) -> list[Report]:
        """Reports newest first (optionally of one room), for moderation tools."""
        def txn(conn: Connection) -> list[Report]:
            stmt = sa.select(event_reports)
            if room_id is not None:
                stmt = stmt.where(_r.room_id == room_id)
            if before_id is not None:
                stmt = stmt.where(_r.id < before_id)
            rows = conn.execute(stmt.order_by(_r.id.desc()).limit(limit))
            return [Report(**row._mapping) for row in rows]

        return await self._db.run(txn)
