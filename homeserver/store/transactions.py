"""Client transaction IDs, so a retried ``PUT …/{txnId}`` is applied once.

Table ``client_txn_ids``: (user, scope, txn_id) → event_id. The spec scopes
transaction IDs to the device (v1.7+); for a token without a device (appservices),
pass ``"token:<token_id>"`` as the scope.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import insert_if_absent, metadata

client_txn_ids = sa.Table(
    "client_txn_ids", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("txn_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("created_ts", sa.BigInteger, nullable=False, index=True),
)

_c = client_txn_ids.c


class ClientTransactions:
    """Idempotency records for client sends."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_event_id(self, user_id: str, scope: str, txn_id: str) -> str | None:
        """The event a previous request with this txn ID created, or None."""
        def txn(conn: Connection) -> str | None:
            return conn.execute(sa.select(_c.event_id).where(
                _c.user_id == user_id, _c.scope == scope, _c.txn_id == txn_id)).scalar()

        return await self._db.run(txn)

    async def record(self, user_id: str, scope: str, txn_id: str, event_id: str) -> str:
        """Remember txn_id → event_id; returns the event ID that is now recorded.

        If another request recorded this txn ID first, its event ID is returned
        (the caller answers with that one).
        """
        values = dict(user_id=user_id, scope=scope, txn_id=txn_id, event_id=event_id,
                      created_ts=self._db.now_ms())

        def txn(conn: Connection) -> str:
            if insert_if_absent(conn, client_txn_ids, values,
                                ["user_id", "scope", "txn_id"]):
                return event_id
            return conn.execute(sa.select(_c.event_id).where(
                _c.user_id == user_id, _c.scope == scope,
                _c.txn_id == txn_id)).scalar_one()

        # written behind the send's answer (the room DB has the key with the event)
        return await self._db.run_behind(txn)

    async def purge_older_than(self, ts: int) -> int:
        """Forget transactions recorded before ``ts`` (ms); returns how many."""
        def txn(conn: Connection) -> int:
            return conn.execute(sa.delete(client_txn_ids)
                                .where(_c.created_ts < ts)).rowcount

        return await self._db.run(txn)
