"""Stream positions: one monotonic counter per stream, kept in ``stream_positions``.

Each stream (DESIGN.md §4, "Sync tokens") has a row here holding the highest
position written so far. Writers go through this row inside their transaction:

* :func:`lock_stream` takes the row lock first (``UPDATE … SET pos = pos``) and
  :func:`advance` records the highest position the transaction wrote;
* :func:`next_position` allocates from the counter itself (for tables that are
  upserted, where an autoincrement column cannot carry the position).

Because the row stays locked until the writer commits, writers of one stream commit
in the order they allocated positions, even with several processes sharing
PostgreSQL (where sequences alone hand out numbers in allocation order, not commit
order, so a reader could see position 10 before 9 commits and skip 9 forever). The
cost: writes to one stream are serialised; transactions are short, so this is cheap.
A reader bounds its query by :func:`read_position` and never sees a gap fill later.

Rule: a transaction touches at most one stream's row, so there is no lock ordering to
get wrong, with one exception: a change other servers must hear of also appends to the
federation outbox (``store/outbox.py``) in its own transaction, and always takes the
outbox's row last, after its own stream's. The counter also survives deletes (``device_inbox`` rows are deleted, yet
the to-device position never goes backwards).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.sql import driver_execute, metadata

ROOM = "room"
ACCOUNT_DATA = "account_data"
RECEIPTS = "receipts"
PRESENCE = "presence"
TO_DEVICE = "to_device"
DEVICE_LISTS = "device_lists"
#: what other servers must be told besides room events (store/outbox.py); not in a
#: sync token
OUTBOX = "federation_outbox"

#: every stream: those of a sync token, in its order, then the outbox
STREAMS = (ROOM, ACCOUNT_DATA, RECEIPTS, PRESENCE, TO_DEVICE, DEVICE_LISTS, OUTBOX)

stream_positions = sa.Table(
    "stream_positions", metadata,
    sa.Column("stream_name", sa.Text, primary_key=True),
    sa.Column("pos", sa.BigInteger, nullable=False),
)

_t = stream_positions.c


class UnknownStream(KeyError):
    """A stream name that is not in :data:`STREAMS` (or not migrated yet)."""


def _one(conn: Connection, stmt: sa.Executable, stream: str) -> int:
    pos = conn.execute(stmt).scalar()
    if pos is None:
        raise UnknownStream(stream)
    return int(pos)


# run on the driver (sql.driver_execute): every sent event takes both
_LOCK = "UPDATE stream_positions SET pos = pos WHERE stream_name = ? RETURNING pos"
_ADVANCE = "UPDATE stream_positions SET pos = ? WHERE stream_name = ? AND pos < ?"


def lock_stream(conn: Connection, stream: str) -> int:
    """Lock ``stream`` until the transaction ends; returns its current position."""
    _, row = driver_execute(conn, _LOCK, (stream,))
    if row is None:
        raise UnknownStream(stream)
    return int(row[0])


def next_position(conn: Connection, stream: str) -> int:
    """Allocate the next position of ``stream`` (locks it until commit)."""
    stmt = (sa.update(stream_positions).where(_t.stream_name == stream)
            .values(pos=_t.pos + 1).returning(_t.pos))
    pos = _one(conn, stmt, stream)
    _note_advance(conn, stream, pos)
    return pos


def advance(conn: Connection, stream: str, pos: int) -> None:
    """Record that this transaction wrote ``pos`` (call after :func:`lock_stream`)."""
    driver_execute(conn, _ADVANCE, (pos, stream, pos))
    _note_advance(conn, stream, pos)


#: key in ``Connection.info`` under which a transaction collects the positions it
#: wrote; ``Database.run`` hands them to its listeners once the transaction committed
ADVANCED = "roomserver.advanced_positions"


def _note_advance(conn: Connection, stream: str, pos: int) -> None:
    advanced = conn.info.setdefault(ADVANCED, {})
    advanced[stream] = max(pos, advanced.get(stream, pos))


def read_position(conn: Connection, stream: str) -> int:
    """The highest committed position of ``stream``."""
    stmt = sa.select(_t.pos).where(_t.stream_name == stream)
    return _one(conn, stmt, stream)


def read_all_positions(conn: Connection) -> dict[str, int]:
    """Every stream's position, read in one statement (one consistent snapshot)."""
    return {row.stream_name: int(row.pos)
            for row in conn.execute(sa.select(_t.stream_name, _t.pos))}
