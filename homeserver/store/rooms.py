"""The rooms index, room aliases and the public room directory.

Tables ``rooms`` (every room this server takes part in), ``room_aliases`` (our local
aliases) and ``room_stats`` (the summary the room layer keeps up to date from current
state, so the directory can be listed and searched without opening room databases).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import JsonText, insert_if_absent, metadata, upsert

rooms = sa.Table(
    "rooms", metadata,
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("room_version", sa.Text, nullable=False),
    sa.Column("creator", sa.Text, nullable=True),
    # published in the public room directory
    sa.Column("is_public", sa.Boolean, nullable=False),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
)

room_aliases = sa.Table(
    "room_aliases", metadata,
    sa.Column("room_alias", sa.Text, primary_key=True),
    sa.Column("room_id", sa.Text, nullable=False, index=True),
    sa.Column("creator", sa.Text, nullable=True),
    sa.Column("servers", JsonText, nullable=False),
)

room_stats = sa.Table(
    "room_stats", metadata,
    sa.Column("room_id", sa.Text, sa.ForeignKey("rooms.room_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("topic", sa.Text, nullable=True),
    sa.Column("canonical_alias", sa.Text, nullable=True),
    sa.Column("avatar", sa.Text, nullable=True),
    sa.Column("join_rule", sa.Text, nullable=True),
    sa.Column("guest_access", sa.Text, nullable=True),
    sa.Column("world_readable", sa.Boolean, nullable=False),
    sa.Column("room_type", sa.Text, nullable=True),
    sa.Column("joined_members", sa.Integer, nullable=False),
)

#: the columns of room_stats the room layer may set
STATS_FIELDS = frozenset(c.name for c in room_stats.c if c.name != "room_id")

_rm, _al, _st = rooms.c, room_aliases.c, room_stats.c


class InvalidPaginationToken(ValueError):
    """A ``since`` token this server did not hand out."""


@dataclasses.dataclass(frozen=True)
class RoomInfo:
    room_id: str
    room_version: str
    creator: str | None
    is_public: bool
    created_ts: int


@dataclasses.dataclass(frozen=True)
class AliasInfo:
    room_id: str
    servers: list[str]
    creator: str | None


@dataclasses.dataclass(frozen=True)
class RoomSummary:
    """One room of the directory (spec: ``PublishedRoomsChunk``)."""
    room_id: str
    name: str | None
    topic: str | None
    canonical_alias: str | None
    avatar_url: str | None
    join_rule: str | None
    guest_can_join: bool
    world_readable: bool
    room_type: str | None
    num_joined_members: int

    def as_chunk(self) -> dict[str, Any]:
        """The JSON object the spec's ``/publicRooms`` returns for this room."""
        chunk = dataclasses.asdict(self)
        return {k: v for k, v in chunk.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class PublicRoomsPage:
    chunk: list[RoomSummary]
    next_batch: str | None
    prev_batch: str | None
    total_room_count_estimate: int


_JOINED = sa.func.coalesce(_st.joined_members, 0)


def _summary(row: sa.Row) -> RoomSummary:
    return RoomSummary(
        room_id=row.room_id, name=row.name, topic=row.topic,
        canonical_alias=row.canonical_alias, avatar_url=row.avatar,
        join_rule=row.join_rule, guest_can_join=row.guest_access == "can_join",
        world_readable=bool(row.world_readable), room_type=row.room_type,
        num_joined_members=int(row.joined or 0))


def _token(direction: str, row: RoomSummary) -> str:
    return f"{direction}{row.num_joined_members}:{row.room_id}"


def _parse_token(token: str) -> tuple[str, int, str]:
    try:
        direction, rest = token[0], token[1:]
        joined, room_id = rest.split(":", 1)
        if direction not in "np" or not room_id:
            raise ValueError(token)
        return direction, int(joined), room_id
    except (ValueError, IndexError):
        raise InvalidPaginationToken(token) from None


class Rooms:
    """Rooms index, aliases and directory."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- rooms index ------------------------------------------------------------------
    async def register_room(self, room_id: str, room_version: str, creator: str | None,
                            is_public: bool = False) -> bool:
        """Add the room to the index (idempotent); True if it was new."""
        values = dict(room_id=room_id, room_version=room_version, creator=creator,
                      is_public=is_public, created_ts=self._db.now_ms())
        return await self._db.run(
            lambda conn: insert_if_absent(conn, rooms, values, ["room_id"]))

    async def get_room(self, room_id: str) -> RoomInfo | None:
        """The room's index entry, or None if this server does not know it."""
        def txn(conn: Connection) -> RoomInfo | None:
            row = conn.execute(sa.select(rooms).where(_rm.room_id == room_id)).first()
            return None if row is None else RoomInfo(
                row.room_id, row.room_version, row.creator, row.is_public,
                row.created_ts)

        return await self._db.run(txn)

    async def set_room_public(self, room_id: str, is_public: bool) -> bool:
        """Publish or unpublish the room in the directory; False if unknown room."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.update(rooms).where(_rm.room_id == room_id)
                                .values(is_public=is_public)).rowcount > 0

        return await self._db.run(txn)

    async def update_room_stats(self, room_id: str, **fields: Any) -> None:
        """Set some of :data:`STATS_FIELDS` for a registered room (the room layer)."""
        unknown = set(fields) - STATS_FIELDS
        if unknown:
            raise TypeError(f"unknown room_stats fields: {sorted(unknown)}")

        def txn(conn: Connection) -> None:
            # the defaults only apply to a first insert; updates touch ``fields`` only
            values = dict(world_readable=False, joined_members=0)
            values.update(fields, room_id=room_id)
            upsert(conn, room_stats, values, ["room_id"], update=list(fields) or ())

        await self._db.run(txn)

    async def get_room_summary(self, room_id: str) -> RoomSummary | None:
        """The room's directory summary (whether or not it is published)."""
        def txn(conn: Connection) -> RoomSummary | None:
            row = conn.execute(self._summary_select()
                               .where(_rm.room_id == room_id)).first()
            return None if row is None else _summary(row)

        return await self._db.run(txn)

    # -- aliases ----------------------------------------------------------------------
    async def create_alias(self, room_alias: str, room_id: str, servers: Sequence[str],
                           creator: str | None) -> bool:
        """Map a local alias to a room; False if the alias is taken."""
        values = dict(room_alias=room_alias, room_id=room_id, creator=creator,
                      servers=list(servers))
        return await self._db.run(
            lambda conn: insert_if_absent(conn, room_aliases, values, ["room_alias"]))

    async def get_alias(self, room_alias: str) -> AliasInfo | None:
        """Where a local alias points, or None."""
        def txn(conn: Connection) -> AliasInfo | None:
            row = conn.execute(sa.select(room_aliases)
                               .where(_al.room_alias == room_alias)).first()
            return None if row is None else AliasInfo(row.room_id, list(row.servers),
                                                      row.creator)

        return await self._db.run(txn)

    async def delete_alias(self, room_alias: str) -> bool:
        """Remove a local alias; False if it did not exist."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.delete(room_aliases)
                                .where(_al.room_alias == room_alias)).rowcount > 0

        return await self._db.run(txn)

    async def get_aliases_for_room(self, room_id: str) -> list[str]:
        """The room's local aliases, sorted."""
        def txn(conn: Connection) -> list[str]:
            return list(conn.execute(sa.select(_al.room_alias)
                                     .where(_al.room_id == room_id)
                                     .order_by(_al.room_alias)).scalars())

        return await self._db.run(txn)

    # -- directory --------------------------------------------------------------------
    @staticmethod
    def _summary_select() -> sa.Select:
        return (sa.select(_rm.room_id, _st.name, _st.topic, _st.canonical_alias,
                          _st.avatar, _st.join_rule, _st.guest_access,
                          _st.world_readable, _st.room_type, _JOINED.label("joined"))
                .select_from(rooms.outerjoin(room_stats, _st.room_id == _rm.room_id)))

    async def list_public_rooms(self, *, limit: int | None = None,
                                since: str | None = None,
                                search_term: str | None = None,
                                room_types: Collection[str | None] | None = None,
                                ) -> PublicRoomsPage:
        """A page of published rooms, biggest first (spec: ``GET/POST /publicRooms``).

        ``search_term`` matches name, topic or canonical alias case-insensitively;
        ``room_types`` may contain None for rooms without a type. ``since`` is a
        ``next_batch``/``prev_batch`` from an earlier page (raises
        :class:`InvalidPaginationToken` otherwise).
        """
        cursor = _parse_token(since) if since else None
        if limit is not None and limit < 0:
            raise ValueError("limit must not be negative")

        def txn(conn: Connection) -> PublicRoomsPage:
            base = self._summary_select().where(_rm.is_public == sa.true())
            if search_term:
                term = search_term.lower()
                base = base.where(sa.or_(*(
                    sa.func.lower(col).contains(term, autoescape=True)
                    for col in (_st.name, _st.topic, _st.canonical_alias))))
            if room_types is not None:
                named = [t for t in room_types if t is not None]
                conds = [_st.room_type.in_(named)]
                if None in room_types:
                    conds.append(_st.room_type.is_(None))
                base = base.where(sa.or_(*conds))
            total = conn.execute(sa.select(sa.func.count())
                                 .select_from(base.subquery())).scalar_one()

            stmt, backwards = base, False
            if cursor is not None:
                direction, joined, room_id = cursor
                backwards = direction == "p"
                if backwards:
                    stmt = stmt.where(sa.or_(_JOINED > joined, sa.and_(
                        _JOINED == joined, _rm.room_id < room_id)))
                else:
                    stmt = stmt.where(sa.or_(_JOINED < joined, sa.and_(
                        _JOINED == joined, _rm.room_id > room_id)))
            if backwards:
                stmt = stmt.order_by(_JOINED.asc(), _rm.room_id.desc())
            else:
                stmt = stmt.order_by(_JOINED.desc(), _rm.room_id.asc())
            if limit is not None:
                stmt = stmt.limit(limit + 1)
            rows = [_summary(r) for r in conn.execute(stmt)]
            more = limit is not None and len(rows) > limit
            rows = rows[:limit] if limit is not None else rows
            if backwards:
                rows.reverse()
            if not rows:
                return PublicRoomsPage([], None, None, total)
            next_batch = prev_batch = None
            if backwards:
                next_batch = _token("n", rows[-1])
                prev_batch = _token("p", rows[0]) if more else None
            else:
                next_batch = _token("n", rows[-1]) if more else None
                prev_batch = _token("p", rows[0]) if cursor is not None else None
            return PublicRoomsPage(rows, next_batch, prev_batch, total)

        return await self._db.run(txn)
