"""The room stream and the memberships index (DESIGN.md §4).

``room_stream`` is the global append-only log of ``(pos, room_id, room_seq)`` the
room actors write after an event is durable in the room's own database (outbox
pattern); /sync reads it to learn which rooms changed since a token. Announcing is
idempotent per ``(room_id, room_seq)`` so a replay after a crash never duplicates.

``room_memberships`` is the index user → rooms, kept in step by the same
announcements, in the same transaction: a member event's own membership, and the
memberships a state resolution changed along with an event (``member_changes``).

Positions of one room are announced in its ``room_seq`` order by its single actor,
so within a room stream order is arrival order.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Collection, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.rooms.actor.memory import compact
from homeserver.rooms.actor.protocols import Announcement
from homeserver.store import positions
from homeserver.store.database import Database
from homeserver.store.recent_entries import RecentEntries
from homeserver.store.sql import Position, driver_execute, metadata, upsert
from homeserver.store.stream_tail import RoomChange, RoomStreamTail

room_stream = sa.Table(
    "room_stream", metadata,
    sa.Column("pos", Position, primary_key=True, autoincrement=True),
    sa.Column("room_id", sa.Text, nullable=False),
    sa.Column("room_seq", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("state_key", sa.Text, nullable=True),
    sa.Column("sender", sa.Text, nullable=False),
    sa.UniqueConstraint("room_id", "room_seq"),
    sa.Index(None, "room_id", "pos"),
    sa.Index(None, "event_id"),
    sqlite_autoincrement=True,
)

room_memberships = sa.Table(
    "room_memberships", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("room_id", sa.Text, primary_key=True),
    sa.Column("membership", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("stream_pos", sa.BigInteger, nullable=False),
    sa.Column("forgotten", sa.Boolean, nullable=False),
    sa.Index(None, "room_id", "membership"),
)

_s, _m = room_stream.c, room_memberships.c

_ROOMS_CACHE_SIZE = 50_000
#: ``Streams.member_changes`` of a room whose announcement may or may not have committed
UNSURE = 2 ** 62

MEMBER_EVENT = "m.room.member"
#: memberships after which a user may forget a room (spec: ``/forget``)
FORGETTABLE = ("leave", "ban")


@dataclasses.dataclass(frozen=True)
class StreamEntry:
    pos: int
    room_id: str
    room_seq: int
    event_id: str
    type: str
    state_key: str | None
    sender: str


@dataclasses.dataclass(frozen=True)
class RoomChanges:
    """The rooms that changed in ``(since, upto]``, by ``last_pos``.

    ``limited`` means more changes exist after ``upto``: resume from ``upto``.
    """
    rooms: list[RoomChange]
    upto: int
    limited: bool


@dataclasses.dataclass(frozen=True)
class Membership:
    user_id: str
    room_id: str
    membership: str
    event_id: str
    stream_pos: int
    forgotten: bool


def _membership(row: sa.Row) -> Membership:
    return Membership(row.user_id, row.room_id, row.membership, row.event_id,
                      row.stream_pos, row.forgotten)


# built once: the announce path runs them for every event (see sql.upsert)
#: an entry unless its (room_id, room_seq) is there (a replay); on the driver
#: (``sql.driver_execute``): every sent event runs it
_INSERT_ENTRY = ("INSERT INTO room_stream (pos, room_id, room_seq, event_id, type, "
                 "state_key, sender) VALUES (?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (room_id, room_seq) DO NOTHING")
_ANNOUNCED_POS = sa.select(_s.pos).where(_s.room_id == sa.bindparam("room_id"),
                                         _s.room_seq == sa.bindparam("room_seq"))


def _announce(conn: Connection, announcements: Sequence[Announcement],
              new: list[StreamEntry] | None = None) -> list[int]:
    """Append the announcements not yet in the stream; their positions, in order.
    ``new`` gets the entries this call appended (a replay appends nothing)."""
    if new is not None:
        new.clear()     # an earlier attempt that rolled back (Database.run_batched)
    # the stream's head, locked: this transaction's entries take the next positions
    # (no other code appends to the room stream), so a replay skipped below leaves no
    # gap, and each entry is one statement
    head = positions.lock_stream(conn, positions.ROOM)
    result, highest = [], 0
    for a in announcements:
        pos = head + 1
        if driver_execute(conn, _INSERT_ENTRY, (pos, a.room_id, a.room_seq, a.event_id,
                                                a.type, a.state_key, a.sender))[0] != 1:
            # already announced (a replay after a crash): keep its position, add nothing
            result.append(conn.execute(_ANNOUNCED_POS, {
                "room_id": a.room_id, "room_seq": a.room_seq}).scalar_one())
            continue
        head = pos
        highest = max(highest, pos)
        result.append(pos)
        if new is not None:
            new.append(StreamEntry(pos, a.room_id, a.room_seq, a.event_id, a.type,
                                   a.state_key, a.sender))
        if a.type == MEMBER_EVENT and a.membership is not None \
                and a.state_key is not None:
            upsert(conn, room_memberships, dict(
                user_id=a.state_key, room_id=a.room_id, membership=a.membership,
                event_id=a.event_id, stream_pos=pos, forgotten=False),
                ["user_id", "room_id"])
        for user_id, membership, event_id in a.member_changes:
            upsert(conn, room_memberships, dict(
                user_id=user_id, room_id=a.room_id, membership=membership,
                event_id=event_id, stream_pos=pos, forgotten=False),
                ["user_id", "room_id"])
    if highest:
        positions.advance(conn, positions.ROOM, highest)
    return result


class Streams:
    """Room stream writer/reader and the memberships index."""

    def __init__(self, db: Database, tail: RoomStreamTail | None = None) -> None:
        self._db = db
        #: the recent entries, for /sync (see stream_tail.py); recorded as announced
        self.tail = tail if tail is not None else RoomStreamTail()
        #: the newest entries in stream order, for the federation sender's reader
        self.recent = RecentEntries()
        # user → every membership row of theirs. Every /sync asks for a user's rooms, and
        # the index changes only through announce/forget here, which invalidate it.
        # (Several processes sharing one PostgreSQL will need the invalidation sent
        # over Redis along with the other cross-process wake-ups: DESIGN.md §8.)
        self._rooms_cache: collections.OrderedDict[str, list[Membership]] = \
            collections.OrderedDict()
        self._generation: dict[str, int] = {}
        #: room → the stream position of its latest membership change announced by
        #: this process (UNSURE after a failed announcement), recorded in the same
        #: callback that commits it; /sync's device lists ask it which rooms to read.
        #: A hibernating room's entry goes (``forget_member_changes``), raising
        #: ``member_changes_floor``: a ``since`` below it must read every room.
        self.member_changes: dict[str, int] = {}
        self.member_changes_floor = 0

    def _invalidate(self, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            self._rooms_cache.pop(user_id, None)
            self._generation[user_id] = self._generation.get(user_id, 0) + 1

    # -- room stream ------------------------------------------------------------------
    async def announce(self, announcements: Sequence[Announcement]) -> list[int]:
        """See :meth:`homeserver.rooms.actor.protocols.RoomStreamWriter.announce`."""
        if not announcements:
            return []
        members = [a.state_key for a in announcements
                   if a.membership is not None and a.state_key]
        members += [user_id for a in announcements for user_id, _, _ in a.member_changes]

        def committed(result: list[int]) -> None:
            # Run before any caller of the group commit resumes (Database.run_batched):
            # the first to resume wakes long-polls that read the batch's new position
            # at once, and must find every entry of the batch in the tail and every
            # membership of it out of the cache, not only its own.
            self.recent.record(new)
            for a, pos in zip(announcements, result):
                self.tail.record(a.room_id, pos, a.room_seq, a.event_id)
                if (a.membership is not None or a.member_changes) and \
                        self.member_changes.get(a.room_id, 0) < pos:
                    self.member_changes[a.room_id] = pos
            self._invalidate(members)

        new: list[StreamEntry] = []
        try:
            return await self._db.run_batched(_announce, list(announcements), new,
                                              on_commit=committed, inline=True)
        except BaseException:
            # it may have committed all the same: these rooms are read from the DB now
            self.recent.forget()
            self.tail.mark_unsure({a.room_id for a in announcements})
            for a in announcements:
                if a.membership is not None or a.member_changes:
                    self.member_changes[a.room_id] = UNSURE
            self._invalidate(members)
            raise

    async def seed_memberships(self, room_id: str,
                               members: Iterable[tuple[str, str, str]]) -> int:
        """Index memberships that reached us without an announcement: the state of a
        room joined over federation is stored as outliers, so the members already in
        it (``(user_id, membership, event_id)``) would be missing from the index, and
        with them every server the typing, receipt, presence and device-list EDUs of
        our users must reach. A row already there came from an announced event and is
        newer, so it is kept. Rows get the current stream position. Returns how many
        were added."""
        rows = list(members)
        if not rows:
            return 0

        def txn(conn: Connection) -> tuple[int, int]:
            pos = positions.read_position(conn, positions.ROOM)
            have = set(conn.execute(sa.select(_m.user_id).where(
                _m.room_id == room_id, _m.user_id.in_([u for u, _, _ in rows]))).scalars())
            new = [dict(user_id=u, room_id=room_id, membership=m, event_id=e,
                        stream_pos=pos, forgotten=False)
                   for u, m, e in rows if u not in have]
            if new:
                conn.execute(sa.insert(room_memberships), new)
            return len(new), pos

        added, pos = await self._db.run(txn)
        if added:
            if self.member_changes.get(room_id, 0) < pos:
                self.member_changes[room_id] = pos
            self._invalidate(u for u, _, _ in rows)
        return added

    async def current_room_stream_pos(self) -> int:
        """The highest committed room stream position."""
        return await self._db.run(positions.read_position, positions.ROOM)

    async def last_announced_seq(self, room_id: str) -> int | None:
        """The highest ``room_seq`` of the room in the stream (for crash recovery)."""
        def txn(conn: Connection) -> int | None:
            return conn.execute(sa.select(sa.func.max(_s.room_seq))
                                .where(_s.room_id == room_id)).scalar()

        return await self._db.run(txn)

    async def get_entries(self, since: int, upto: int | None = None, *,
                          room_ids: Iterable[str] | None = None,
                          limit: int | None = None) -> list[StreamEntry]:
        """Stream entries with ``since < pos <= upto``, in stream order."""
        wanted = None if room_ids is None else list(set(room_ids))
        if wanted == []:
            return []

        def txn(conn: Connection) -> list[StreamEntry]:
            end = positions.read_position(conn, positions.ROOM) if upto is None else upto
            stmt = sa.select(room_stream).where(_s.pos > since, _s.pos <= end)
            if wanted is not None:
                stmt = stmt.where(_s.room_id.in_(wanted))
            stmt = stmt.order_by(_s.pos)
            if limit is not None:
                stmt = stmt.limit(limit)
            return [StreamEntry(**row._mapping) for row in conn.execute(stmt)]

        return await self._db.run(txn)

    async def rooms_changed_since(self, since: int, room_ids: Iterable[str] | None = None,
                                  limit: int | None = None) -> RoomChanges:
        """Which rooms have entries after ``since`` (optionally only ``room_ids``).

        ``limit`` bounds the number of stream *entries* considered (not rooms): when
        hit, ``upto`` is the last position considered and ``limited`` is true.
        """
        wanted = None if room_ids is None else list(set(room_ids))

        def txn(conn: Connection) -> RoomChanges:
            upto = positions.read_position(conn, positions.ROOM)
            if wanted == [] or upto <= since:
                return RoomChanges([], max(upto, since), False)
            where = [_s.pos > since, _s.pos <= upto]
            if wanted is not None:
                where.append(_s.room_id.in_(wanted))
            limited = False
            if limit is not None:
                page = list(conn.execute(sa.select(_s.pos).where(*where)
                                         .order_by(_s.pos).limit(limit + 1)).scalars())
                if len(page) > limit:
                    limited, upto = True, page[limit - 1] if limit else since
                    where[1] = _s.pos <= upto
            stmt = (sa.select(_s.room_id, sa.func.max(_s.pos).label("last_pos"),
                              sa.func.min(_s.room_seq).label("min_seq"),
                              sa.func.max(_s.room_seq).label("max_seq"),
                              sa.func.count().label("n"))
                    .where(*where).group_by(_s.room_id)
                    .order_by(sa.func.max(_s.pos)))
            changes = [RoomChange(r.room_id, r.last_pos, r.min_seq, r.max_seq, r.n)
                       for r in conn.execute(stmt)]
            return RoomChanges(changes, upto, limited)

        return await self._db.run(txn)

    # -- memberships index ------------------------------------------------------------
    async def get_membership(self, user_id: str, room_id: str) -> Membership | None:
        """The user's current membership of the room, from the index."""
        def txn(conn: Connection) -> Membership | None:
            row = conn.execute(sa.select(room_memberships).where(
                _m.user_id == user_id, _m.room_id == room_id)).first()
            return None if row is None else _membership(row)

        return await self._db.run(txn)

    async def get_rooms_for_user(self, user_id: str,
                                 memberships: Collection[str] = ("join",), *,
                                 include_forgotten: bool = False) -> list[Membership]:
        """The user's rooms whose membership is in ``memberships``, by room ID."""
        rows = self._rooms_cache.get(user_id)
        if rows is None:
            generation = self._generation.get(user_id, 0)

            def txn(conn: Connection) -> list[Membership]:
                stmt = sa.select(room_memberships).where(_m.user_id == user_id)
                return [_membership(r) for r in conn.execute(stmt.order_by(_m.room_id))]

            rows = await self._db.run(txn)
            if self._generation.get(user_id, 0) == generation:  # no change meanwhile
                self._rooms_cache[user_id] = rows
                while len(self._rooms_cache) > _ROOMS_CACHE_SIZE:
                    self._rooms_cache.popitem(last=False)
        else:
            self._rooms_cache.move_to_end(user_id)
        wanted = set(memberships)
        return [m for m in rows if m.membership in wanted
                and (include_forgotten or not m.forgotten)]

    async def get_room_members(self, room_id: str,
                               memberships: Collection[str] = ("join",),
                               ) -> dict[str, str]:
        """user_id → membership for the room's members in ``memberships``."""
        wanted = list(memberships)

        def txn(conn: Connection) -> dict[str, str]:
            rows = conn.execute(sa.select(_m.user_id, _m.membership).where(
                _m.room_id == room_id, _m.membership.in_(wanted)).order_by(_m.user_id))
            return {r.user_id: r.membership for r in rows}

        return await self._db.run(txn)

    async def room_of_event(self, event_id: str) -> str | None:
        """The room of a timeline event we announced, or None (federation's
        ``GET /event/{eventId}`` names no room)."""
        def txn(conn: Connection) -> str | None:
            return conn.execute(sa.select(_s.room_id).where(_s.event_id == event_id)
                                .limit(1)).scalar()

        return await self._db.run(txn)

    async def rooms_joined_by_server(self, server_name: str) -> list[str]:
        """The rooms where some user of ``server_name`` is joined (federation's
        ``GET /event/{eventId}`` names no room: these are the rooms to look in)."""
        pattern = "%:" + server_name.replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_")

        def txn(conn: Connection) -> list[str]:
            rows = conn.execute(sa.select(_m.room_id).distinct().where(
                _m.user_id.like(pattern, escape="\\"), _m.membership == "join")
                .order_by(_m.room_id))
            return [r.room_id for r in rows]

        return await self._db.run(txn)

    async def joined_member_count(self, room_id: str) -> int:
        """How many users the index has joined to the room."""
        def txn(conn: Connection) -> int:
            return conn.execute(sa.select(sa.func.count()).where(
                _m.room_id == room_id, _m.membership == "join")).scalar_one()

        return await self._db.run(txn)

    async def users_sharing_a_room_with(self, user_id: str) -> set[str]:
        """Every user joined to at least one room the user is joined to (incl. them)."""
        def txn(conn: Connection) -> set[str]:
            mine = sa.select(_m.room_id).where(_m.user_id == user_id,
                                                _m.membership == "join")
            other = room_memberships.alias("other")
            stmt = sa.select(other.c.user_id).distinct().where(
                other.c.room_id.in_(mine), other.c.membership == "join")
            return set(conn.execute(stmt).scalars())

        return await self._db.run(txn)

    def compact(self) -> None:
        """Shrink the per-room and per-user maps to what they hold now (a memory
        releaser: after a burst of rooms they keep the size of its peak)."""
        compact(self.member_changes, self._rooms_cache, self._generation)
        self.tail.compact()

    def forget_member_changes(self, room_id: str, current_pos: int) -> None:
        """Drop a room's entry in ``member_changes`` (it hibernates); an unsure
        entry counts as a change at ``current_pos`` (the room stream's now)."""
        pos = self.member_changes.pop(room_id, 0)
        if pos == UNSURE:
            pos = current_pos
        self.member_changes_floor = max(self.member_changes_floor, pos)

    async def membership_changes(self, room_ids: Collection[str], since: int,
                                 upto: int) -> list[Membership]:
        """Current memberships in ``room_ids`` last changed at positions in
        ``(since, upto]`` (for /sync's ``device_lists``)."""
        rooms = sorted(set(room_ids))
        if not rooms:
            return []

        def txn(conn: Connection) -> list[Membership]:
            rows = conn.execute(sa.select(room_memberships).where(
                _m.room_id.in_(rooms), _m.stream_pos > since, _m.stream_pos <= upto))
            return [_membership(r) for r in rows]

        return await self._db.run(txn)

    async def forget(self, user_id: str, room_id: str) -> bool:
        """Forget a room the user has left or been banned from; False otherwise."""
        def txn(conn: Connection) -> bool:
            return conn.execute(sa.update(room_memberships).where(
                _m.user_id == user_id, _m.room_id == room_id,
                _m.membership.in_(FORGETTABLE)).values(forgotten=True)).rowcount > 0

        try:
            return await self._db.run(txn)
        finally:
            self._invalidate([user_id])
