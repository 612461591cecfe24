"""To-device messages: one inbox per (user, device), on the to-device stream.

Table ``device_inbox``: messages wait until the device's /sync acknowledges them (by
syncing with a later token), then :meth:`ToDevice.delete_messages_upto` drops them.
``device_federation_inbox`` remembers remote ``message_id``s so a retried EDU is
delivered once.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import outbox, positions
from homeserver.store.database import Database
from homeserver.store.sql import JsonText, Position, insert_if_absent, metadata
from homeserver.store.transactions import client_txn_ids

device_inbox = sa.Table(
    "device_inbox", metadata,
    sa.Column("stream_id", Position, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("message", JsonText, nullable=False),
    sa.Index(None, "user_id", "device_id", "stream_id"),
    sqlite_autoincrement=True,
)

device_federation_inbox = sa.Table(
    "device_federation_inbox", metadata,
    sa.Column("origin", sa.Text, primary_key=True),
    sa.Column("message_id", sa.Text, primary_key=True),
    sa.Column("received_ts", sa.BigInteger, nullable=False, index=True),
)

_c = device_inbox.c

#: (user_id, device_id, message) where message is ``{"sender", "type", "content"}``
Delivery = tuple[str, str, Mapping[str, Any]]


class ToDevice:
    """Per-device inboxes of to-device messages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_messages(self, deliveries: Sequence[Delivery]) -> int:
        """Queue messages for concrete devices (the caller expands ``"*"``).

        Returns the stream position after the last message (the current position
        when there was nothing to add).
        """
        rows = [dict(user_id=u, device_id=d, message=dict(m)) for u, d, m in deliveries]

        def txn(conn: Connection) -> int:
            if not rows:
                return positions.read_position(conn, positions.TO_DEVICE)
            positions.lock_stream(conn, positions.TO_DEVICE)
            pos = 0
            for row in rows:
                pos = conn.execute(sa.insert(device_inbox).values(**row)
                                   .returning(_c.stream_id)).scalar_one()
            positions.advance(conn, positions.TO_DEVICE, pos)
            return pos

        return await self._db.run(txn)

    async def send_once(self, txn: tuple[str, str, str], marker: str,
                        deliveries: Sequence[Delivery],
                        remote: Sequence[outbox.OutboxEntry] = ()) -> bool:
        """Queue a client's to-device transaction exactly once, in one transaction:
        the local deliveries, the messages for other servers (federation outbox) and
        the record of ``txn`` = (user, scope, txn ID) in ``client_txn_ids``.

        False (and nothing queued) if that transaction was recorded before: a retry,
        or a concurrent duplicate that committed first.
        """
        user_id, scope, txn_id = txn
        record = dict(user_id=user_id, scope=scope, txn_id=txn_id, event_id=marker,
                      created_ts=self._db.now_ms())
        rows = [dict(user_id=u, device_id=d, message=dict(m)) for u, d, m in deliveries]
        now = self._db.now_ms()

        def run(conn: Connection) -> bool:
            if rows:
                # our stream's lock first (see positions.py): a duplicate waits here
                positions.lock_stream(conn, positions.TO_DEVICE)
            if not insert_if_absent(conn, client_txn_ids, record,
                                    ["user_id", "scope", "txn_id"]):
                return False
            pos = 0
            for row in rows:
                pos = conn.execute(sa.insert(device_inbox).values(**row)
                                   .returning(_c.stream_id)).scalar_one()
            if rows:
                positions.advance(conn, positions.TO_DEVICE, pos)
            outbox.append(conn, remote, now)
            return True

        return await self._db.run(run)

    async def get_messages(self, user_id: str, device_id: str, since: int,
                           upto: int | None = None, limit: int = 100,
                           ) -> tuple[list[dict[str, Any]], int]:
        """Messages for the device in (since, upto], oldest first, at most ``limit``.

        Returns ``(messages, pos)``: ``pos`` is how far this answer covers (the
        last message's position if ``limit`` was hit, else ``upto``/current).
        """
        def txn(conn: Connection) -> tuple[list[dict[str, Any]], int]:
            end = positions.read_position(conn, positions.TO_DEVICE) \
                if upto is None else upto
            rows = list(conn.execute(
                sa.select(_c.stream_id, _c.message).where(
                    _c.user_id == user_id, _c.device_id == device_id,
                    _c.stream_id > since, _c.stream_id <= end)
                .order_by(_c.stream_id).limit(limit)))
            if len(rows) == limit and rows:
                end = rows[-1].stream_id
            return [r.message for r in rows], end

        return await self._db.run(txn)

    async def delete_messages_upto(self, user_id: str, device_id: str, upto: int) -> int:
        """Drop the device's messages at positions <= ``upto``; returns how many."""
        def txn(conn: Connection) -> int:
            return conn.execute(sa.delete(device_inbox).where(
                _c.user_id == user_id, _c.device_id == device_id,
                _c.stream_id <= upto)).rowcount

        return await self._db.run(txn)

    async def delete_device_inbox(self, user_id: str, device_id: str) -> int:
        """Drop every message for a deleted device; returns how many."""
        def txn(conn: Connection) -> int:
            return conn.execute(sa.delete(device_inbox).where(
                _c.user_id == user_id, _c.device_id == device_id)).rowcount

        return await self._db.run(txn)

    async def devices_with_messages(self, since: int, upto: int | None = None,
                                    ) -> set[tuple[str, str]]:
        """(user_id, device_id) pairs with messages in (since, upto] (wakes /sync)."""
        def txn(conn: Connection) -> set[tuple[str, str]]:
            end = positions.read_position(conn, positions.TO_DEVICE) \
                if upto is None else upto
            rows = conn.execute(sa.select(_c.user_id, _c.device_id).distinct().where(
                _c.stream_id > since, _c.stream_id <= end))
            return {(r.user_id, r.device_id) for r in rows}

        return await self._db.run(txn)

    async def mark_federation_message_seen(self, origin: str, message_id: str) -> bool:
        """Record a remote to-device ``message_id``; False if seen before (drop it)."""
        values = dict(origin=origin, message_id=message_id,
                      received_ts=self._db.now_ms())
        return await self._db.run(lambda conn: insert_if_absent(
            conn, device_federation_inbox, values, ["origin", "message_id"]))

    async def add_federation_messages(self, origin: str, message_id: str,
                                      deliveries: Sequence[Delivery]) -> int | None:
        """Queue a remote server's ``m.direct_to_device`` messages once: the record of
        (``origin``, ``message_id``) and the deliveries commit together, so a resent
        EDU (in a retried or in a new transaction) is dropped, and a crash between the
        two can neither lose the messages nor mark them seen.

        Returns the stream position after the last message, or None if that
        ``message_id`` from ``origin`` was queued before.
        """
        record = dict(origin=origin, message_id=message_id,
                      received_ts=self._db.now_ms())
        rows = [dict(user_id=u, device_id=d, message=dict(m)) for u, d, m in deliveries]

        def txn(conn: Connection) -> int | None:
            # our stream's lock first (see positions.py): a duplicate waits here
            pos = positions.lock_stream(conn, positions.TO_DEVICE)
            if not insert_if_absent(conn, device_federation_inbox, record,
                                    ["origin", "message_id"]):
                return None
            for row in rows:
                pos = conn.execute(sa.insert(device_inbox).values(**row)
                                   .returning(_c.stream_id)).scalar_one()
            if rows:
                positions.advance(conn, positions.TO_DEVICE, pos)
            return pos

        return await self._db.run(txn)

    async def purge_federation_message_ids(self, older_than_ts: int) -> int:
        """Forget remote message IDs received before ``older_than_ts``."""
        t = device_federation_inbox.c

        def txn(conn: Connection) -> int:
            return conn.execute(sa.delete(device_federation_inbox)
                                .where(t.received_ts < older_than_ts)).rowcount

        return await self._db.run(txn)
