"""The federation outbox: what other servers must be told about besides room events.

Room events reach other servers through the room stream (``store/streams.py``): an
event is durable in its room, then appended to a global positioned log that a
federation sender reads from its last position. Device-list changes, cross-signing key
changes and to-device messages for remote users take the same shape here: each is
appended, *in the transaction that makes the change*, to ``federation_outbox`` on its
own stream position (``positions.OUTBOX``). The federation sender
(``federation/sender.py``) reads entries in ``(since, upto]``, turns them into EDUs
(``m.device_list_update``, ``m.signing_key_update``, ``m.direct_to_device``,
``m.receipt``; spec: Server-Server API, "Device Management", "Send-to-device
messaging", "Receipts"), and deletes what every destination has acknowledged. Public
read receipts of local users are appended by the sender's receipt observer
(:meth:`FederationOutbox.add`) right after the receipt is stored.

``destination`` is the server for entries addressed to one (to-device); it is NULL for
entries every server sharing a room with ``user_id`` must get (device lists, signing
keys), resolved by the sender when it reads them, as it does for room events; a NULL
``m.receipt`` goes to the servers in its room.

Lock order: a writer takes its own stream's row (device lists, to-device) first and
this stream's row last, so two writers never wait on each other in a cycle.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import positions
from homeserver.store.database import Database
from homeserver.store.sql import JsonText, Position, metadata

federation_outbox = sa.Table(
    "federation_outbox", metadata,
    sa.Column("pos", Position, primary_key=True, autoincrement=True),
    sa.Column("edu_type", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("destination", sa.Text, nullable=True),
    sa.Column("content", JsonText, nullable=False),
    sa.Column("created_ts", sa.BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

_o = federation_outbox.c

DEVICE_LIST_UPDATE = "m.device_list_update"
SIGNING_KEY_UPDATE = "m.signing_key_update"
RECEIPT = "m.receipt"
DIRECT_TO_DEVICE = "m.direct_to_device"


@dataclasses.dataclass(frozen=True)
class OutboxEntry:
    """One thing to tell other servers (see the module docstring for ``destination``)."""
    edu_type: str
    user_id: str
    content: Mapping[str, Any]
    destination: str | None = None
    pos: int = 0
    #: when it was appended (ms); 0 for one not yet appended
    created_ts: int = 0


def append(conn: Connection, entries: Sequence[OutboxEntry], now_ms: int) -> int:
    """Append ``entries`` inside the caller's transaction; returns the last position.

    Call it after taking the caller's own stream lock (see "Lock order" above).
    """
    if not entries:
        return 0
    positions.lock_stream(conn, positions.OUTBOX)
    pos = 0
    for e in entries:
        pos = conn.execute(sa.insert(federation_outbox).values(
            edu_type=e.edu_type, user_id=e.user_id, destination=e.destination,
            content=dict(e.content), created_ts=now_ms).returning(_o.pos)).scalar_one()
    positions.advance(conn, positions.OUTBOX, pos)
    return pos


class FederationOutbox:
    """The reading side, for the federation sender (and tests)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def entries(self, since: int, upto: int | None = None,
                      limit: int = 1000) -> list[OutboxEntry]:
        """Entries at positions in ``(since, upto]``, oldest first."""
        def txn(conn: Connection) -> list[OutboxEntry]:
            end = positions.read_position(conn, positions.OUTBOX) \
                if upto is None else upto
            rows = conn.execute(sa.select(federation_outbox).where(
                _o.pos > since, _o.pos <= end).order_by(_o.pos).limit(limit))
            return [OutboxEntry(r.edu_type, r.user_id, r.content, r.destination, r.pos,
                                r.created_ts) for r in rows]

        return await self._db.run(txn)

    async def add(self, entries: Sequence[OutboxEntry], now_ms: int) -> int:
        """Append ``entries`` in a transaction of their own (for changes that are not
        written to the global DB themselves, e.g. receipts sent on to other servers
        by the federation sender); returns the last position."""
        return await self._db.run(lambda conn: append(conn, entries, now_ms))

    async def expire(self, before_ts: int,
                     keep_newest_of: Sequence[str] = (DEVICE_LIST_UPDATE,
                                                      SIGNING_KEY_UPDATE)) -> int:
        """Forget entries appended before ``before_ts`` (ms) that some destination
        that is down has still not had, so a dead server cannot make the table grow
        for ever; returns how many. Of the ``keep_newest_of`` types each user's newest
        entry stays: a server that comes back must still hear that the user's devices
        changed (the update's ``prev_id`` it lacks makes it fetch the whole list)."""
        newest = sa.select(sa.func.max(_o.pos)).group_by(_o.edu_type, _o.user_id)
        return await self._db.run(lambda conn: conn.execute(
            sa.delete(federation_outbox).where(
                _o.created_ts < before_ts,
                sa.or_(_o.edu_type.not_in(list(keep_newest_of)),
                       _o.pos.not_in(newest)))).rowcount)

    async def delete_upto(self, pos: int) -> int:
        """Forget entries at positions <= ``pos`` (sent everywhere); returns how many."""
        return await self._db.run(lambda conn: conn.execute(
            sa.delete(federation_outbox).where(_o.pos <= pos)).rowcount)
