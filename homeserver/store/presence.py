"""User presence on the presence stream.

Table ``presence``: one row per user with the latest state. Timers (idle after
inactivity, offline after the last sync) are the presence handler's business; the
store only remembers what it was told.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import positions
from homeserver.store.database import Database
from homeserver.store.sql import metadata, upsert

presence = sa.Table(
    "presence", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("last_active_ts", sa.BigInteger, nullable=True),
    sa.Column("status_msg", sa.Text, nullable=True),
    sa.Column("currently_active", sa.Boolean, nullable=False),
    sa.Column("stream_pos", sa.BigInteger, nullable=False, index=True),
)

_c = presence.c

STATES = frozenset({"online", "offline", "unavailable", "busy"})


@dataclasses.dataclass(frozen=True)
class PresenceState:
    user_id: str
    state: str
    last_active_ts: int | None
    status_msg: str | None
    currently_active: bool
    stream_pos: int


def _state(row: sa.Row) -> PresenceState:
    return PresenceState(row.user_id, row.state, row.last_active_ts, row.status_msg,
                         row.currently_active, row.stream_pos)


class Presence:
    """The latest presence of each user."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def set_presence(self, user_id: str, state: str, *,
                           status_msg: str | None = None,
                           last_active_ts: int | None = None,
                           currently_active: bool = False) -> int:
        """Replace the user's presence; returns its stream position."""
        if state not in STATES:
            raise ValueError(f"unknown presence state {state!r}")
        values = dict(user_id=user_id, state=state, status_msg=status_msg,
                      last_active_ts=last_active_ts, currently_active=currently_active)

        def txn(conn: Connection) -> int:
            pos = positions.next_position(conn, positions.PRESENCE)
            upsert(conn, presence, dict(values, stream_pos=pos), ["user_id"])
            return pos

        return await self._db.run(txn)

    async def get_presence(self, user_id: str) -> PresenceState | None:
        """The user's presence, or None if never set."""
        def txn(conn: Connection) -> PresenceState | None:
            row = conn.execute(sa.select(presence).where(_c.user_id == user_id)).first()
            return None if row is None else _state(row)

        return await self._db.run(txn)

    async def get_presence_for_users(self, user_ids: Iterable[str],
                                     ) -> dict[str, PresenceState]:
        """user_id → presence for those of ``user_ids`` that have one."""
        wanted = list(set(user_ids))
        if not wanted:
            return {}

        def txn(conn: Connection) -> dict[str, PresenceState]:
            rows = conn.execute(sa.select(presence).where(_c.user_id.in_(wanted)))
            return {r.user_id: _state(r) for r in rows}

        return await self._db.run(txn)

    async def get_presence_changes(self, since: int, upto: int | None = None, *,
                                   user_ids: Iterable[str] | None = None,
                                   ) -> list[PresenceState]:
        """Presence written in (since, upto], optionally only for ``user_ids``."""
        wanted = None if user_ids is None else list(set(user_ids))
        if wanted == []:
            return []

        def txn(conn: Connection) -> list[PresenceState]:
            end = positions.read_position(conn, positions.PRESENCE) \
                if upto is None else upto
            stmt = sa.select(presence).where(_c.stream_pos > since,
                                             _c.stream_pos <= end)
            if wanted is not None:
                stmt = stmt.where(_c.user_id.in_(wanted))
            return [_state(r) for r in conn.execute(stmt.order_by(_c.stream_pos))]

        return await self._db.run(txn)
