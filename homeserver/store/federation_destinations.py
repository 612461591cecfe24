"""Durable progress of the outbound federation sender (federation/sender.py).

``federation_sender_positions`` holds, per stream the sender reads (the room stream,
the federation outbox), how far its reader has dispatched entries to destinations.
``federation_destinations`` holds, per remote server, how far along each stream it
has acknowledged delivery (``room_stream_pos``, ``outbox_pos``) and its retry
schedule. A destination behind the reader at start-up catches up from its own
position, so a restart or an outage never loses an event (spec: Server-Server API,
"Transactions"; DESIGN.md §5).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import metadata, upsert

federation_sender_positions = sa.Table(
    "federation_sender_positions", metadata,
    sa.Column("stream_name", sa.Text, primary_key=True),
    sa.Column("pos", sa.BigInteger, nullable=False),
)

federation_destinations = sa.Table(
    "federation_destinations", metadata,
    sa.Column("destination", sa.Text, primary_key=True),
    sa.Column("room_stream_pos", sa.BigInteger, nullable=False),
    sa.Column("outbox_pos", sa.BigInteger, nullable=False),
    sa.Column("retry_last_ts", sa.BigInteger, nullable=False),
    sa.Column("retry_interval_ms", sa.BigInteger, nullable=False),
)

_p, _d = federation_sender_positions.c, federation_destinations.c

#: the streams the sender reads, and the column holding a destination's progress on each
ROOM_STREAM = "room"
OUTBOX_STREAM = "federation_outbox"
_COLUMNS = {ROOM_STREAM: "room_stream_pos", OUTBOX_STREAM: "outbox_pos"}
STREAMS = tuple(_COLUMNS)


@dataclasses.dataclass(frozen=True)
class DestinationProgress:
    destination: str
    acked: Mapping[str, int]          # stream name → acknowledged position
    retry_last_ts: int = 0
    retry_interval_ms: int = 0


class FederationDestinations:
    """Reads and writes the sender's durable progress."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> tuple[dict[str, int], dict[str, DestinationProgress]]:
        """The reader positions (stream → pos; absent: never read) and every
        destination's progress."""
        def txn(conn: Connection):
            readers = {r.stream_name: r.pos
                       for r in conn.execute(sa.select(federation_sender_positions))}
            dests = {r.destination: DestinationProgress(
                r.destination, {s: getattr(r, c) for s, c in _COLUMNS.items()},
                r.retry_last_ts, r.retry_interval_ms)
                for r in conn.execute(sa.select(federation_destinations))}
            return readers, dests

        return await self._db.run(txn)

    async def advance_reader(self, stream: str, pos: int,
                             new: Iterable[DestinationProgress] = (),
                             caught_up: Iterable[str] = ()) -> None:
        """In one transaction: add the destinations first seen in this chunk, move
        ``caught_up`` destinations (nothing pending on ``stream``) to ``pos``, and
        record that the reader dispatched everything up to ``pos``."""
        column = _COLUMNS[stream]
        rows = [dict(destination=d.destination, retry_last_ts=d.retry_last_ts,
                     retry_interval_ms=d.retry_interval_ms,
                     **{_COLUMNS[s]: d.acked[s] for s in STREAMS}) for d in new]
        idle = sorted(set(caught_up))

        def txn(conn: Connection) -> None:
            for row in rows:
                upsert(conn, federation_destinations, row, ["destination"], update=[])
            for start in range(0, len(idle), 500):
                conn.execute(sa.update(federation_destinations)
                             .where(_d.destination.in_(idle[start:start + 500]),
                                    _d[column] < pos)
                             .values({column: pos}))
            upsert(conn, federation_sender_positions,
                   dict(stream_name=stream, pos=pos), ["stream_name"])

        await self._db.run(txn)

    async def save(self, destination: str, acked: Mapping[str, int],
                   retry_last_ts: int, retry_interval_ms: int) -> None:
        """A destination's acknowledged positions (never moved back) and retry state."""
        def txn(conn: Connection) -> None:
            row = conn.execute(sa.select(federation_destinations)
                               .where(_d.destination == destination)).first()
            values = {_COLUMNS[s]: max(p, getattr(row, _COLUMNS[s]) if row else 0)
                      for s, p in acked.items()}
            if row is None:
                values.update({c: 0 for s, c in _COLUMNS.items() if s not in acked})
                conn.execute(sa.insert(federation_destinations).values(
                    destination=destination, retry_last_ts=retry_last_ts,
                    retry_interval_ms=retry_interval_ms, **values))
            else:
                conn.execute(sa.update(federation_destinations)
                             .where(_d.destination == destination)
                             .values(retry_last_ts=retry_last_ts,
                                     retry_interval_ms=retry_interval_ms, **values))

        # a short write after each transaction: it joins the room announcements' group
        # commit instead of queueing its own trip to the DB thread beside them
        await self._db.run_batched(txn)
