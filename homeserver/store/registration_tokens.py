"""Registration tokens (spec: ``m.login.registration_token``; Synapse admin API).

Table ``registration_tokens``. A token is valid while it has not expired and
``pending + completed < uses_allowed`` (no limit when ``uses_allowed`` is None).
``pending`` counts registrations that passed the token stage but have not finished;
:meth:`RegistrationTokens.complete_use` moves one from pending to completed.
"""

from __future__ import annotations

import dataclasses
import secrets
import string
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import insert_if_absent, metadata

registration_tokens = sa.Table(
    "registration_tokens", metadata,
    sa.Column("token", sa.Text, primary_key=True),
    sa.Column("uses_allowed", sa.Integer, nullable=True),
    sa.Column("pending", sa.Integer, nullable=False),
    sa.Column("completed", sa.Integer, nullable=False),
    sa.Column("expiry_time", sa.BigInteger, nullable=True),
)

_c = registration_tokens.c

#: the characters the spec allows in a registration token
TOKEN_ALPHABET = string.ascii_letters + string.digits + "._~-"


def generate_token(length: int = 16) -> str:
    """A random token of ``length`` characters from :data:`TOKEN_ALPHABET`."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))


@dataclasses.dataclass(frozen=True)
class RegistrationToken:
    token: str
    uses_allowed: int | None
    pending: int
    completed: int
    expiry_time: int | None

    def is_valid(self, now_ms: int) -> bool:
        if self.expiry_time is not None and self.expiry_time <= now_ms:
            return False
        return self.uses_allowed is None or \
            self.pending + self.completed < self.uses_allowed


def _token(row: sa.Row) -> RegistrationToken:
    return RegistrationToken(row.token, row.uses_allowed, row.pending, row.completed,
                             row.expiry_time)


_UNSET: Any = object()


class RegistrationTokens:
    """Tokens that gate registration."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, token: str, *, uses_allowed: int | None = None,
                     expiry_time: int | None = None) -> bool:
        """Add a token; False if it already exists."""
        values = dict(token=token, uses_allowed=uses_allowed, pending=0, completed=0,
                      expiry_time=expiry_time)
        return await self._db.run(
            lambda conn: insert_if_absent(conn, registration_tokens, values, ["token"]))

    async def get(self, token: str) -> RegistrationToken | None:
        """The token's counters, or None."""
        def txn(conn: Connection) -> RegistrationToken | None:
            row = conn.execute(sa.select(registration_tokens)
                               .where(_c.token == token)).first()
            return None if row is None else _token(row)

        return await self._db.run(txn)

    async def is_valid(self, token: str) -> bool:
        """Whether ``token`` may be used to register now (spec: ``…/validity``)."""
        info = await self.get(token)
        return info is not None and info.is_valid(self._db.now_ms())

    async def list_tokens(self, valid: bool | None = None) -> list[RegistrationToken]:
        """All tokens (only valid or only invalid ones if ``valid`` is given)."""
        def txn(conn: Connection) -> list[RegistrationToken]:
            rows = conn.execute(sa.select(registration_tokens).order_by(_c.token))
            return [_token(r) for r in rows]

        tokens = await self._db.run(txn)
        if valid is None:
            return tokens
        now = self._db.now_ms()
        return [t for t in tokens if t.is_valid(now) == valid]

    async def update(self, token: str, *, uses_allowed: int | None = _UNSET,
                     expiry_time: int | None = _UNSET) -> bool:
        """Change the limits given (None removes a limit); False if no such token."""
        values = {k: v for k, v in (("uses_allowed", uses_allowed),
                                    ("expiry_time", expiry_time)) if v is not _UNSET}

        def txn(conn: Connection) -> bool:
            if not values:
                return conn.execute(sa.select(_c.token)
                                    .where(_c.token == token)).first() is not None
            return conn.execute(sa.update(registration_tokens)
                                .where(_c.token == token).values(**values)).rowcount > 0

        return await self._db.run(txn)

    async def delete(self, token: str) -> bool:
        """Remove a token; False if it did not exist."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.delete(registration_tokens)
                                .where(_c.token == token)).rowcount > 0

        return await self._db.run(txn)

    async def start_use(self, token: str) -> bool:
        """A registration passed the token stage: count it as pending.

        Checks validity and increments in one statement, so two concurrent
        registrations cannot both take the last use. False if the token is invalid.
        """
        now = self._db.now_ms()

        def txn(conn: Connection) -> bool:
            stmt = (sa.update(registration_tokens)
                    .where(_c.token == token,
                           sa.or_(_c.expiry_time.is_(None), _c.expiry_time > now),
                           sa.or_(_c.uses_allowed.is_(None),
                                  _c.pending + _c.completed < _c.uses_allowed))
                    .values(pending=_c.pending + 1))
            return conn.execute(stmt).rowcount > 0

        return await self._db.run(txn)

    async def complete_use(self, token: str) -> bool:
        """The registration finished: move one use from pending to completed."""
        def txn(conn: Connection) -> bool:
            stmt = (sa.update(registration_tokens)
                    .where(_c.token == token, _c.pending > 0)
                    .values(pending=_c.pending - 1, completed=_c.completed + 1))
            return conn.execute(stmt).rowcount > 0

        return await self._db.run(txn)

    async def abandon_use(self, token: str) -> bool:
        """A pending registration was abandoned: give its use back."""
        def txn(conn: Connection) -> bool:
            stmt = (sa.update(registration_tokens)
                    .where(_c.token == token, _c.pending > 0)
                    .values(pending=_c.pending - 1))
            return conn.execute(stmt).rowcount > 0

        return await self._db.run(txn)
