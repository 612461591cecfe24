"""Signing keys: remote servers' verify keys (a cache) and our own retired keys.

Table ``server_keys`` caches keys fetched from ``/_matrix/key/v2/server`` or a notary,
keeping the signed response bytes (``key_json``) so we can serve them as a notary
ourselves. A key is only overwritten by a copy valid for at least as long, so a stale
notary answer cannot shorten a key we already hold. Table ``local_old_keys`` holds
our own retired keys for ``old_verify_keys``.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import excluded, metadata, upsert

server_keys = sa.Table(
    "server_keys", metadata,
    sa.Column("server_name", sa.Text, primary_key=True),
    sa.Column("key_id", sa.Text, primary_key=True),
    # unpadded base64 of the ed25519 public key, as it appears in the JSON
    sa.Column("verify_key", sa.Text, nullable=False),
    sa.Column("valid_until_ts", sa.BigInteger, nullable=False),
    sa.Column("expired_ts", sa.BigInteger, nullable=True),
    sa.Column("fetched_ts", sa.BigInteger, nullable=False),
    sa.Column("key_json", sa.LargeBinary, nullable=True),
)

local_old_keys = sa.Table(
    "local_old_keys", metadata,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("verify_key", sa.Text, nullable=False),
    sa.Column("expired_ts", sa.BigInteger, nullable=False),
)

_c, _o = server_keys.c, local_old_keys.c


@dataclasses.dataclass(frozen=True)
class ServerKey:
    server_name: str
    key_id: str
    verify_key: str
    valid_until_ts: int
    #: set for keys listed in ``old_verify_keys``
    expired_ts: int | None = None
    key_json: bytes | None = None


@dataclasses.dataclass(frozen=True)
class OldLocalKey:
    key_id: str
    verify_key: str
    expired_ts: int


def _key(row: sa.Row) -> ServerKey:
    return ServerKey(row.server_name, row.key_id, row.verify_key, row.valid_until_ts,
                     row.expired_ts, row.key_json)


class ServerKeys:
    """Remote key cache and our retired keys."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def store_server_keys(self, keys: Iterable[ServerKey]) -> int:
        """Cache keys; returns how many rows were written (newer or new)."""
        now = self._db.now_ms()
        rows = [dict(dataclasses.asdict(k), fetched_ts=now) for k in keys]

        def txn(conn: Connection) -> int:
            written = 0
            for row in rows:
                written += upsert(
                    conn, server_keys, row, ["server_name", "key_id"],
                    where=excluded(server_keys, "valid_until_ts")
                    >= server_keys.c.valid_until_ts)
            return written

        return await self._db.run(txn)

    async def get_server_key(self, server_name: str, key_id: str) -> ServerKey | None:
        """One cached key, or None."""
        def txn(conn: Connection) -> ServerKey | None:
            row = conn.execute(sa.select(server_keys).where(
                _c.server_name == server_name, _c.key_id == key_id)).first()
            return None if row is None else _key(row)

        return await self._db.run(txn)

    async def get_server_keys(self, server_name: str,
                              key_ids: Iterable[str] | None = None) -> list[ServerKey]:
        """The cached keys of a server (optionally only ``key_ids``), by key ID."""
        wanted = None if key_ids is None else list(set(key_ids))

        def txn(conn: Connection) -> list[ServerKey]:
            stmt = sa.select(server_keys).where(_c.server_name == server_name)
            if wanted is not None:
                stmt = stmt.where(_c.key_id.in_(wanted))
            return [_key(r) for r in conn.execute(stmt.order_by(_c.key_id))]

        return await self._db.run(txn)

    async def add_old_local_key(self, key_id: str, verify_key: str,
                                expired_ts: int) -> None:
        """Retire one of our signing keys (kept for ``old_verify_keys``)."""
        def txn(conn: Connection) -> None:
            upsert(conn, local_old_keys, dict(key_id=key_id, verify_key=verify_key,
                                              expired_ts=expired_ts), ["key_id"])

        await self._db.run(txn)

    async def get_old_local_keys(self) -> list[OldLocalKey]:
        """Our retired keys, by key ID."""
        def txn(conn: Connection) -> list[OldLocalKey]:
            rows = conn.execute(sa.select(local_old_keys).order_by(_o.key_id))
            return [OldLocalKey(r.key_id, r.verify_key, r.expired_ts) for r in rows]

        return await self._db.run(txn)
