"""Sync filters uploaded by users (spec: ``POST /user/{userId}/filter``).

Table ``user_filters``. Filter IDs are small per-user integers, returned as strings.
Uploading the same filter twice returns the same ID (clients often re-upload on
every start).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from homeserver.store.database import Database
from homeserver.store.sql import canonical_json_text, metadata

user_filters = sa.Table(
    "user_filters", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("filter_id", sa.BigInteger, primary_key=True),
    # canonical JSON text, so an identical upload can be found by equality
    sa.Column("filter_json", sa.Text, nullable=False),
)

_c = user_filters.c


class Filters:
    """Per-user stored filters."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_filter(self, user_id: str, filter_json: Mapping[str, Any]) -> str:
        """Store a filter; returns its ID (an existing one if identical)."""
        text = canonical_json_text(filter_json)

        def txn(conn: Connection) -> str:
            existing = conn.execute(sa.select(_c.filter_id).where(
                _c.user_id == user_id, _c.filter_json == text)).scalar()
            if existing is not None:
                return str(existing)
            next_id = conn.execute(sa.select(sa.func.coalesce(sa.func.max(_c.filter_id),
                                                              -1) + 1)
                                   .where(_c.user_id == user_id)).scalar_one()
            conn.execute(sa.insert(user_filters).values(
                user_id=user_id, filter_id=next_id, filter_json=text))
            return str(next_id)

        # two concurrent uploads (PostgreSQL, several threads) may pick the same ID
        for attempt in range(5):
            try:
                return await self._db.run(txn)
            except IntegrityError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    async def get_filter(self, user_id: str, filter_id: str) -> dict[str, Any] | None:
        """The stored filter, or None (also for an ID that is not a number)."""
        try:
            numeric = int(filter_id)
        except (TypeError, ValueError):
            return None
        if numeric < 0 or str(numeric) != filter_id:
            return None

        def txn(conn: Connection) -> dict[str, Any] | None:
            text = conn.execute(sa.select(_c.filter_json).where(
                _c.user_id == user_id, _c.filter_id == numeric)).scalar()
            return None if text is None else json.loads(text)

        return await self._db.run(txn)
