"""Login tokens minted by ``POST /login/get_token`` and spent by ``POST /login`` with
``m.login.token`` (table ``login_tokens``; spec v1.7: Client-Server API, "Login",
"Token-based"). Stored as their SHA-256 only, like access tokens: a leaked database
row cannot be replayed. Each token expires and can be spent once."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.devices import hash_token
from homeserver.store.sql import metadata

login_tokens = sa.Table(
    "login_tokens", metadata,
    sa.Column("token_hash", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("expires_ts", sa.BigInteger, nullable=False),
    sa.Index(None, "expires_ts"),
)

_t = login_tokens.c


class LoginTokens:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, token: str, user_id: str, *, expires_ts: int, now_ms: int) -> None:
        """Store a new token; expired ones are dropped on the way (they are useless)."""
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(login_tokens).where(_t.expires_ts <= now_ms))
            conn.execute(sa.insert(login_tokens).values(
                token_hash=hash_token(token), user_id=user_id, expires_ts=expires_ts))

        await self._db.run(txn)

    async def consume(self, token: str, now_ms: int) -> str | None:
        """The user a live token belonged to, deleting it; None if it is unknown,
        expired or already spent. Two concurrent calls cannot both win: only the one
        whose DELETE removed the row gets the user."""
        token_hash = hash_token(token)

        def txn(conn: Connection) -> str | None:
            user_id = conn.execute(sa.select(_t.user_id).where(
                _t.token_hash == token_hash, _t.expires_ts > now_ms)).scalar()
            if user_id is None:
                return None
            deleted = conn.execute(sa.delete(login_tokens).where(
                _t.token_hash == token_hash, _t.expires_ts > now_ms)).rowcount
            return user_id if deleted == 1 else None

        return await self._db.run(txn)

    async def delete_for_user(self, user_id: str) -> None:
        """Forget a user's unspent tokens (deactivation)."""
        await self._db.run(lambda conn: conn.execute(
            sa.delete(login_tokens).where(_t.user_id == user_id)))
