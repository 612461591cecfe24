"""Which client transaction sent an event.

Table ``event_transactions``: event_id → (user, scope, txn_id). It is the reverse of
``client_txn_ids`` (:mod:`homeserver.store.transactions`, txn → event, used for
idempotency): ``/sync`` asks it for the ``unsigned.transaction_id`` it must show the
device that sent an event (spec: "Transaction identifiers"; ``ClientEvent.unsigned``).
Both rows are written in one transaction by :meth:`EventTransactions.record`.

``scope`` is the device ID, or ``"token:<token_id>"`` for a token without a device,
exactly as in ``client_txn_ids``.
"""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import insert_if_absent, metadata
from homeserver.store.transactions import client_txn_ids

event_transactions = sa.Table(
    "event_transactions", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("txn_id", sa.Text, nullable=False),
    sa.Column("created_ts", sa.BigInteger, nullable=False, index=True),
)

_e, _c = event_transactions.c, client_txn_ids.c


class EventTransactions:
    """Client transaction records for room events, both directions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, user_id: str, scope: str, txn_key: str, txn_id: str,
                     event_id: str) -> str:
        """Remember that ``txn_key`` (the idempotency key: endpoint and txn ID) of this
        device produced ``event_id``, whose client ``transaction_id`` is ``txn_id``.

        Returns the event ID now recorded for ``txn_key`` (an earlier one wins).
        """
        now = self._db.now_ms()

        def txn(conn: Connection) -> str:
            insert_if_absent(conn, event_transactions, dict(
                event_id=event_id, user_id=user_id, scope=scope, txn_id=txn_id,
                created_ts=now), ["event_id"])
            if insert_if_absent(conn, client_txn_ids, dict(
                    user_id=user_id, scope=scope, txn_id=txn_key, event_id=event_id,
                    created_ts=now), ["user_id", "scope", "txn_id"]):
                return event_id
            return conn.execute(sa.select(_c.event_id).where(
                _c.user_id == user_id, _c.scope == scope, _c.txn_id == txn_key)).scalar_one()

        return await self._db.run_batched(txn)

    async def transaction_ids(self, event_ids: Iterable[str], user_id: str,
                              scope: str) -> dict[str, str]:
        """event_id → txn_id for those of ``event_ids`` this user's ``scope`` sent."""
        wanted = list(set(event_ids))
        if not wanted:
            return {}

        def txn(conn: Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(wanted), 500):
                rows = conn.execute(sa.select(_e.event_id, _e.txn_id).where(
                    _e.event_id.in_(wanted[start:start + 500]), _e.user_id == user_id,
                    _e.scope == scope))
                found.update((r.event_id, r.txn_id) for r in rows)
            return found

        return await self._db.run(txn)

    async def purge_older_than(self, ts: int) -> int:
        """Forget reverse records made before ``ts`` (ms); returns how many."""
        def txn(conn: Connection) -> int:
            return conn.execute(sa.delete(event_transactions)
                                .where(_e.created_ts < ts)).rowcount

        return await self._db.run(txn)
