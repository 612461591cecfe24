"""Users' push rules (spec: Client-Server API, "Push Rules: API").

Table ``user_push_rules``: per user, their changes to the server-default rules as one
JSON document (see ``homeserver.push.rulesets``). Every change also rewrites the
user's ``m.push_rules`` global account data in the same transaction, so /sync tells
clients (spec: "Push Rules: Events") through the ordinary account-data stream.
"""

from __future__ import annotations

import collections
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import positions
from homeserver.store.account_data import GLOBAL, account_data
from homeserver.store.database import Database
from homeserver.store.sql import JsonText, metadata, upsert

PUSH_RULES_TYPE = "m.push_rules"

user_push_rules = sa.Table(
    "user_push_rules", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("changes", JsonText, nullable=False),
)

_c = user_push_rules.c
_CACHE_SIZE = 50_000


class PushRules:
    """Each user's rule changes, cached: every event is evaluated against the rules of
    each local member, and rules change only through :meth:`set_changes` here (one
    writer process, as the other caches; DESIGN.md §8)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: collections.OrderedDict[str, dict[str, Any] | None] = \
            collections.OrderedDict()
        self._generation = 0

    async def get_changes(self, user_id: str) -> dict[str, Any] | None:
        """The user's changes, or None if they never made any."""
        if user_id in self._cache:
            self._cache.move_to_end(user_id)
            return self._cache[user_id]
        found = await self.get_many([user_id])
        return found[user_id]

    async def get_many(self, user_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        """user → changes (None: none), reading the uncached ones in one round trip."""
        result = {u: self._cache[u] for u in user_ids if u in self._cache}
        missing = sorted(set(user_ids) - result.keys())
        if missing:
            def txn(conn: Connection) -> dict[str, Any]:
                rows = {}
                for start in range(0, len(missing), 500):
                    rows.update(conn.execute(sa.select(_c.user_id, _c.changes).where(
                        _c.user_id.in_(missing[start:start + 500]))).all())
                return rows

            generation = self._generation
            rows = await self._db.run(txn)
            for user_id in missing:
                result[user_id] = rows.get(user_id)
                if generation == self._generation:
                    self._cache[user_id] = rows.get(user_id)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    async def set_changes(self, user_id: str, changes: Mapping[str, Any],
                          account_data_content: Mapping[str, Any]) -> int:
        """Store the user's changes and, atomically, their ``m.push_rules`` account
        data; returns the account-data stream position."""
        def txn(conn: Connection) -> int:
            upsert(conn, user_push_rules, dict(user_id=user_id, changes=dict(changes)),
                   ["user_id"])
            pos = positions.next_position(conn, positions.ACCOUNT_DATA)
            upsert(conn, account_data, dict(user_id=user_id, room_id=GLOBAL,
                                            data_type=PUSH_RULES_TYPE,
                                            content=dict(account_data_content),
                                            stream_pos=pos),
                   ["user_id", "room_id", "data_type"])
            return pos

        try:
            return await self._db.run(txn)
        finally:
            self._generation += 1
            self._cache.pop(user_id, None)

    async def delete_user(self, user_id: str) -> None:
        """Forget the user's changes and their ``m.push_rules`` account data (account
        deactivation: the user is back to the defaults, as Synapse's
        ``purge_account_data_for_user``)."""
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(user_push_rules).where(_c.user_id == user_id))
            conn.execute(sa.delete(account_data).where(
                account_data.c.user_id == user_id, account_data.c.room_id == GLOBAL,
                account_data.c.data_type == PUSH_RULES_TYPE))

        try:
            await self._db.run(txn)
        finally:
            self._generation += 1
            self._cache.pop(user_id, None)
