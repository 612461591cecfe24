"""The relations index of one room's database (spec: Client-Server API, "Forming
relationships between events", "Relationships API", "Threading").

Table ``event_relations``: one row per timeline event whose cleartext
``content["m.relates_to"]`` names a parent ``event_id`` and a ``rel_type`` (rich
replies, which have no ``rel_type``, are not relations). The row is written when the
event is persisted and deleted when it is redacted: "when a child event is redacted
then the relationship is broken". The table is created (and back-filled from older
events) by step 3 of :mod:`homeserver.rooms.storage.schema`. The parent may be unknown
(yet): rows are keyed by the parent's event ID, never by its seq.

:class:`RelationIndex` is synchronous and shares the room store's sqlite3 connection
(the store owns one as ``store.relations``); the async domain built on it (history
visibility, bundled aggregations) is :mod:`homeserver.rooms.features.relations`.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any, Collection, Iterable, Mapping

from homeserver.events.pdu import PDU
from homeserver.rooms.rules.pagination import (
    Direction, TopologicalToken, topological_window)

THREAD = "m.thread"
REPLACE = "m.replace"
REFERENCE = "m.reference"


_TIMELINE = "e.outlier = 0 AND e.rejected IS NULL AND e.soft_failed = 0"
#: how deep ``recurse=true`` follows relations of relations (the spec asks for >= 3)
MAX_RECURSION = 3


def relation_of(content: Any) -> tuple[str, str] | None:
    """``(parent event ID, rel_type)`` of an event's content, or None."""
    relates = content.get("m.relates_to") if isinstance(content, Mapping) else None
    if not isinstance(relates, Mapping):
        return None
    parent, rel_type = relates.get("event_id"), relates.get("rel_type")
    if isinstance(parent, str) and parent and isinstance(rel_type, str) and rel_type:
        return parent, rel_type
    return None


@dataclasses.dataclass(frozen=True)
class ThreadRow:
    """A thread root and its latest event's position (the threads list's order)."""

    root_id: str
    latest_depth: int
    latest_seq: int

    @property
    def token(self) -> TopologicalToken:
        return TopologicalToken(self.latest_depth, self.latest_seq)


@dataclasses.dataclass(frozen=True)
class ThreadSummary:
    count: int
    latest_event_id: str


def _in(values: Collection[str]) -> str:
    return ",".join("?" * len(values))


class RelationIndex:
    """The ``event_relations`` table of one room DB."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # -- writing ------------------------------------------------------------------------
    def index_event(self, seq: int, pdu: PDU) -> None:
        """Record ``pdu``'s relation (a timeline event just persisted as ``seq``)."""
        relation = relation_of(pdu.content)
        if relation is not None and relation[0] != pdu.event_id:
            self._conn.execute("INSERT OR REPLACE INTO event_relations VALUES (?, ?, ?)",
                               (seq, relation[0], relation[1]))

    def forget_event(self, seq: int) -> None:
        """The event was redacted: its relation is broken."""
        self._conn.execute("DELETE FROM event_relations WHERE event_seq = ?", (seq,))

    # -- /relations ---------------------------------------------------------------------
    def children(self, parent_id: str, *, rel_type: str | None = None,
                 event_type: str | None = None, direction: Direction = Direction.BACKWARDS,
                 from_token: TopologicalToken | None = None,
                 to_token: TopologicalToken | None = None, limit: int = 5,
                 max_depth: int = 1) -> tuple[list[str], TopologicalToken | None]:
        """Event IDs of ``parent_id``'s children in topological order, and the token
        to continue with (None when there are no more).

        ``max_depth`` > 1 also follows relations of relations; ``rel_type`` and
        ``event_type`` then apply at every level (MSC3981). Tokens are those of
        ``/messages``: backwards returns events at or before ``from_token``, newest
        first; forwards events after it, oldest first.
        """
        match, args = "", []
        if rel_type is not None:
            match += " AND r.rel_type = ?"
            args.append(rel_type)
        if event_type is not None:
            match += " AND e.type = ?"
            args.append(event_type)
        tree = (
            "WITH RECURSIVE tree(seq, event_id, level) AS ("
            " SELECT e.seq, e.event_id, 1 FROM event_relations r"
            " JOIN events e ON e.seq = r.event_seq"
            f" WHERE r.parent_id = ? AND {_TIMELINE}{match}"
            " UNION"
            " SELECT e.seq, e.event_id, t.level + 1 FROM tree t"
            " JOIN event_relations r ON r.parent_id = t.event_id"
            " JOIN events e ON e.seq = r.event_seq"
            f" WHERE t.level < ? AND {_TIMELINE}{match})")
        tree_args: list[Any] = [parent_id, *args, max_depth, *args]
        _, where, bounds, order = topological_window(direction, from_token, to_token,
                                                     prefix="e.")
        rows = self._conn.execute(
            f"{tree} SELECT DISTINCT e.event_id, e.depth, e.seq FROM tree t"
            f" JOIN events e ON e.seq = t.seq WHERE {where}"
            f" ORDER BY e.depth {order}, e.seq {order} LIMIT ?",
            tree_args + bounds + [limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if not more or not rows:
            return [r[0] for r in rows], None
        _, depth, seq = rows[-1]
        nxt = (TopologicalToken(depth, seq - 1) if direction is Direction.BACKWARDS
               else TopologicalToken(depth, seq))
        return [r[0] for r in rows], nxt

    # -- threads ------------------------------------------------------------------------
    def threads(self, *, before: TopologicalToken | None = None, limit: int = 20,
                participant: str | None = None,
                ignored: Collection[str] = ()) -> list[ThreadRow]:
        """Thread roots of this room by their latest thread event, newest first.

        ``before``: only threads whose latest event lies before that position (the
        next page). ``participant``: only threads that user started or replied in.
        Replies from ``ignored`` senders do not count.
        """
        ignore_sql = f" AND e.sender NOT IN ({_in(ignored)})" if ignored else ""
        sql = (
            "SELECT latest.parent_id, latest.depth, latest.seq FROM ("
            " SELECT r.parent_id, e.depth, e.seq, row_number() OVER ("
            "  PARTITION BY r.parent_id ORDER BY e.depth DESC, e.seq DESC) AS n"
            " FROM event_relations r JOIN events e ON e.seq = r.event_seq"
            f" WHERE r.rel_type = ? AND {_TIMELINE}{ignore_sql}) latest"
            " JOIN events root ON root.event_id = latest.parent_id"
            " WHERE n = 1 AND root.outlier = 0 AND root.rejected IS NULL"
            " AND root.soft_failed = 0")
        args: list[Any] = [THREAD, *sorted(ignored)]
        if before is not None:
            sql += " AND (latest.depth, latest.seq) < (?, ?)"
            args += [before.depth, before.seq]
        if participant is not None:
            sql += (" AND (root.sender = ? OR EXISTS (SELECT 1 FROM event_relations r2"
                    " JOIN events e2 ON e2.seq = r2.event_seq WHERE r2.parent_id ="
                    " latest.parent_id AND r2.rel_type = ? AND e2.sender = ?))")
            args += [participant, THREAD, participant]
        sql += " ORDER BY latest.depth DESC, latest.seq DESC LIMIT ?"
        rows = self._conn.execute(sql, args + [limit]).fetchall()
        return [ThreadRow(*row) for row in rows]

    # -- aggregations -------------------------------------------------------------------
    def thread_summaries(self, root_ids: Iterable[str], ignored: Collection[str] = ()
                         ) -> dict[str, ThreadSummary]:
        """root → (number of thread events, latest thread event) for roots that have
        a thread, not counting events from ``ignored`` senders."""
        roots = list(dict.fromkeys(root_ids))
        if not roots:
            return {}
        ignore_sql = f" AND e.sender NOT IN ({_in(ignored)})" if ignored else ""
        rows = self._conn.execute(
            "SELECT parent_id, total, event_id FROM ("
            " SELECT r.parent_id, e.event_id,"
            "  count(*) OVER (PARTITION BY r.parent_id) AS total,"
            "  row_number() OVER (PARTITION BY r.parent_id"
            "   ORDER BY e.depth DESC, e.seq DESC) AS n"
            " FROM event_relations r JOIN events e ON e.seq = r.event_seq"
            f" WHERE r.rel_type = ? AND r.parent_id IN ({_in(roots)})"
            f" AND {_TIMELINE}{ignore_sql}) WHERE n = 1",
            [THREAD, *roots, *sorted(ignored)]).fetchall()
        return {parent: ThreadSummary(total, latest) for parent, total, latest in rows}

    def thread_participants(self, root_ids: Iterable[str], user_id: str) -> set[str]:
        """The roots among ``root_ids`` that ``user_id`` replied to in a thread."""
        roots = list(dict.fromkeys(root_ids))
        if not roots:
            return set()
        rows = self._conn.execute(
            "SELECT DISTINCT r.parent_id FROM event_relations r"
            " JOIN events e ON e.seq = r.event_seq"
            f" WHERE r.rel_type = ? AND r.parent_id IN ({_in(roots)}) AND e.sender = ?"
            f" AND {_TIMELINE}", [THREAD, *roots, user_id])
        return {row[0] for row in rows}

    def edit_candidates(self, parent_ids: Iterable[str]) -> dict[str, list[str]]:
        """parent → IDs of ``m.replace`` children sent by the parent's sender with the
        parent's type, most recent first (``origin_server_ts``, then the larger event
        ID: spec "Server-side aggregation of m.replace relationships"). The caller
        checks the remaining validity rules on the events themselves."""
        parents = list(dict.fromkeys(parent_ids))
        if not parents:
            return {}
        rows = self._conn.execute(
            "SELECT r.parent_id, e.event_id FROM event_relations r"
            " JOIN events e ON e.seq = r.event_seq"
            " JOIN events p ON p.event_id = r.parent_id"
            f" WHERE r.rel_type = ? AND r.parent_id IN ({_in(parents)}) AND {_TIMELINE}"
            " AND e.sender = p.sender AND e.type = p.type"
            " AND e.state_key IS NULL AND p.state_key IS NULL AND p.redacted_by IS NULL"
            " ORDER BY e.origin_server_ts DESC, e.event_id DESC", [REPLACE, *parents])
        found: dict[str, list[str]] = {}
        for parent, event_id in rows:
            found.setdefault(parent, []).append(event_id)
        return found

    def references(self, parent_ids: Iterable[str], limit: int = 100
                   ) -> dict[str, list[str]]:
        """parent → IDs of its ``m.reference`` children in topological order."""
        parents = list(dict.fromkeys(parent_ids))
        if not parents:
            return {}
        rows = self._conn.execute(
            "SELECT r.parent_id, e.event_id FROM event_relations r"
            " JOIN events e ON e.seq = r.event_seq"
            f" WHERE r.rel_type = ? AND r.parent_id IN ({_in(parents)}) AND {_TIMELINE}"
            " ORDER BY e.depth, e.seq", [REFERENCE, *parents])
        found: dict[str, list[str]] = {}
        for parent, event_id in rows:
            refs = found.setdefault(parent, [])
            if len(refs) < limit:
                refs.append(event_id)
        return found

    def parent_of(self, event_id: str) -> tuple[str, str] | None:
        """(parent ID, rel_type) of an event's indexed relation, or None."""
        row = self._conn.execute(
            "SELECT r.parent_id, r.rel_type FROM event_relations r"
            " JOIN events e ON e.seq = r.event_seq WHERE e.event_id = ?",
            (event_id,)).fetchone()
        return (row[0], row[1]) if row else None
