"""Single-entry reads of the user directory table (``store.user_directory`` owns it
and its search): a remote user's last known profile, for ``GET /profile``."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.user_directory import DirectoryUser, user_directory


class DirectoryEntries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str) -> DirectoryUser | None:
        """The user's directory entry, or None."""
        def txn(conn: Connection) -> DirectoryUser | None:
            row = conn.execute(sa.select(user_directory).where(
                user_directory.c.user_id == user_id)).first()
            return None if row is None else DirectoryUser(row.user_id, row.displayname,
                                                          row.avatar_url)

        return await self._db.run(txn)
