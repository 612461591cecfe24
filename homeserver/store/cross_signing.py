"""Cross-signing keys and the signatures users upload for each other's keys.

Spec: Client-Server API, "Cross-signing". Table ``e2e_cross_signing_keys`` holds each
user's master, self-signing and user-signing keys as uploaded (signed JSON);
``e2e_cross_signing_signatures`` holds signatures uploaded later through
``/keys/signatures/upload`` (a device signed by the self-signing key, the master key
signed by a device, another user's master key signed by the user-signing key), merged
into the signed object when keys are queried. ``target_key_id`` is a device ID or,
for a cross-signing key, its public key (unpadded base64), as in Synapse.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import outbox
from homeserver.store.database import Database
from homeserver.store.devices import mark_device_lists_changed
from homeserver.store.sql import JsonText, metadata, upsert

KEY_TYPES = ("master", "self_signing", "user_signing")

e2e_cross_signing_keys = sa.Table(
    "e2e_cross_signing_keys", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("key_type", sa.Text, primary_key=True),
    sa.Column("key_json", JsonText, nullable=False),
)

e2e_cross_signing_signatures = sa.Table(
    "e2e_cross_signing_signatures", metadata,
    sa.Column("signer_user_id", sa.Text, primary_key=True),
    sa.Column("signer_key_id", sa.Text, primary_key=True),
    sa.Column("target_user_id", sa.Text, primary_key=True),
    sa.Column("target_key_id", sa.Text, primary_key=True),
    sa.Column("signature", sa.Text, nullable=False),
    sa.Index(None, "target_user_id", "target_key_id"),
)

_k, _s = e2e_cross_signing_keys.c, e2e_cross_signing_signatures.c


@dataclasses.dataclass(frozen=True)
class Signature:
    """``signer_user_id``'s key ``signer_key_id`` signed ``target_key_id`` of
    ``target_user_id`` (a device ID, or a cross-signing public key)."""
    signer_user_id: str
    signer_key_id: str
    target_user_id: str
    target_key_id: str
    signature: str


class CrossSigning:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_keys(self, user_ids: Iterable[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """user → key type → the key as uploaded (no signatures merged in)."""
        users = sorted(set(user_ids))
        if not users:
            return {}

        def txn(conn: Connection) -> dict[str, dict[str, dict[str, Any]]]:
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for row in conn.execute(sa.select(e2e_cross_signing_keys)
                                    .where(_k.user_id.in_(users))):
                out.setdefault(row.user_id, {})[row.key_type] = row.key_json
            return out

        return await self._db.run(txn)

    async def set_keys(self, user_id: str, keys: Mapping[str, Mapping[str, Any]]) -> None:
        """Store new cross-signing keys (key type → key) and bump the device list."""
        unknown = set(keys) - set(KEY_TYPES)
        if unknown:
            raise ValueError(f"unknown cross-signing key types {sorted(unknown)}")
        now = self._db.now_ms()

        def txn(conn: Connection) -> None:
            for key_type, key in keys.items():
                upsert(conn, e2e_cross_signing_keys, dict(
                    user_id=user_id, key_type=key_type, key_json=dict(key)),
                    ["user_id", "key_type"])
            mark_device_lists_changed(conn, user_id, [None], now,
                                      edu_type=outbox.SIGNING_KEY_UPDATE)

        await self._db.run(txn)

    async def delete_user(self, user_id: str) -> bool:
        """Remove the user's cross-signing keys, the signatures they made and those
        made of their keys (account deactivation), bumping their device list in the
        same transaction when there were keys; True if there were."""
        now = self._db.now_ms()

        def txn(conn: Connection) -> bool:
            had = conn.execute(sa.delete(e2e_cross_signing_keys)
                               .where(_k.user_id == user_id)).rowcount > 0
            conn.execute(sa.delete(e2e_cross_signing_signatures).where(sa.or_(
                _s.signer_user_id == user_id, _s.target_user_id == user_id)))
            if had:
                mark_device_lists_changed(conn, user_id, [None], now,
                                          edu_type=outbox.SIGNING_KEY_UPDATE)
            return had

        return await self._db.run(txn)

    async def add_signatures(self, signatures: Sequence[Signature],
                             changed: Mapping[str, Sequence[str | None]]) -> None:
        """Store signatures and, in the same transaction, bump the device lists of
        ``changed`` (user → device IDs, ``None`` for their cross-signing keys)."""
        now = self._db.now_ms()

        def txn(conn: Connection) -> None:
            for s in signatures:
                upsert(conn, e2e_cross_signing_signatures, dataclasses.asdict(s),
                       ["signer_user_id", "signer_key_id", "target_user_id",
                        "target_key_id"])
            for user_id, device_ids in changed.items():
                if device_ids:
                    mark_device_lists_changed(conn, user_id, device_ids, now)

        await self._db.run(txn)

    async def signatures_of(self, targets: Iterable[tuple[str, str]],
                            ) -> dict[tuple[str, str], list[Signature]]:
        """(target user, target key ID) → the uploaded signatures of it."""
        wanted = sorted(set(targets))
        if not wanted:
            return {}

        def txn(conn: Connection) -> dict[tuple[str, str], list[Signature]]:
            out: dict[tuple[str, str], list[Signature]] = {}
            for user_id in sorted({u for u, _ in wanted}):
                key_ids = [k for u, k in wanted if u == user_id]
                rows = conn.execute(sa.select(e2e_cross_signing_signatures).where(
                    _s.target_user_id == user_id, _s.target_key_id.in_(key_ids)))
                for r in rows:
                    out.setdefault((r.target_user_id, r.target_key_id), []).append(
                        Signature(r.signer_user_id, r.signer_key_id, r.target_user_id,
                                  r.target_key_id, r.signature))
            return out

        return await self._db.run(txn)
