"""Accounts: local users, their password hashes and profiles.

Tables ``users`` and ``profiles``. Passwords are hashed with argon2id
(:func:`hash_password`); hashes imported from Synapse (bcrypt, ``$2b$``) still verify
when the ``bcrypt`` package is installed, and are otherwise refused.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection
from twisted.internet import threads

from homeserver.store.database import Database
from homeserver.store.sql import insert_if_absent, metadata, upsert

users = sa.Table(
    "users", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False),
    sa.Column("is_guest", sa.Boolean, nullable=False),
    sa.Column("deactivated", sa.Boolean, nullable=False),
    sa.Column("user_type", sa.Text, nullable=True),
    sa.Column("consent_version", sa.Text, nullable=True),
    sa.Column("consent_ts", sa.BigInteger, nullable=True),
)

profiles = sa.Table(
    "profiles", metadata,
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("displayname", sa.Text, nullable=True),
    sa.Column("avatar_url", sa.Text, nullable=True),
)

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (CPU-heavy: call it off the reactor thread)."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether ``password`` matches ``password_hash`` (argon2, or bcrypt if available)."""
    if not password_hash:
        return False
    if password_hash.startswith(("$2b$", "$2a$", "$2y$")):
        try:
            import bcrypt
        except ImportError:
            return False
        try:
            return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
        except ValueError:
            return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclasses.dataclass(frozen=True)
class UserInfo:
    user_id: str
    created_ts: int
    is_admin: bool
    is_guest: bool
    deactivated: bool
    user_type: str | None
    consent_version: str | None
    has_password: bool


@dataclasses.dataclass(frozen=True)
class Profile:
    displayname: str | None
    avatar_url: str | None


class Accounts:
    """Local user accounts and profiles."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- users ------------------------------------------------------------------------
    async def create_user(self, user_id: str, password_hash: str | None = None, *,
                          is_admin: bool = False, is_guest: bool = False,
                          user_type: str | None = None,
                          displayname: str | None = None) -> bool:
        """Create a user (and its profile row); False if the user ID is taken."""
        values = dict(user_id=user_id, password_hash=password_hash,
                      created_ts=self._db.now_ms(), is_admin=is_admin,
                      is_guest=is_guest, deactivated=False, user_type=user_type)

        def txn(conn: Connection) -> bool:
            if not insert_if_absent(conn, users, values, ["user_id"]):
                return False
            conn.execute(sa.insert(profiles).values(
                user_id=user_id, displayname=displayname, avatar_url=None))
            return True

        return await self._db.run(txn)

    async def get_user(self, user_id: str) -> UserInfo | None:
        """The user's account flags, or None if there is no such local user."""
        def txn(conn: Connection) -> UserInfo | None:
            row = conn.execute(sa.select(users).where(users.c.user_id == user_id)).first()
            if row is None:
                return None
            return UserInfo(user_id=row.user_id, created_ts=row.created_ts,
                            is_admin=row.is_admin, is_guest=row.is_guest,
                            deactivated=row.deactivated, user_type=row.user_type,
                            consent_version=row.consent_version,
                            has_password=row.password_hash is not None)

        return await self._db.run(txn)

    async def find_user_ids_case_insensitive(self, user_id: str) -> list[str]:
        """User IDs equal to ``user_id`` ignoring case (for login with odd casing)."""
        def txn(conn: Connection) -> list[str]:
            stmt = (sa.select(users.c.user_id)
                    .where(sa.func.lower(users.c.user_id) == user_id.lower())
                    .order_by(users.c.user_id))
            return list(conn.execute(stmt).scalars())

        return await self._db.run(txn)

    async def count_users(self, *, include_guests: bool = False) -> int:
        """How many non-deactivated users exist."""
        def txn(conn: Connection) -> int:
            stmt = sa.select(sa.func.count()).select_from(users).where(
                users.c.deactivated == sa.false())
            if not include_guests:
                stmt = stmt.where(users.c.is_guest == sa.false())
            return int(conn.execute(stmt).scalar_one())

        return await self._db.run(txn)

    async def _update_user(self, user_id: str, **values: Any) -> bool:
        def txn(conn: Connection) -> bool:
            res = conn.execute(sa.update(users).where(users.c.user_id == user_id)
                               .values(**values))
            return res.rowcount > 0

        return await self._db.run(txn)

    async def set_admin(self, user_id: str, is_admin: bool) -> bool:
        """Grant or revoke server admin; False if the user does not exist."""
        return await self._update_user(user_id, is_admin=is_admin)

    async def set_deactivated(self, user_id: str, deactivated: bool = True) -> bool:
        """Mark the account (de)activated; the caller also deletes its tokens/devices."""
        return await self._update_user(user_id, deactivated=deactivated)

    async def set_guest(self, user_id: str, is_guest: bool) -> bool:
        """Upgrade a guest to a full user (or the reverse)."""
        return await self._update_user(user_id, is_guest=is_guest)

    async def set_user_type(self, user_id: str, user_type: str | None) -> bool:
        """Set the user type (``None``, ``"bot"``, ``"support"``)."""
        return await self._update_user(user_id, user_type=user_type)

    async def set_consent(self, user_id: str, version: str) -> bool:
        """Record that the user accepted the privacy policy ``version`` now."""
        return await self._update_user(user_id, consent_version=version,
                                       consent_ts=self._db.now_ms())

    # -- passwords --------------------------------------------------------------------
    async def get_password_hash(self, user_id: str) -> str | None:
        """The stored hash, or None (no such user, or no password set)."""
        def txn(conn: Connection) -> str | None:
            return conn.execute(sa.select(users.c.password_hash)
                                .where(users.c.user_id == user_id)).scalar()

        return await self._db.run(txn)

    async def set_password_hash(self, user_id: str, password_hash: str | None) -> bool:
        """Replace the password hash (None removes password login)."""
        return await self._update_user(user_id, password_hash=password_hash)

    async def check_password(self, user_id: str, password: str) -> bool:
        """Whether ``password`` is the user's; hashing runs in the reactor's threads."""
        password_hash = await self.get_password_hash(user_id)
        if password_hash is None:
            return False
        reactor = self._db.reactor
        return await threads.deferToThreadPool(
            reactor, reactor.getThreadPool(), verify_password, password, password_hash)

    # -- profiles ---------------------------------------------------------------------
    async def get_profile(self, user_id: str) -> Profile | None:
        """The user's displayname and avatar, or None for an unknown user."""
        def txn(conn: Connection) -> Profile | None:
            row = conn.execute(sa.select(profiles.c.displayname, profiles.c.avatar_url)
                               .where(profiles.c.user_id == user_id)).first()
            return None if row is None else Profile(row.displayname, row.avatar_url)

        return await self._db.run(txn)

    async def set_displayname(self, user_id: str, displayname: str | None) -> None:
        """Set (or clear, with None) the displayname."""
        await self._set_profile(user_id, displayname=displayname)

    async def set_avatar_url(self, user_id: str, avatar_url: str | None) -> None:
        """Set (or clear, with None) the avatar URL."""
        await self._set_profile(user_id, avatar_url=avatar_url)

    async def _set_profile(self, user_id: str, **values: Any) -> None:
        def txn(conn: Connection) -> None:
            upsert(conn, profiles, dict(user_id=user_id, **values), ["user_id"])

        await self._db.run(txn)
