"""Users who deactivated their account with ``erase: true`` (spec: Client-Server API,
``POST /account/deactivate``: the server should "erase all of the user's personal
data … messages sent by the user should no longer be visible to users who join the
room later").

Table ``erased_users``: one row per erased user. The set is small and read on every
filtered timeline, so it is loaded once per process and kept in memory (the same
single-writer assumption as the other caches over the global DB, README
"Architecture").
"""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import metadata

erased_users = sa.Table(
    "erased_users", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
)


class ErasedUsers:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._erased: frozenset[str] | None = None

    async def mark_erased(self, user_id: str) -> None:
        """Record ``user_id`` as erased (idempotent)."""
        def txn(conn: Connection) -> None:
            exists = conn.execute(sa.select(erased_users.c.user_id).where(
                erased_users.c.user_id == user_id)).first()
            if exists is None:
                conn.execute(sa.insert(erased_users).values(user_id=user_id))

        await self._db.run(txn)
        self._erased = (await self._load()) | {user_id}

    async def erased_among(self, user_ids: Iterable[str]) -> frozenset[str]:
        """Those of ``user_ids`` who are erased."""
        if self._erased is None:
            self._erased = await self._load()
        if not self._erased:
            return frozenset()
        return self._erased.intersection(user_ids)

    async def _load(self) -> frozenset[str]:
        def txn(conn: Connection) -> frozenset[str]:
            return frozenset(conn.execute(sa.select(erased_users.c.user_id)).scalars())

        return await self._db.run(txn)
