"""OpenID tokens a user asked for to prove their identity to a third party (table
``openid_tokens``; spec: Client-Server API, "OpenID", and Server-Server API,
"OpenID"). Stored as their SHA-256 only, like access tokens, with an expiry."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.devices import hash_token
from homeserver.store.sql import metadata

openid_tokens = sa.Table(
    "openid_tokens", metadata,
    sa.Column("token_hash", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("expires_ts", sa.BigInteger, nullable=False),
    sa.Index(None, "expires_ts"),
)

_o = openid_tokens.c


class OpenIdTokens:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, token: str, user_id: str, expires_ts: int) -> None:
        """Store a new token; expired ones are dropped on the way (they are useless)."""
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(openid_tokens).where(_o.expires_ts <= self._db.now_ms()))
            conn.execute(sa.insert(openid_tokens).values(
                token_hash=hash_token(token), user_id=user_id, expires_ts=expires_ts))

        await self._db.run(txn)

    async def user_for(self, token: str, now_ms: int) -> str | None:
        """The user a live token belongs to, or None (unknown or expired)."""
        def txn(conn: Connection) -> str | None:
            return conn.execute(sa.select(_o.user_id).where(
                _o.token_hash == hash_token(token), _o.expires_ts > now_ms)).scalar()

        return await self._db.run(txn)
