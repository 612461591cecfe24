"""Delayed events (MSC4140, table ``delayed_events``): events a client asked us to send
later, kept until they are sent, cancelled or fail, then kept a while as "finalised".

A row is *scheduled* while ``outcome`` is NULL; ``send_ts`` (``scheduled_at`` +
``delay_ms``) is when it is due. Rows survive a restart: the scheduler reads the
earliest ``send_ts`` on start and sends what fell due while it was down. The outcome
moves (homeserver/matrixrtc/delayed_outcomes.py) are guarded in SQL too: a finalise or
restart only touches a row still scheduled, so two racing finishers cannot both win.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store.database import Database
from homeserver.store.sql import JsonText, metadata

delayed_events = sa.Table(
    "delayed_events", metadata,
    sa.Column("delay_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("device_id", sa.Text),
    sa.Column("room_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("state_key", sa.Text),
    sa.Column("content", JsonText, nullable=False),
    sa.Column("delay_ms", sa.BigInteger, nullable=False),
    sa.Column("scheduled_at", sa.BigInteger, nullable=False),
    sa.Column("send_ts", sa.BigInteger, nullable=False),
    # the client's transaction (user, device, endpoint, txnId): a retried PUT gets the
    # delay_id of its first attempt instead of scheduling twice
    sa.Column("txn_key", sa.Text),
    sa.Column("outcome", sa.Text),
    sa.Column("finalised_ts", sa.BigInteger),
    sa.Column("event_id", sa.Text),
    sa.Column("error", JsonText),
    sa.Index(None, "outcome", "send_ts"),
    sa.Index(None, "user_id", "outcome", "send_ts"),
    sa.Index(None, "room_id", "event_type", "state_key"),
    sa.UniqueConstraint("user_id", "txn_key"),
)

_d = delayed_events.c


@dataclasses.dataclass(frozen=True)
class DelayedEvent:
    delay_id: str
    user_id: str
    device_id: str | None
    room_id: str
    event_type: str
    state_key: str | None
    content: Mapping[str, Any]
    delay_ms: int
    scheduled_at: int
    send_ts: int
    outcome: str | None = None
    finalised_ts: int | None = None
    event_id: str | None = None
    error: Mapping[str, Any] | None = None

    @property
    def scheduled(self) -> bool:
        return self.outcome is None


_FIELDS = [f.name for f in dataclasses.fields(DelayedEvent)]


def _row(row: Any) -> DelayedEvent:
    return DelayedEvent(**{name: getattr(row, name) for name in _FIELDS})


_COLUMNS = [getattr(_d, name) for name in _FIELDS]


class DelayedEvents:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, event: DelayedEvent, *, txn_key: str | None,
                  max_scheduled: int) -> tuple[DelayedEvent, bool]:
        """Store a new scheduled event, unless ``txn_key`` was used by this user before
        (then the first one comes back) or the user already has ``max_scheduled``
        scheduled. Returns (the event, whether it is new); raises
        :class:`TooManyScheduled` when over the limit."""
        def txn(conn: Connection) -> tuple[DelayedEvent, bool]:
            if txn_key is not None:
                earlier = conn.execute(sa.select(*_COLUMNS).where(
                    _d.user_id == event.user_id, _d.txn_key == txn_key)).first()
                if earlier is not None:
                    return _row(earlier), False
            pending = conn.execute(sa.select(sa.func.count(), sa.func.min(_d.send_ts)).where(
                _d.user_id == event.user_id, _d.outcome.is_(None))).one()
            if pending[0] >= max_scheduled:
                raise TooManyScheduled(pending[1])
            values = {name: getattr(event, name) for name in _FIELDS}
            values["content"] = dict(event.content)
            conn.execute(sa.insert(delayed_events).values(txn_key=txn_key, **values))
            return event, True

        return await self._db.run(txn)

    async def get(self, delay_id: str) -> DelayedEvent | None:
        row = await self._db.run(lambda conn: conn.execute(
            sa.select(*_COLUMNS).where(_d.delay_id == delay_id)).first())
        return None if row is None else _row(row)

    async def scheduled_for_user(self, user_id: str) -> list[DelayedEvent]:
        """The user's scheduled events, soonest due first (MSC4140 "Getting a list")."""
        rows = await self._db.run(lambda conn: conn.execute(
            sa.select(*_COLUMNS).where(_d.user_id == user_id, _d.outcome.is_(None))
            .order_by(_d.send_ts, _d.delay_id)).fetchall())
        return [_row(r) for r in rows]

    async def finalised_for_user(self, user_id: str, limit: int) -> list[DelayedEvent]:
        """The user's finalised events, newest first."""
        rows = await self._db.run(lambda conn: conn.execute(
            sa.select(*_COLUMNS).where(_d.user_id == user_id, _d.outcome.is_not(None))
            .order_by(_d.finalised_ts.desc(), _d.delay_id).limit(limit)).fetchall())
        return [_row(r) for r in rows]

    async def due(self, now_ms: int, limit: int = 100) -> list[DelayedEvent]:
        """Scheduled events whose time has come, in the order they fell due."""
        rows = await self._db.run(lambda conn: conn.execute(
            sa.select(*_COLUMNS).where(_d.outcome.is_(None), _d.send_ts <= now_ms)
            .order_by(_d.send_ts, _d.delay_id).limit(limit)).fetchall())
        return [_row(r) for r in rows]

    async def next_send_ts(self) -> int | None:
        """When the next scheduled event falls due (None: nothing is scheduled)."""
        return await self._db.run(lambda conn: conn.execute(
            sa.select(sa.func.min(_d.send_ts)).where(_d.outcome.is_(None))).scalar())

    async def restart(self, delay_id: str, now_ms: int, *,
                      owner: str | None = None) -> DelayedEvent | None:
        """Start a scheduled event's delay again from ``now_ms`` (only ``owner``'s, if
        given); None if it is no longer scheduled, unknown or someone else's. One
        round trip, group-committed with the others of the moment: each MatrixRTC
        client does this every few seconds."""
        def txn(conn: Connection) -> DelayedEvent | None:
            which = [_d.delay_id == delay_id, _d.outcome.is_(None)]
            if owner is not None:
                which.append(_d.user_id == owner)
            changed = conn.execute(sa.update(delayed_events).where(*which).values(
                scheduled_at=now_ms, send_ts=now_ms + _d.delay_ms)).rowcount
            if changed != 1:
                return None
            return _row(conn.execute(sa.select(*_COLUMNS).where(
                _d.delay_id == delay_id)).one())

        return await self._db.run_batched(txn)

    async def finalise(self, delay_id: str, outcome: str, now_ms: int, *,
                       event_id: str | None = None,
                       error: Mapping[str, Any] | None = None) -> bool:
        """Record how a scheduled event ended; False if it had ended already
        (group-committed: a burst of due leaves ends together)."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.update(delayed_events).where(
                _d.delay_id == delay_id, _d.outcome.is_(None)).values(
                outcome=outcome, finalised_ts=now_ms, event_id=event_id,
                error=None if error is None else dict(error))).rowcount == 1

        return await self._db.run_batched(txn)

    async def scheduled_state_of_others(self, room_id: str, event_type: str,
                                        state_key: str, sender: str) -> list[str]:
        """Delay IDs of scheduled state events for this piece of state owned by users
        other than ``sender``."""
        rows = await self._db.run(lambda conn: conn.execute(
            sa.select(_d.delay_id).where(
                _d.room_id == room_id, _d.event_type == event_type,
                _d.state_key == state_key, _d.user_id != sender,
                _d.outcome.is_(None))).fetchall())
        return [r.delay_id for r in rows]

    async def rooms_with_scheduled_state(self) -> list[str]:
        """Rooms where some delayed state event is scheduled."""
        rows = await self._db.run(lambda conn: conn.execute(
            sa.select(_d.room_id).distinct().where(
                _d.outcome.is_(None), _d.state_key.is_not(None))).fetchall())
        return [r.room_id for r in rows]

    async def prune_finalised(self, user_id: str, *, older_than: int, keep: int) -> int:
        """Forget finalised events finalised before ``older_than`` (everyone's) and the
        user's beyond their newest ``keep``; returns how many went."""
        def txn(conn: Connection) -> int:
            gone = conn.execute(sa.delete(delayed_events).where(
                _d.outcome.is_not(None), _d.finalised_ts < older_than)).rowcount
            newest = sa.select(_d.delay_id).where(
                _d.user_id == user_id, _d.outcome.is_not(None)).order_by(
                _d.finalised_ts.desc(), _d.delay_id).limit(keep)
            gone += conn.execute(sa.delete(delayed_events).where(
                _d.user_id == user_id, _d.outcome.is_not(None),
                _d.delay_id.not_in(newest.scalar_subquery()))).rowcount
            return gone

        return await self._db.run(txn)


class TooManyScheduled(Exception):
    """The user has as many scheduled delayed events as allowed."""

    def __init__(self, next_send_ts: int | None) -> None:
        super().__init__("too many scheduled delayed events")
        self.next_send_ts = next_send_ts
