"""Server-side backups of room keys (spec: Client-Server API, "Server-side key
backups"). The server stores what the client encrypted; it never reads
``session_data``.

Tables ``room_key_backup_versions`` (one row per backup version of a user; deleted
versions stay, marked, so their numbers are never reused) and ``room_key_backup_keys``
(one encrypted session key per version, room and session). ``etag`` counts changes to
a version's keys, so a client can tell whether others added keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import JsonText, metadata

room_key_backup_versions = sa.Table(
    "room_key_backup_versions", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("algorithm", sa.Text, nullable=False),
    sa.Column("auth_data", JsonText, nullable=False),
    sa.Column("etag", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
)

room_key_backup_keys = sa.Table(
    "room_key_backup_keys", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("session_id", sa.Text, primary_key=True),
    sa.Column("first_message_index", sa.BigInteger, nullable=False),
    sa.Column("forwarded_count", sa.BigInteger, nullable=False),
    sa.Column("is_verified", sa.Boolean, nullable=False),
    sa.Column("session_data", JsonText, nullable=False),
)

_v, _k = room_key_backup_versions.c, room_key_backup_keys.c


@dataclasses.dataclass(frozen=True)
class BackupVersion:
    version: int
    algorithm: str
    auth_data: Any
    etag: int
    count: int


@dataclasses.dataclass(frozen=True)
class RoomKey:
    """``KeyBackupData`` of the spec."""
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: Any

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def better_than(self, other: "RoomKey") -> bool:
        """The spec's replacement rule: a verified key beats an unverified one; then
        the lower ``first_message_index``; then the lower ``forwarded_count``."""
        if self.is_verified != other.is_verified:
            return self.is_verified
        if self.first_message_index != other.first_message_index:
            return self.first_message_index < other.first_message_index
        return self.forwarded_count < other.forwarded_count


#: room → session → key
Keys = Mapping[str, Mapping[str, RoomKey]]


def _latest(conn: Connection, user_id: str) -> sa.Row | None:
    return conn.execute(sa.select(room_key_backup_versions).where(
        _v.user_id == user_id, _v.deleted == sa.false())
        .order_by(_v.version.desc()).limit(1)).first()


def _version_row(conn: Connection, user_id: str, version: int | None) -> sa.Row | None:
    if version is None:
        return _latest(conn, user_id)
    return conn.execute(sa.select(room_key_backup_versions).where(
        _v.user_id == user_id, _v.version == version, _v.deleted == sa.false())).first()


def _count(conn: Connection, user_id: str, version: int) -> int:
    return conn.execute(sa.select(sa.func.count()).where(
        _k.user_id == user_id, _k.version == version)).scalar_one()


def _info(conn: Connection, row: sa.Row) -> BackupVersion:
    return BackupVersion(row.version, row.algorithm, row.auth_data, row.etag,
                         _count(conn, row.user_id, row.version))


def _key(row: sa.Row) -> RoomKey:
    return RoomKey(row.first_message_index, row.forwarded_count, row.is_verified,
                   row.session_data)


class NoBackup(LookupError):
    """No such (non-deleted) backup version."""


class WrongVersion(Exception):
    """Keys sent for a version that is not the current one."""

    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


def _narrowed(stmt: Any, user_id: str, version: int, room_id: str | None,
              session_id: str | None) -> Any:
    """``stmt`` limited to one version's keys, of one room and one session if given."""
    stmt = stmt.where(_k.user_id == user_id, _k.version == version)
    if room_id is not None:
        stmt = stmt.where(_k.room_id == room_id)
    if session_id is not None:
        stmt = stmt.where(_k.session_id == session_id)
    return stmt


class KeyBackups:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- versions ---------------------------------------------------------------------
    async def create_version(self, user_id: str, algorithm: str, auth_data: Any) -> int:
        """A new backup version, which becomes the current one; returns its number."""
        def txn(conn: Connection) -> int:
            highest = conn.execute(sa.select(sa.func.max(_v.version))
                                   .where(_v.user_id == user_id)).scalar()
            version = (highest or 0) + 1
            conn.execute(sa.insert(room_key_backup_versions).values(
                user_id=user_id, version=version, algorithm=algorithm,
                auth_data=auth_data, etag=0, deleted=False))
            return version

        return await self._db.run(txn)

    async def get_version(self, user_id: str, version: int | None = None,
                          ) -> BackupVersion | None:
        """A live version (``None``: the current one), or None."""
        def txn(conn: Connection) -> BackupVersion | None:
            row = _version_row(conn, user_id, version)
            return None if row is None else _info(conn, row)

        return await self._db.run(txn)

    async def update_version(self, user_id: str, version: int,
                             check: Callable[[BackupVersion], None], auth_data: Any) -> None:
        """Replace a live version's ``auth_data``; ``check(current)`` may refuse
        (e.g. another algorithm). Raises :class:`NoBackup`."""
        def txn(conn: Connection) -> None:
            row = _version_row(conn, user_id, version)
            if row is None:
                raise NoBackup(version)
            check(_info(conn, row))
            conn.execute(sa.update(room_key_backup_versions).where(
                _v.user_id == user_id, _v.version == version).values(auth_data=auth_data))

        await self._db.run(txn)

    async def delete_version(self, user_id: str, version: int | None) -> None:
        """Delete a live version (``None``: the current one) and its keys."""
        def txn(conn: Connection) -> None:
            row = _version_row(conn, user_id, version)
            if row is None:
                raise NoBackup(version)
            conn.execute(sa.delete(room_key_backup_keys).where(
                _k.user_id == user_id, _k.version == row.version))
            conn.execute(sa.update(room_key_backup_versions).where(
                _v.user_id == user_id, _v.version == row.version).values(deleted=True))

        await self._db.run(txn)

    async def delete_user(self, user_id: str) -> None:
        """Every backup version of the user and their keys (account deactivation, as
        Synapse's ``bulk_delete_backup_keys_and_versions_for_user``). The versions
        stay marked deleted, their ``auth_data`` emptied, so numbers are not reused."""
        def txn(conn: Connection) -> None:
            conn.execute(sa.delete(room_key_backup_keys).where(_k.user_id == user_id))
            conn.execute(sa.update(room_key_backup_versions).where(_v.user_id == user_id)
                         .values(deleted=True, auth_data={}))

        await self._db.run(txn)

    # -- keys -------------------------------------------------------------------------
    async def put_keys(self, user_id: str, version: int, keys: Keys) -> BackupVersion:
        """Add or improve keys in the *current* version; returns its new etag/count.

        Raises :class:`NoBackup` if the version does not exist and
        :class:`WrongVersion` if it is not the current one.
        """
        def txn(conn: Connection) -> BackupVersion:
            current = _latest(conn, user_id)
            if current is None or _version_row(conn, user_id, version) is None:
                raise NoBackup(version)
            if current.version != version:
                raise WrongVersion(current.version)
            changed = False
            for room_id, sessions in keys.items():
                for session_id, key in sessions.items():
                    where = (_k.user_id == user_id, _k.version == version,
                             _k.room_id == room_id, _k.session_id == session_id)
                    old = conn.execute(sa.select(room_key_backup_keys).where(*where)).first()
                    values = key.to_json()
                    if old is None:
                        conn.execute(sa.insert(room_key_backup_keys).values(
                            user_id=user_id, version=version, room_id=room_id,
                            session_id=session_id, **values))
                    elif key.better_than(_key(old)):
                        conn.execute(sa.update(room_key_backup_keys).where(*where)
                                     .values(**values))
                    else:
                        continue
                    changed = True
            etag = current.etag + 1 if changed else current.etag
            if changed:
                conn.execute(sa.update(room_key_backup_versions).where(
                    _v.user_id == user_id, _v.version == version).values(etag=etag))
            return BackupVersion(version, current.algorithm, current.auth_data, etag,
                                 _count(conn, user_id, version))

        return await self._db.run(txn)

    async def get_keys(self, user_id: str, version: int, room_id: str | None = None,
                       session_id: str | None = None) -> dict[str, dict[str, RoomKey]]:
        """room → session → key of a live version, narrowed to a room or a session.
        Raises :class:`NoBackup`."""
        def txn(conn: Connection) -> dict[str, dict[str, RoomKey]]:
            if _version_row(conn, user_id, version) is None:
                raise NoBackup(version)
            stmt = _narrowed(sa.select(room_key_backup_keys), user_id, version, room_id,
                             session_id)
            out: dict[str, dict[str, RoomKey]] = {}
            for row in conn.execute(stmt.order_by(_k.room_id, _k.session_id)):
                out.setdefault(row.room_id, {})[row.session_id] = _key(row)
            return out

        return await self._db.run(txn)

    async def delete_keys(self, user_id: str, version: int, room_id: str | None = None,
                          session_id: str | None = None) -> BackupVersion:
        """Delete keys of a live version (all, a room's, or one session); returns the
        version's new etag and count. Raises :class:`NoBackup`."""
        def txn(conn: Connection) -> BackupVersion:
            row = _version_row(conn, user_id, version)
            if row is None:
                raise NoBackup(version)
            stmt = _narrowed(sa.delete(room_key_backup_keys), user_id, version, room_id,
                             session_id)
            etag = row.etag
            if conn.execute(stmt).rowcount:
                etag += 1
                conn.execute(sa.update(room_key_backup_versions).where(
                    _v.user_id == user_id, _v.version == version).values(etag=etag))
            return BackupVersion(version, row.algorithm, row.auth_data, etag,
                                 _count(conn, user_id, version))

        return await self._db.run(txn)
