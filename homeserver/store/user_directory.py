"""The user directory (spec: ``POST /user_directory/search``).

Table ``user_directory``: the searchable profile of each user the server knows. Who a
searcher may find comes from the memberships index: users sharing a joined room with
them, or joined to a public room (published, ``join_rule`` public, or world
readable); with ``search_all_users`` everyone in the table.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.rooms import room_stats, rooms
from homeserver.store.sql import metadata, upsert
from homeserver.store.streams import room_memberships

user_directory = sa.Table(
    "user_directory", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("displayname", sa.Text, nullable=True),
    sa.Column("avatar_url", sa.Text, nullable=True),
)

_u, _m = user_directory.c, room_memberships.c


@dataclasses.dataclass(frozen=True)
class DirectoryUser:
    user_id: str
    display_name: str | None
    avatar_url: str | None


def _visible_to(searcher: str) -> sa.ColumnElement[bool]:
    mine = sa.select(_m.room_id).where(_m.user_id == searcher, _m.membership == "join")
    other = room_memberships.alias("other")
    sharing = sa.select(other.c.user_id).where(other.c.room_id.in_(mine),
                                               other.c.membership == "join")
    public_rooms = (sa.select(rooms.c.room_id)
                    .select_from(rooms.outerjoin(
                        room_stats, room_stats.c.room_id == rooms.c.room_id))
                    .where(sa.or_(rooms.c.is_public == sa.true(),
                                  room_stats.c.join_rule == "public",
                                  room_stats.c.world_readable == sa.true())))
    in_public = sa.select(_m.user_id).where(_m.room_id.in_(public_rooms),
                                            _m.membership == "join")
    return sa.or_(_u.user_id.in_(sharing), _u.user_id.in_(in_public))


class UserDirectory:
    """Searchable user profiles."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def update_user(self, user_id: str, displayname: str | None,
                          avatar_url: str | None) -> None:
        """Add or refresh a user's directory entry (on registration, profile change,
        or when a remote user is first seen in a room)."""
        def txn(conn: Connection) -> None:
            upsert(conn, user_directory, dict(user_id=user_id, displayname=displayname,
                                              avatar_url=avatar_url), ["user_id"])

        await self._db.run(txn)

    async def remove_user(self, user_id: str) -> bool:
        """Drop a user from the directory (deactivation); False if absent."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.delete(user_directory)
                                .where(_u.user_id == user_id)).rowcount > 0

        return await self._db.run(txn)

    async def search(self, searcher: str, term: str, limit: int = 10, *,
                     search_all_users: bool = False,
                     ) -> tuple[list[DirectoryUser], bool]:
        """Users matching every word of ``term`` in their ID or displayname.

        Returns ``(results, limited)``. Prefix matches rank first.
        """
        words = term.lower().split()
        if not words or limit <= 0:
            return [], False
        name = sa.func.lower(sa.func.coalesce(_u.displayname, ""))
        uid = sa.func.lower(_u.user_id)

        def txn(conn: Connection) -> tuple[list[DirectoryUser], bool]:
            stmt = sa.select(_u.user_id, _u.displayname, _u.avatar_url)
            for w in words:
                stmt = stmt.where(sa.or_(name.contains(w, autoescape=True),
                                         uid.contains(w, autoescape=True)))
            if not search_all_users:
                stmt = stmt.where(_visible_to(searcher))
            first = words[0]
            rank = sa.case((sa.or_(name.startswith(first, autoescape=True),
                                   uid.startswith("@" + first, autoescape=True)), 0),
                           else_=1)
            stmt = stmt.order_by(rank, name, _u.user_id).limit(limit + 1)
            rows = list(conn.execute(stmt))
            results = [DirectoryUser(r.user_id, r.displayname, r.avatar_url)
                       for r in rows[:limit]]
            return results, len(rows) > limit

        return await self._db.run(txn)
