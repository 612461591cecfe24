"""Memberships of local users in rooms this server does not hold (yet).

Spec: server-server API "Inviting to a room" (an invite to a room none of our users is
in arrives by ``PUT /v2/invite`` alone) and "Leaving Rooms (Rejecting Invites)" (the
rejection is made on the inviting server, without joining). Such a room has no
database here, so the invite (or the rejecting leave, or a knock) is kept in the
global DB, table ``remote_memberships``: the event as sent over federation and the
stripped state the invitee is shown.

The row's ``id`` also names the membership on the room stream: it is announced there
with ``room_seq = -id`` (a room actor's own sequence numbers are positive, so they
never collide), which puts it in the memberships index and in /sync like any other
membership change; a later join through send_join overwrites the index row.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import metadata

remote_memberships = sa.Table(
    "remote_memberships", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("room_id", sa.Text, nullable=False),
    sa.Column("membership", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("room_version", sa.Text, nullable=False),
    sa.Column("event_json", sa.Text, nullable=False),
    sa.Column("stripped_state_json", sa.Text, nullable=False),
    sa.Index(None, "user_id", "room_id"),
    sa.Index(None, "event_id"),
    sqlite_autoincrement=True,
)
_c = remote_memberships.c


@dataclasses.dataclass(frozen=True)
class RemoteMembership:
    id: int
    user_id: str
    room_id: str
    membership: str
    event_id: str
    room_version: str
    event: dict[str, Any]
    stripped_state: list[dict[str, Any]]


def _row(row: sa.Row) -> RemoteMembership:
    return RemoteMembership(row.id, row.user_id, row.room_id, row.membership, row.event_id,
                            row.room_version, json.loads(row.event_json),
                            json.loads(row.stripped_state_json))


class RemoteMemberships:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, user_id: str, room_id: str, membership: str, event_id: str,
                     room_version: str, event: dict[str, Any],
                     stripped_state: Sequence[dict[str, Any]]) -> int:
        """Add a membership event of ``user_id``; returns its id (see module doc)."""
        def txn(conn: Connection) -> int:
            return conn.execute(sa.insert(remote_memberships).values(
                user_id=user_id, room_id=room_id, membership=membership, event_id=event_id,
                room_version=room_version, event_json=json.dumps(event),
                stripped_state_json=json.dumps(list(stripped_state)),
            ).returning(_c.id)).scalar_one()

        return await self._db.run(txn)

    async def latest(self, user_id: str, room_id: str) -> RemoteMembership | None:
        """The user's latest recorded membership of the room, if any."""
        def txn(conn: Connection) -> RemoteMembership | None:
            row = conn.execute(sa.select(remote_memberships).where(
                _c.user_id == user_id, _c.room_id == room_id).order_by(
                _c.id.desc()).limit(1)).first()
            return None if row is None else _row(row)

        return await self._db.run(txn)

    async def by_event_id(self, event_id: str) -> RemoteMembership | None:
        def txn(conn: Connection) -> RemoteMembership | None:
            row = conn.execute(sa.select(remote_memberships).where(
                _c.event_id == event_id).order_by(_c.id.desc()).limit(1)).first()
            return None if row is None else _row(row)

        return await self._db.run(txn)

    async def stripped_state(self, room_id: str, event_id: str) -> list[dict] | None:
        """For /sync ``rooms.invite``: the stripped state kept with an invite (or knock)
        to a room we do not hold; None if ``event_id`` is not one of ours."""
        found = await self.by_event_id(event_id)
        if found is None or found.room_id != room_id:
            return None
        return found.stripped_state
