"""Devices' end-to-end keys: identity keys, one-time keys and fallback keys.

Spec: Client-Server API, "End-to-End Encryption", "Key management API". Tables
``e2e_device_keys`` (a device's signed identity keys, kept as uploaded),
``e2e_one_time_keys`` (handed out once each by ``/keys/claim``) and
``e2e_fallback_keys`` (one per algorithm, handed out when the one-time keys run out
and then marked used, never deleted by a claim). The server never decrypts anything;
it stores and hands out what clients signed.

A change of a device's identity keys bumps the user's device list (same transaction,
``devices.mark_device_lists_changed``), so other users' syncs learn of it and other
servers will (the federation outbox). One-time and fallback keys are not part of the
device list.

Each device's key counts are asked for by every /sync; they are kept in memory and
invalidated by every write here (one process writes; see the README on caches).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.errors import InvalidParam
from homeserver.store.database import Database
from homeserver.store.devices import mark_device_lists_changed, user_devices
from homeserver.store.sql import JsonText, canonical_json_text, metadata, upsert

e2e_device_keys = sa.Table(
    "e2e_device_keys", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("key_json", JsonText, nullable=False),
)

e2e_one_time_keys = sa.Table(
    "e2e_one_time_keys", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("algorithm", sa.Text, primary_key=True),
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("key_json", JsonText, nullable=False),
)

e2e_fallback_keys = sa.Table(
    "e2e_fallback_keys", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("device_id", sa.Text, primary_key=True),
    sa.Column("algorithm", sa.Text, primary_key=True),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("key_json", JsonText, nullable=False),
    sa.Column("used", sa.Boolean, nullable=False),
)

_dk, _otk, _fb = e2e_device_keys.c, e2e_one_time_keys.c, e2e_fallback_keys.c

_CACHE_SIZE = 50_000


@dataclasses.dataclass(frozen=True)
class KeyCounts:
    """What /sync and ``/keys/upload`` report about a device's spare keys."""
    one_time_keys: dict[str, int]
    unused_fallback_key_types: list[str]


def split_key_id(full_id: str) -> tuple[str, str]:
    """``"signed_curve25519:AAAAHQ"`` → ``("signed_curve25519", "AAAAHQ")``."""
    algorithm, sep, key_id = full_id.partition(":")
    if not sep or not algorithm or not key_id:
        raise InvalidParam(f"key ID {full_id!r} is not <algorithm>:<key id>")
    return algorithm, key_id


def _same(a: Any, b: Any) -> bool:
    return canonical_json_text(a) == canonical_json_text(b)


class E2eKeys:
    """Per-device identity, one-time and fallback keys."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._counts: collections.OrderedDict[tuple[str, str], KeyCounts] = \
            collections.OrderedDict()
        self._generation: dict[tuple[str, str], int] = {}

    def _invalidate(self, keys: Iterable[tuple[str, str]]) -> None:
        for key in keys:
            self._counts.pop(key, None)
            self._generation[key] = self._generation.get(key, 0) + 1

    # -- upload -----------------------------------------------------------------------
    async def upload(self, user_id: str, device_id: str,
                     device_keys: Mapping[str, Any] | None,
                     one_time_keys: Mapping[str, Any],
                     fallback_keys: Mapping[str, Any]) -> tuple[KeyCounts, bool]:
        """Store what a device uploaded, all or nothing; returns its key counts and
        whether its identity keys changed (then its user's device list did).

        A one-time key ID already stored with different content is 400
        M_INVALID_PARAM (as Synapse); the same key again is ignored. A fallback key
        replaces the algorithm's previous one (and is unused again) unless it is the
        same key.
        """
        otks = [(*split_key_id(k), v) for k, v in sorted(one_time_keys.items())]
        fallbacks = [(*split_key_id(k), v) for k, v in sorted(fallback_keys.items())]
        now = self._db.now_ms()

        def txn(conn: Connection) -> tuple[KeyCounts, bool]:
            changed = False
            if device_keys is not None:
                old = conn.execute(sa.select(_dk.key_json).where(
                    _dk.user_id == user_id, _dk.device_id == device_id)).scalar()
                if old is None or not _same(old, device_keys):
                    upsert(conn, e2e_device_keys, dict(
                        user_id=user_id, device_id=device_id, key_json=dict(device_keys)),
                        ["user_id", "device_id"])
                    mark_device_lists_changed(conn, user_id, [device_id], now)
                    changed = True
            for algorithm, key_id, key in otks:
                old = conn.execute(sa.select(_otk.key_json).where(
                    _otk.user_id == user_id, _otk.device_id == device_id,
                    _otk.algorithm == algorithm, _otk.key_id == key_id)).first()
                if old is not None:
                    if not _same(old.key_json, key):
                        raise InvalidParam(
                            f"One time key {algorithm}:{key_id} already exists")
                    continue
                conn.execute(sa.insert(e2e_one_time_keys).values(
                    user_id=user_id, device_id=device_id, algorithm=algorithm,
                    key_id=key_id, key_json=key))
            for algorithm, key_id, key in fallbacks:
                old = conn.execute(sa.select(_fb.key_id, _fb.key_json).where(
                    _fb.user_id == user_id, _fb.device_id == device_id,
                    _fb.algorithm == algorithm)).first()
                if old is not None and old.key_id == key_id and _same(old.key_json, key):
                    continue  # a re-upload keeps the used flag
                upsert(conn, e2e_fallback_keys, dict(
                    user_id=user_id, device_id=device_id, algorithm=algorithm,
                    key_id=key_id, key_json=key, used=False),
                    ["user_id", "device_id", "algorithm"])
            return _counts(conn, user_id, device_id), changed

        try:
            return await self._db.run(txn)
        finally:
            self._invalidate([(user_id, device_id)])

    # -- counts (every /sync) ---------------------------------------------------------
    async def key_counts(self, user_id: str, device_id: str) -> KeyCounts:
        """One-time keys left per algorithm and the unused fallback key algorithms."""
        key = (user_id, device_id)
        cached = self._counts.get(key)
        if cached is not None:
            self._counts.move_to_end(key)
            return cached
        generation = self._generation.get(key, 0)
        counts = await self._db.run(_counts, user_id, device_id)
        if self._generation.get(key, 0) == generation:  # no write meanwhile
            self._counts[key] = counts
            while len(self._counts) > _CACHE_SIZE:
                self._counts.popitem(last=False)
        return counts

    # -- query and claim --------------------------------------------------------------
    async def get_device_keys(self, wanted: Mapping[str, Iterable[str] | None],
                              ) -> dict[str, dict[str, dict[str, Any]]]:
        """user → device → stored identity keys, with ``unsigned.device_display_name``.

        ``wanted`` maps users to device IDs (``None``: all their devices). Devices
        without uploaded keys (or deleted since) are left out.
        """
        requests = {u: (None if d is None else sorted(set(d))) for u, d in wanted.items()}

        def txn(conn: Connection) -> dict[str, dict[str, dict[str, Any]]]:
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for user_id, device_ids in requests.items():
                d = user_devices.c
                stmt = (sa.select(_dk.device_id, _dk.key_json, d.display_name)
                        .join(user_devices, sa.and_(d.user_id == _dk.user_id,
                                                    d.device_id == _dk.device_id))
                        .where(_dk.user_id == user_id))
                if device_ids is not None:
                    stmt = stmt.where(_dk.device_id.in_(device_ids))
                for row in conn.execute(stmt.order_by(_dk.device_id)):
                    keys = dict(row.key_json)
                    unsigned = keys.get("unsigned")
                    unsigned = dict(unsigned) if isinstance(unsigned, dict) else {}
                    if row.display_name is not None:
                        unsigned["device_display_name"] = row.display_name
                    if unsigned:
                        keys["unsigned"] = unsigned
                    out.setdefault(user_id, {})[row.device_id] = keys
            return out

        return await self._db.run(txn)

    async def claim(self, wanted: Iterable[tuple[str, str, str]],
                    ) -> dict[str, dict[str, dict[str, Any]]]:
        """For each ``(user, device, algorithm)``: a one-time key, removed as it is
        handed out, else the algorithm's fallback key, marked used (spec: "the server
        should return the fallback key ... and mark it as used").

        Returns user → device → ``{"<algorithm>:<key id>": key}``; devices with
        neither are left out.
        """
        requests = list(wanted)

        def txn(conn: Connection) -> dict[str, dict[str, dict[str, Any]]]:
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for user_id, device_id, algorithm in requests:
                found = _take_one_time_key(conn, user_id, device_id, algorithm)
                if found is None:
                    found = _use_fallback_key(conn, user_id, device_id, algorithm)
                if found is not None:
                    out.setdefault(user_id, {}).setdefault(device_id, {})[
                        f"{algorithm}:{found[0]}"] = found[1]
            return out

        try:
            return await self._db.run(txn)
        finally:
            self._invalidate({(u, d) for u, d, _ in requests})

    # -- deletion ---------------------------------------------------------------------
    async def delete_user(self, user_id: str) -> None:
        """Every key of every device of the user, even of devices already gone
        (account deactivation)."""
        def txn(conn: Connection) -> list[str]:
            ids: set[str] = set()
            for table in (e2e_device_keys, e2e_one_time_keys, e2e_fallback_keys):
                ids.update(conn.execute(sa.select(table.c.device_id).where(
                    table.c.user_id == user_id)).scalars())
                conn.execute(sa.delete(table).where(table.c.user_id == user_id))
            return sorted(ids)

        try:
            ids = await self._db.run(txn)
        finally:
            self._invalidate({k for k in self._counts if k[0] == user_id})
        self._invalidate((user_id, d) for d in ids)

    async def delete_devices(self, user_id: str, device_ids: Iterable[str]) -> None:
        """Every key of deleted devices goes with them."""
        ids = sorted(set(device_ids))

        def txn(conn: Connection) -> None:
            for table in (e2e_device_keys, e2e_one_time_keys, e2e_fallback_keys):
                conn.execute(sa.delete(table).where(
                    table.c.user_id == user_id, table.c.device_id.in_(ids)))

        try:
            await self._db.run(txn)
        finally:
            self._invalidate((user_id, d) for d in ids)


def _counts(conn: Connection, user_id: str, device_id: str) -> KeyCounts:
    rows = conn.execute(sa.select(_otk.algorithm, sa.func.count()).where(
        _otk.user_id == user_id, _otk.device_id == device_id).group_by(_otk.algorithm))
    counts = {r[0]: int(r[1]) for r in rows}
    # clients read a missing signed_curve25519 count as "unknown" (Synapse sends 0)
    counts.setdefault("signed_curve25519", 0)
    fallback = sorted(conn.execute(sa.select(_fb.algorithm).where(
        _fb.user_id == user_id, _fb.device_id == device_id,
        _fb.used == sa.false())).scalars())
    return KeyCounts(counts, fallback)


def _take_one_time_key(conn: Connection, user_id: str, device_id: str,
                       algorithm: str) -> tuple[str, Any] | None:
    where = (_otk.user_id == user_id, _otk.device_id == device_id,
             _otk.algorithm == algorithm)
    for _ in range(5):
        row = conn.execute(sa.select(_otk.key_id, _otk.key_json).where(*where)
                           .order_by(_otk.key_id).limit(1)).first()
        if row is None:
            return None
        # a concurrent claim (PostgreSQL, several threads) may have taken it first
        if conn.execute(sa.delete(e2e_one_time_keys).where(
                *where, _otk.key_id == row.key_id)).rowcount == 1:
            return row.key_id, row.key_json
    return None


def _use_fallback_key(conn: Connection, user_id: str, device_id: str,
                      algorithm: str) -> tuple[str, Any] | None:
    where = (_fb.user_id == user_id, _fb.device_id == device_id, _fb.algorithm == algorithm)
    row = conn.execute(sa.select(_fb.key_id, _fb.key_json).where(*where)).first()
    if row is None:
        return None
    conn.execute(sa.update(e2e_fallback_keys).where(*where).values(used=True))
    return row.key_id, row.key_json
