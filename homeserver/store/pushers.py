"""Pushers (spec: Client-Server API, "Push Notifications", GET /pushers and
POST /pushers/set).

Table ``pushers``: one row per (user, app_id, pushkey), with what the client gave
(``data`` holds the gateway URL and, optionally, ``format``) and the time it was
last set (``pushkey_ts``, sent to the gateway as the Push Gateway API asks).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import JsonText, metadata, upsert

pushers = sa.Table(
    "pushers", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("app_id", sa.Text, primary_key=True),
    sa.Column("pushkey", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("app_display_name", sa.Text, nullable=False),
    sa.Column("device_display_name", sa.Text, nullable=False),
    sa.Column("profile_tag", sa.Text, nullable=True),
    sa.Column("lang", sa.Text, nullable=False),
    sa.Column("data", JsonText, nullable=False),
    sa.Column("pushkey_ts", sa.BigInteger, nullable=False),
    sa.Index(None, "app_id", "pushkey"),
)

_c = pushers.c


@dataclasses.dataclass(frozen=True)
class Pusher:
    user_id: str
    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str | None
    lang: str
    data: dict[str, Any]
    pushkey_ts: int

    def to_json(self) -> dict[str, Any]:
        """As ``GET /pushers`` shows it."""
        body: dict[str, Any] = {
            "pushkey": self.pushkey, "kind": self.kind, "app_id": self.app_id,
            "app_display_name": self.app_display_name,
            "device_display_name": self.device_display_name, "lang": self.lang,
            "data": self.data}
        if self.profile_tag is not None:
            body["profile_tag"] = self.profile_tag
        return body


def _pusher(row: Any) -> Pusher:
    return Pusher(row.user_id, row.app_id, row.pushkey, row.kind, row.app_display_name,
                  row.device_display_name, row.profile_tag, row.lang, row.data,
                  row.pushkey_ts)


class Pushers:
    def __init__(self, db: Database) -> None:
        self._db = db
        #: users with at least one pusher, read once: every notifying event asks
        #: about its recipients, and most have none (one writer process, DESIGN.md §8)
        self._users: set[str] | None = None
        self._generation = 0

    async def _users_with_pushers(self) -> set[str]:
        if self._users is None:
            def txn(conn: Connection) -> set[str]:
                return set(conn.execute(sa.select(_c.user_id).distinct()).scalars())

            generation = self._generation
            loaded = await self._db.run(txn)
            if generation != self._generation:
                return loaded  # a pusher changed meanwhile: do not keep this read
            self._users = loaded
        return self._users

    async def for_users(self, user_ids: Iterable[str]) -> list[Pusher]:
        having = await self._users_with_pushers()
        wanted = sorted(u for u in set(user_ids) if u in having)

        def txn(conn: Connection) -> list[Pusher]:
            found: list[Pusher] = []
            for start in range(0, len(wanted), 500):
                rows = conn.execute(sa.select(pushers).where(
                    _c.user_id.in_(wanted[start:start + 500])).order_by(_c.pushkey_ts))
                found += [_pusher(r) for r in rows]
            return found

        return await self._db.run(txn) if wanted else []

    async def set(self, pusher: Pusher, *, append: bool) -> None:
        """Add or replace a pusher. Without ``append``, other users' pushers with the
        same app_id and pushkey are removed (spec: POST /pushers/set)."""
        values = dataclasses.asdict(pusher)

        def txn(conn: Connection) -> None:
            if not append:
                conn.execute(sa.delete(pushers).where(
                    _c.app_id == pusher.app_id, _c.pushkey == pusher.pushkey,
                    _c.user_id != pusher.user_id))
            upsert(conn, pushers, values, ["user_id", "app_id", "pushkey"])

        # a user may gain a pusher before the write commits (a harmless extra query),
        # and others may lose theirs: re-read the set next time
        if self._users is not None:
            self._users.add(pusher.user_id)
        try:
            await self._db.run(txn)
        finally:
            self._generation += 1
            if not append:
                self._users = None

    async def delete(self, user_id: str, app_id: str, pushkey: str) -> bool:
        """Remove one pusher; False if there was none."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.delete(pushers).where(
                _c.user_id == user_id, _c.app_id == app_id,
                _c.pushkey == pushkey)).rowcount > 0

        try:
            return await self._db.run(txn)
        finally:
            self._generation += 1
            self._users = None  # the user may have no pusher left

    async def delete_user(self, user_id: str) -> int:
        """Remove every pusher of the user (account deactivation); how many there were."""
        def txn(conn: Connection) -> int:
            return conn.execute(sa.delete(pushers).where(_c.user_id == user_id)).rowcount

        try:
            return await self._db.run(txn)
        finally:
            self._generation += 1
            if self._users is not None:
                self._users.discard(user_id)
