"""Client transaction IDs of to-device sends, so a retried ``PUT …/{txnId}`` is applied
once (a room event's key is kept by its room, with the event).

Table ``client_txn_ids``: (user, scope, txn_id) → event_id. The spec scopes
transaction IDs to the device (v1.7+); for a token without a device (appservices),
pass ``"token:<token_id>"`` as the scope.
"""

from __future__ import annotations

import sqlalchemy as sa

from homeserver.store.sql import metadata

client_txn_ids = sa.Table(
    "client_txn_ids", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("txn_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("created_ts", sa.BigInteger, nullable=False, index=True),
)
