"""Inbound federation transactions, so a retried ``PUT /send/{txnId}`` is answered the
same without being processed again (spec: Server-Server API, "Transactions": "the
transaction ID … is used … to ensure idempotency").

Table ``federation_inbound_txns``: (origin, txn_id) → the JSON response we gave.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import insert_if_absent, metadata

federation_inbound_txns = sa.Table(
    "federation_inbound_txns", metadata,
    sa.Column("origin", sa.Text, primary_key=True),
    sa.Column("txn_id", sa.Text, primary_key=True),
    sa.Column("response_json", sa.Text, nullable=False),
    sa.Column("received_ts", sa.BigInteger, nullable=False, index=True),
)

_c = federation_inbound_txns.c


class InboundTransactions:
    """The responses to transactions other servers sent us."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get_response(self, origin: str, txn_id: str) -> Any | None:
        """The response recorded for this transaction, or None if it is new."""
        def txn(conn: Connection) -> str | None:
            return conn.execute(sa.select(_c.response_json).where(
                _c.origin == origin, _c.txn_id == txn_id)).scalar()

        found = await self._db.run(txn)
        return None if found is None else json.loads(found)

    async def record(self, origin: str, txn_id: str, response: Any) -> None:
        """Remember the response (the first one recorded wins)."""
        values = dict(origin=origin, txn_id=txn_id, response_json=json.dumps(response),
                      received_ts=self._db.now_ms())

        def txn(conn: Connection) -> None:
            insert_if_absent(conn, federation_inbound_txns, values, ["origin", "txn_id"])

        await self._db.run(txn)

    async def purge_older_than(self, ts: int) -> int:
        """Forget transactions received before ``ts`` (ms); returns how many."""
        def txn(conn: Connection) -> int:
            return conn.execute(sa.delete(federation_inbound_txns)
                                .where(_c.received_ts < ts)).rowcount

        return await self._db.run(txn)
