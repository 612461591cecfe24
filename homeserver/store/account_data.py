"""Account data (global and per room) and room tags, on the account-data stream.

Tables ``account_data`` (``room_id`` is ``''`` for global data, so the primary key
holds on both dialects), ``room_tags`` and ``room_tags_revisions`` (the stream
position of each room's last tag change, so /sync can send changed tags only).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import positions
from homeserver.store.database import Database
from homeserver.store.sql import JsonText, metadata, upsert

GLOBAL = ""

account_data = sa.Table(
    "account_data", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("data_type", sa.Text, primary_key=True),
    sa.Column("content", JsonText, nullable=False),
    sa.Column("stream_pos", sa.BigInteger, nullable=False),
    sa.Index(None, "user_id", "stream_pos"),
)

room_tags = sa.Table(
    "room_tags", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("tag", sa.Text, primary_key=True),
    sa.Column("content", JsonText, nullable=False),
)

room_tags_revisions = sa.Table(
    "room_tags_revisions", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("stream_pos", sa.BigInteger, nullable=False),
)

_ad, _tg, _tr = account_data.c, room_tags.c, room_tags_revisions.c


@dataclasses.dataclass(frozen=True)
class AccountDataSnapshot:
    """``global_data``: type → content; ``rooms``: room_id → type → content."""
    global_data: dict[str, Any]
    rooms: dict[str, dict[str, Any]]


def _snapshot(rows: Any) -> AccountDataSnapshot:
    snap = AccountDataSnapshot({}, {})
    for row in rows:
        if row.room_id == GLOBAL:
            snap.global_data[row.data_type] = row.content
        else:
            snap.rooms.setdefault(row.room_id, {})[row.data_type] = row.content
    return snap


def _bump_tags(conn: Connection, user_id: str, room_id: str) -> int:
    pos = positions.next_position(conn, positions.ACCOUNT_DATA)
    upsert(conn, room_tags_revisions,
           dict(user_id=user_id, room_id=room_id, stream_pos=pos),
           ["user_id", "room_id"])
    return pos


class AccountData:
    """A user's account data and room tags."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- account data -----------------------------------------------------------------
    async def set_account_data(self, user_id: str, data_type: str,
                               content: Mapping[str, Any],
                               room_id: str | None = None) -> int:
        """Store (replace) one account data item; returns its stream position."""
        values = dict(user_id=user_id, room_id=room_id or GLOBAL, data_type=data_type,
                      content=dict(content))

        def txn(conn: Connection) -> int:
            pos = positions.next_position(conn, positions.ACCOUNT_DATA)
            upsert(conn, account_data, dict(values, stream_pos=pos),
                   ["user_id", "room_id", "data_type"])
            return pos

        return await self._db.run(txn)

    async def get_account_data(self, user_id: str, data_type: str,
                               room_id: str | None = None) -> dict[str, Any] | None:
        """One item's content, or None."""
        def txn(conn: Connection) -> dict[str, Any] | None:
            return conn.execute(sa.select(_ad.content).where(
                _ad.user_id == user_id, _ad.room_id == (room_id or GLOBAL),
                _ad.data_type == data_type)).scalar()

        return await self._db.run(txn)

    async def get_all_account_data(self, user_id: str, since: int = 0,
                                   upto: int | None = None) -> AccountDataSnapshot:
        """The user's account data changed in (since, upto] (everything by default)."""
        def txn(conn: Connection) -> AccountDataSnapshot:
            stmt = sa.select(_ad.room_id, _ad.data_type, _ad.content).where(
                _ad.user_id == user_id, _ad.stream_pos > since)
            if upto is not None:
                stmt = stmt.where(_ad.stream_pos <= upto)
            return _snapshot(conn.execute(stmt))

        return await self._db.run(txn)

    async def users_with_account_data_changes(self, since: int,
                                              upto: int | None = None) -> set[str]:
        """Users whose account data or tags changed in (since, upto] (wakes /sync)."""
        def txn(conn: Connection) -> set[str]:
            end = positions.read_position(conn, positions.ACCOUNT_DATA) \
                if upto is None else upto
            a = sa.select(_ad.user_id).where(_ad.stream_pos > since,
                                             _ad.stream_pos <= end)
            t = sa.select(_tr.user_id).where(_tr.stream_pos > since,
                                             _tr.stream_pos <= end)
            return set(conn.execute(sa.union(a, t)).scalars())

        return await self._db.run(txn)

    # -- tags -------------------------------------------------------------------------
    async def add_tag(self, user_id: str, room_id: str, tag: str,
                      content: Mapping[str, Any]) -> int:
        """Set a room tag (e.g. ``{"order": 0.5}``); returns the stream position."""
        def txn(conn: Connection) -> int:
            pos = _bump_tags(conn, user_id, room_id)
            upsert(conn, room_tags, dict(user_id=user_id, room_id=room_id, tag=tag,
                                         content=dict(content)),
                   ["user_id", "room_id", "tag"])
            return pos

        return await self._db.run(txn)

    async def remove_tag(self, user_id: str, room_id: str, tag: str) -> int:
        """Remove a room tag (absent is fine); returns the stream position."""
        def txn(conn: Connection) -> int:
            pos = _bump_tags(conn, user_id, room_id)
            conn.execute(sa.delete(room_tags).where(
                _tg.user_id == user_id, _tg.room_id == room_id, _tg.tag == tag))
            return pos

        return await self._db.run(txn)

    async def get_tags_for_room(self, user_id: str, room_id: str) -> dict[str, Any]:
        """tag → content for one room (the ``m.tag`` event's ``tags``)."""
        def txn(conn: Connection) -> dict[str, Any]:
            rows = conn.execute(sa.select(_tg.tag, _tg.content).where(
                _tg.user_id == user_id, _tg.room_id == room_id))
            return {r.tag: r.content for r in rows}

        return await self._db.run(txn)

    async def get_tags(self, user_id: str, since: int = 0,
                       upto: int | None = None) -> dict[str, dict[str, Any]]:
        """room_id → tag → content for rooms whose tags changed in (since, upto].

        A room whose tags were all removed maps to ``{}`` (so /sync can clear them).
        """
        def txn(conn: Connection) -> dict[str, dict[str, Any]]:
            changed = sa.select(_tr.room_id).where(_tr.user_id == user_id,
                                                   _tr.stream_pos > since)
            if upto is not None:
                changed = changed.where(_tr.stream_pos <= upto)
            room_ids = list(conn.execute(changed).scalars())
            result: dict[str, dict[str, Any]] = {r: {} for r in room_ids}
            if room_ids:
                rows = conn.execute(sa.select(_tg.room_id, _tg.tag, _tg.content).where(
                    _tg.user_id == user_id, _tg.room_id.in_(room_ids)))
                for r in rows:
                    result[r.room_id][r.tag] = r.content
            return result

        return await self._db.run(txn)
