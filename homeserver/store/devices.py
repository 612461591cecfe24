"""Devices, access and refresh tokens, and the device-lists stream.

Tables ``user_devices``, ``access_tokens``, ``refresh_tokens``, ``device_list_changes``.
Tokens are stored only as their SHA-256 (they are 256 random bits, so an unsalted hash
is enough): a copy of the database does not let anyone log in. The plaintext is
returned once, when the token is created.

Refresh tokens follow the spec's rotation (client-server API "Refreshing access
tokens"): refreshing hands out a new pair and links the old refresh token to it; the
old refresh token (and its access tokens) stays usable until the *new* access token is
first used, so a client whose refresh response was lost can retry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import Iterable, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import outbox, positions
from homeserver.store.accounts import users
from homeserver.store.database import Database
from homeserver.store.sql import Position, insert_if_absent, metadata

user_devices = sa.Table(
    "user_devices", metadata,
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("display_name", sa.Text, nullable=True),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ts", sa.BigInteger, nullable=True),
    sa.Column("last_seen_ip", sa.Text, nullable=True),
    sa.Column("last_seen_user_agent", sa.Text, nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens", metadata,
    sa.Column("token_id", Position, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("next_token_id", Position,
              sa.ForeignKey("refresh_tokens.token_id", ondelete="SET NULL"),
              nullable=True),
    sa.Column("expiry_ts", sa.BigInteger, nullable=True),
    sa.Column("ultimate_session_expiry_ts", sa.BigInteger, nullable=True),
    sa.Index(None, "user_id", "device_id"),
    sqlite_autoincrement=True,
)

access_tokens = sa.Table(
    "access_tokens", metadata,
    sa.Column("token_id", Position, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.Text, nullable=False, unique=True),
    sa.Column("user_id", sa.Text, sa.ForeignKey("users.user_id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("device_id", sa.Text, nullable=True),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sa.Column("valid_until_ms", sa.BigInteger, nullable=True),
    sa.Column("refresh_token_id", Position,
              sa.ForeignKey("refresh_tokens.token_id", ondelete="CASCADE"),
              nullable=True),
    sa.Column("used", sa.Boolean, nullable=False),
    sa.Index(None, "user_id", "device_id"),
    sqlite_autoincrement=True,
)

device_list_changes = sa.Table(
    "device_list_changes", metadata,
    sa.Column("pos", Position, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("device_id", sa.Text, nullable=True),
    sa.Index(None, "user_id", "pos"),
    sqlite_autoincrement=True,
)

_d, _a, _r = user_devices.c, access_tokens.c, refresh_tokens.c


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


class TokenOwner(NamedTuple):
    """Who an access token belongs to."""
    user_id: str
    device_id: str | None
    token_id: int
    is_guest: bool


@dataclasses.dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_token_id: int
    refresh_token_id: int
    valid_until_ms: int | None


@dataclasses.dataclass(frozen=True)
class Device:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None
    last_seen_user_agent: str | None


def _device(row: sa.Row) -> Device:
    return Device(**{f.name: row._mapping[f.name] for f in dataclasses.fields(Device)})


def last_device_update(conn: Connection, user_id: str) -> int:
    """The device-lists position of the user's last device change (not a signing-key
    change), 0 if none."""
    c = device_list_changes.c
    return int(conn.execute(sa.select(sa.func.max(c.pos)).where(
        c.user_id == user_id, c.device_id.is_not(None))).scalar() or 0)


def mark_device_lists_changed(conn: Connection, user_id: str,
                              device_ids: Iterable[str | None], now_ms: int, *,
                              edu_type: str = outbox.DEVICE_LIST_UPDATE) -> int:
    """Inside the caller's transaction: the user's devices (or, with ``None``, their
    cross-signing keys) changed. Local syncs see it on the device-lists stream; other
    servers will through the federation outbox (written in the same transaction)."""
    positions.lock_stream(conn, positions.DEVICE_LISTS)
    pos, entries = 0, []
    # spec "m.device_list_update": ``prev_id`` names the user's update the receiver
    # should have seen last, so it applies this one instead of fetching the whole
    # list (Synapse resyncs on an empty or unknown prev_id). One chain per user, of
    # device updates only: a receiver's copy is at the stream_id of the last device
    # update it applied, or of /user/devices (``RemoteDeviceListCache.latest_position``
    # answers the same chain: ``remote_devices.RemoteDeviceLists.latest_position``);
    # signing-key
    # updates carry no stream_id.
    prev = last_device_update(conn, user_id)
    for device_id in device_ids:
        pos = conn.execute(sa.insert(device_list_changes)
                           .values(user_id=user_id, device_id=device_id)
                           .returning(device_list_changes.c.pos)).scalar_one()
        content: dict = {"user_id": user_id, "device_id": device_id, "stream_id": pos}
        if device_id is not None:
            content["prev_id"] = [prev] if prev else []
            prev = pos
        entries.append(outbox.OutboxEntry(edu_type, user_id, content))
    positions.advance(conn, positions.DEVICE_LISTS, pos)
    outbox.append(conn, entries, now_ms)
    return pos


class Devices:
    """A user's devices and the tokens that authenticate them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- devices ----------------------------------------------------------------------
    async def create_device(self, user_id: str, device_id: str,
                            display_name: str | None = None, *, ip: str | None = None,
                            user_agent: str | None = None) -> bool:
        """Add the device unless it exists; True if new (then device lists change)."""
        now = self._db.now_ms()
        values = dict(user_id=user_id, device_id=device_id, display_name=display_name,
                      created_ts=now, last_seen_ts=now, last_seen_ip=ip,
                      last_seen_user_agent=user_agent)

        def txn(conn: Connection) -> bool:
            if not insert_if_absent(conn, user_devices, values, ["user_id", "device_id"]):
                return False
            mark_device_lists_changed(conn, user_id, [device_id], self._db.now_ms())
            return True

        return await self._db.run(txn)

    async def get_device(self, user_id: str, device_id: str) -> Device | None:
        """One device, or None."""
        def txn(conn: Connection) -> Device | None:
            row = conn.execute(sa.select(user_devices).where(
                _d.user_id == user_id, _d.device_id == device_id)).first()
            return None if row is None else _device(row)

        return await self._db.run(txn)

    async def get_devices(self, user_id: str) -> list[Device]:
        """All the user's devices, by device ID."""
        def txn(conn: Connection) -> list[Device]:
            rows = conn.execute(sa.select(user_devices).where(_d.user_id == user_id)
                                .order_by(_d.device_id))
            return [_device(r) for r in rows]

        return await self._db.run(txn)

    async def set_device_display_name(self, user_id: str, device_id: str,
                                      display_name: str | None) -> bool:
        """Rename a device; False if it does not exist."""
        def txn(conn: Connection) -> bool:
            res = conn.execute(sa.update(user_devices).where(
                _d.user_id == user_id, _d.device_id == device_id)
                .values(display_name=display_name))
            if res.rowcount == 0:
                return False
            mark_device_lists_changed(conn, user_id, [device_id], self._db.now_ms())
            return True

        return await self._db.run(txn)

    async def update_last_seen(self, user_id: str, device_id: str, *, ip: str | None,
                               user_agent: str | None) -> None:
        """Record a request from the device (callers rate-limit this)."""
        values = dict(last_seen_ts=self._db.now_ms(), last_seen_ip=ip,
                      last_seen_user_agent=user_agent)

        def txn(conn: Connection) -> None:
            conn.execute(sa.update(user_devices).where(
                _d.user_id == user_id, _d.device_id == device_id).values(**values))

        await self._db.run(txn)

    async def delete_devices(self, user_id: str, device_ids: Iterable[str]) -> list[str]:
        """Delete devices and all their tokens; returns the IDs that existed.

        The caller also clears their to-device inboxes and E2EE keys.
        """
        wanted = sorted(set(device_ids))

        def txn(conn: Connection) -> list[str]:
            if not wanted:
                return []
            existing = list(conn.execute(sa.select(_d.device_id).where(
                _d.user_id == user_id, _d.device_id.in_(wanted))).scalars())
            conn.execute(sa.delete(access_tokens).where(
                _a.user_id == user_id, _a.device_id.in_(wanted)))
            conn.execute(sa.delete(refresh_tokens).where(
                _r.user_id == user_id, _r.device_id.in_(wanted)))
            conn.execute(sa.delete(user_devices).where(
                _d.user_id == user_id, _d.device_id.in_(wanted)))
            if existing:
                mark_device_lists_changed(conn, user_id, existing, self._db.now_ms())
            return existing

        return await self._db.run(txn)

    # -- device lists stream ----------------------------------------------------------
    async def mark_device_list_changed(self, user_id: str,
                                       device_id: str | None = None) -> int:
        """Note that the user's devices or keys changed; returns the stream position."""
        return await self._db.run(mark_device_lists_changed, user_id, [device_id],
                                  self._db.now_ms())

    async def users_with_device_list_changes(
            self, since: int, upto: int | None = None,
            user_ids: Iterable[str] | None = None) -> set[str]:
        """Users whose device lists changed at positions in (since, upto]."""
        users = None if user_ids is None else list(set(user_ids))
        if users == []:
            return set()

        def txn(conn: Connection) -> set[str]:
            c = device_list_changes.c
            end = positions.read_position(conn, positions.DEVICE_LISTS) \
                if upto is None else upto
            stmt = sa.select(c.user_id).distinct().where(c.pos > since, c.pos <= end)
            if users is not None:
                stmt = stmt.where(c.user_id.in_(users))
            return set(conn.execute(stmt).scalars())

        return await self._db.run(txn)

    # -- access tokens ----------------------------------------------------------------
    async def create_access_token(self, user_id: str, device_id: str | None, *,
                                  valid_until_ms: int | None = None) -> str:
        """Issue an access token; returns the plaintext (only the hash is stored)."""
        token = _new_token("rs_at_")
        await self._db.run(self._insert_access_token, token, user_id, device_id,
                           valid_until_ms, None)
        return token

    def _insert_access_token(self, conn: Connection, token: str, user_id: str,
                             device_id: str | None, valid_until_ms: int | None,
                             refresh_token_id: int | None) -> int:
        return conn.execute(sa.insert(access_tokens).values(
            token_hash=hash_token(token), user_id=user_id, device_id=device_id,
            created_ts=self._db.now_ms(), valid_until_ms=valid_until_ms,
            refresh_token_id=refresh_token_id, used=False,
        ).returning(_a.token_id)).scalar_one()

    async def get_user_by_access_token(self, token: str) -> TokenOwner | None:
        """Who ``token`` belongs to; None if unknown, expired or the user is deactivated.

        The first use of an access token issued by a refresh retires the refresh
        token it replaced (and that token's access tokens).
        """
        token_hash = hash_token(token)
        now = self._db.now_ms()

        def txn(conn: Connection) -> TokenOwner | None:
            row = conn.execute(
                sa.select(_a.token_id, _a.user_id, _a.device_id, _a.valid_until_ms,
                          _a.refresh_token_id, _a.used, users.c.is_guest,
                          users.c.deactivated)
                .join(users, users.c.user_id == _a.user_id)
                .where(_a.token_hash == token_hash)).first()
            if row is None or row.deactivated:
                return None
            if row.valid_until_ms is not None and row.valid_until_ms <= now:
                return None
            if row.refresh_token_id is not None and not row.used:
                conn.execute(sa.update(access_tokens)
                             .where(_a.token_id == row.token_id).values(used=True))
                conn.execute(sa.delete(refresh_tokens)
                             .where(_r.next_token_id == row.refresh_token_id))
            return TokenOwner(row.user_id, row.device_id, row.token_id, row.is_guest)

        return await self._db.run(txn)

    async def delete_access_token(self, token_id: int) -> bool:
        """Log out one token (and the refresh token it was issued with)."""
        def txn(conn: Connection) -> bool:
            refresh_id = conn.execute(sa.select(_a.refresh_token_id)
                                      .where(_a.token_id == token_id)).scalar()
            res = conn.execute(sa.delete(access_tokens).where(_a.token_id == token_id))
            if refresh_id is not None:
                conn.execute(sa.delete(refresh_tokens).where(_r.token_id == refresh_id))
            return res.rowcount > 0

        return await self._db.run(txn)

    async def delete_tokens_for_device(self, user_id: str, device_id: str) -> int:
        """Delete every access and refresh token of a device; returns how many access."""
        def txn(conn: Connection) -> int:
            conn.execute(sa.delete(refresh_tokens).where(
                _r.user_id == user_id, _r.device_id == device_id))
            return conn.execute(sa.delete(access_tokens).where(
                _a.user_id == user_id, _a.device_id == device_id)).rowcount

        return await self._db.run(txn)

    async def delete_tokens_for_user(self, user_id: str, *,
                                     except_token_id: int | None = None) -> int:
        """Delete all the user's tokens but ``except_token_id`` (password change)."""
        def txn(conn: Connection) -> int:
            keep_refresh = None
            if except_token_id is not None:
                keep_refresh = conn.execute(sa.select(_a.refresh_token_id).where(
                    _a.token_id == except_token_id)).scalar()
            stmt = sa.delete(refresh_tokens).where(_r.user_id == user_id)
            if keep_refresh is not None:
                stmt = stmt.where(_r.token_id != keep_refresh)
            conn.execute(stmt)
            stmt = sa.delete(access_tokens).where(_a.user_id == user_id)
            if except_token_id is not None:
                stmt = stmt.where(_a.token_id != except_token_id)
            return conn.execute(stmt).rowcount

        return await self._db.run(txn)

    # -- refresh tokens ---------------------------------------------------------------
    async def create_token_pair(self, user_id: str, device_id: str, *,
                                access_valid_until_ms: int | None,
                                refresh_expiry_ts: int | None = None,
                                ultimate_session_expiry_ts: int | None = None,
                                ) -> TokenPair:
        """Issue an access token with a refresh token (login with ``refresh_token``)."""
        def txn(conn: Connection) -> TokenPair:
            return self._insert_pair(conn, user_id, device_id, access_valid_until_ms,
                                     refresh_expiry_ts, ultimate_session_expiry_ts)

        return await self._db.run(txn)

    def _insert_pair(self, conn: Connection, user_id: str, device_id: str,
                     access_valid_until_ms: int | None, refresh_expiry_ts: int | None,
                     ultimate: int | None) -> TokenPair:
        refresh, access = _new_token("rs_rt_"), _new_token("rs_at_")
        if ultimate is not None:
            access_valid_until_ms = ultimate if access_valid_until_ms is None \
                else min(access_valid_until_ms, ultimate)
        refresh_id = conn.execute(sa.insert(refresh_tokens).values(
            token_hash=hash_token(refresh), user_id=user_id, device_id=device_id,
            expiry_ts=refresh_expiry_ts, ultimate_session_expiry_ts=ultimate,
        ).returning(_r.token_id)).scalar_one()
        access_id = self._insert_access_token(conn, access, user_id, device_id,
                                              access_valid_until_ms, refresh_id)
        return TokenPair(access, refresh, access_id, refresh_id, access_valid_until_ms)

    async def rotate_refresh_token(self, refresh_token: str, *,
                                   access_valid_until_ms: int | None,
                                   refresh_expiry_ts: int | None = None,
                                   ) -> TokenPair | None:
        """Exchange a refresh token for a new pair; None if unknown or expired."""
        token_hash = hash_token(refresh_token)
        now = self._db.now_ms()

        def txn(conn: Connection) -> TokenPair | None:
            row = conn.execute(sa.select(refresh_tokens)
                               .where(_r.token_hash == token_hash)
                               .with_for_update()).first()
            if row is None:
                return None
            for deadline in (row.expiry_ts, row.ultimate_session_expiry_ts):
                if deadline is not None and deadline <= now:
                    return None
            if row.next_token_id is not None:
                # a retry: the pair handed out last time was never used; replace it
                conn.execute(sa.delete(refresh_tokens)
                             .where(_r.token_id == row.next_token_id))
            pair = self._insert_pair(conn, row.user_id, row.device_id,
                                     access_valid_until_ms, refresh_expiry_ts,
                                     row.ultimate_session_expiry_ts)
            conn.execute(sa.update(refresh_tokens).where(_r.token_id == row.token_id)
                         .values(next_token_id=pair.refresh_token_id))
            return pair

        return await self._db.run(txn)
