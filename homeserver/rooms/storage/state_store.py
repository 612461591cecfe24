"""State snapshots as bounded delta chains, and the room's current state (DESIGN.md §4).

A *state group* is an immutable map ``(type, state_key) → event seq``. It is stored as
a delta against a parent group, except every ``full_every``-th link in a chain, which
is a full snapshot; so reading any group costs one query over at most ``full_every``
small deltas plus one snapshot, however long the room's history. Types and state keys
are interned to integers so state rows are three integers each.

The ``current_state`` table materialises the room's current state group, so the hot
questions ("who is joined?", "what are the power levels?") are indexed lookups that
never walk a chain.

This class shares the room DB connection and never begins or commits a transaction:
the caller (``RoomStore``) owns transactions. After a rollback the caller must call
``forget_interned`` because rolled-back string ids may have been cached.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Iterable, Mapping, Optional

StateKey = tuple[str, str]
#: a state filter: (type, state_key) pairs, where a state_key of None means "any"
StateFilter = Optional[Iterable[tuple[str, Optional[str]]]]

#: beyond this many exact pairs a filter is applied by type in SQL, then in Python
_MAX_EXACT_PAIRS = 100

_CHAIN_SQL = """
WITH RECURSIVE chain(id, parent_id, n) AS (
    SELECT id, parent_id, 0 FROM state_groups WHERE id = ?
    UNION ALL
    SELECT g.id, g.parent_id, c.n + 1 FROM state_groups g JOIN chain c ON g.id = c.parent_id
)
"""


class StateGroupStore:
    def __init__(self, conn: sqlite3.Connection, full_every: int = 100) -> None:
        if full_every < 1:
            raise ValueError("full_every must be at least 1")
        self._conn = conn
        self.full_every = full_every
        self._ids: dict[str, int] = {}
        self._strings: dict[int, str] = {}

    # -- interning ----------------------------------------------------------------------
    def intern(self, value: str) -> int:
        """The integer id of ``value``, adding it if new."""
        found = self.lookup_id(value)
        if found is not None:
            return found
        new_id = self._conn.execute(
            "INSERT INTO interned_strings (value) VALUES (?)", (value,)).lastrowid
        self._remember(new_id, value)
        return new_id

    def lookup_id(self, value: str) -> int | None:
        """The id of ``value`` if it was ever interned (never inserts)."""
        found = self._ids.get(value)
        if found is None:
            row = self._conn.execute(
                "SELECT id FROM interned_strings WHERE value = ?", (value,)).fetchone()
            if row is None:
                return None
            found = row[0]
            self._remember(found, value)
        return found

    def string(self, string_id: int) -> str:
        value = self._strings.get(string_id)
        if value is None:
            value = self._conn.execute(
                "SELECT value FROM interned_strings WHERE id = ?", (string_id,)).fetchone()[0]
            self._remember(string_id, value)
        return value

    def forget_interned(self) -> None:
        """Drop the interning cache (after a rollback may have undone some ids)."""
        self._ids.clear()
        self._strings.clear()

    def _remember(self, string_id: int, value: str) -> None:
        self._ids[value] = string_id
        self._strings[string_id] = value

    def _pair(self, type_id: int, state_key_id: int) -> StateKey:
        return (self.string(type_id), self.string(state_key_id))

    def _filter(self, pairs: StateFilter, alias: str = ""
                ) -> tuple[str, list[int], Optional[Callable[[int, int], bool]]] | None:
        """SQL narrowing rows to ``pairs``: ``(sql, args, keep)``.

        Exact pairs become ``(type_id, state_key_id)`` lookups, so asking for one member
        of a 10,000-member room reads one row, not 10,000. A very long list of exact
        pairs is narrowed by type in SQL and by ``keep(type_id, key_id)`` in Python.
        Returns None when nothing in the filter was ever interned (an empty answer).
        """
        wild: set[int] = set()
        exact: set[tuple[int, int]] = set()
        for event_type, state_key in pairs:
            type_id = self.lookup_id(event_type)
            if type_id is None:
                continue
            if state_key is None:
                wild.add(type_id)
            else:
                key_id = self.lookup_id(state_key)
                if key_id is not None:
                    exact.add((type_id, key_id))
        exact = {(t, k) for t, k in exact if t not in wild}
        if not wild and not exact:
            return None
        t_col, k_col = f"{alias}type_id", f"{alias}state_key_id"
        if len(exact) > _MAX_EXACT_PAIRS:
            types = sorted(wild | {t for t, _ in exact})
            return (f" AND {t_col} IN ({','.join('?' * len(types))})", types,
                    lambda t, k: t in wild or (t, k) in exact)
        clauses, args = [], []
        if wild:
            clauses.append(f"{t_col} IN ({','.join('?' * len(wild))})")
            args += sorted(wild)
        for type_id, key_id in sorted(exact):
            clauses.append(f"({t_col} = ? AND {k_col} = ?)")
            args += [type_id, key_id]
        return " AND (" + " OR ".join(clauses) + ")", args, None

    # -- groups -------------------------------------------------------------------------
    def new_group(self, parent: int | None, changes: Mapping[StateKey, int | None]) -> int:
        """A new group equal to ``parent`` with ``changes`` applied (None removes a key).

        With no parent, or when the parent's chain is ``full_every - 1`` deltas long,
        the new group is a full snapshot; otherwise it stores only ``changes``.
        """
        if parent is not None:
            chain_len = self._conn.execute(
                "SELECT chain_len FROM state_groups WHERE id = ?", (parent,)).fetchone()[0]
            if chain_len + 1 < self.full_every:
                return self._insert(parent, chain_len + 1, changes.items())
            full = self.group_map(parent)
            full.update(changes)
            changes = full
        return self._insert(None, 0, ((k, v) for k, v in changes.items() if v is not None))

    def _insert(self, parent: int | None, chain_len: int, entries) -> int:
        group_id = self._conn.execute(
            "INSERT INTO state_groups (parent_id, chain_len) VALUES (?, ?)",
            (parent, chain_len)).lastrowid
        self._conn.executemany(
            "INSERT INTO state_group_entries (group_id, type_id, state_key_id, event_seq)"
            " VALUES (?, ?, ?, ?)",
            [(group_id, self.intern(t), self.intern(k), seq) for (t, k), seq in entries])
        return group_id

    def group_for_map(self, target: Mapping[StateKey, int], near: int | None) -> int:
        """A group equal to ``target``, stored as a delta against ``near`` if given.

        Returns ``near`` itself when it already equals ``target`` (no new row).
        """
        if near is None:
            return self.new_group(None, target)
        base = self.group_map(near)
        changes: dict[StateKey, int | None] = {
            k: v for k, v in target.items() if base.get(k) != v}
        changes.update((k, None) for k in base if k not in target)
        return near if not changes else self.new_group(near, changes)

    def group_map(self, group: int, pairs: StateFilter = None) -> dict[StateKey, int]:
        """The full map of ``group`` (optionally filtered), walking its delta chain."""
        sql = (_CHAIN_SQL + "SELECT e.type_id, e.state_key_id, e.event_seq"
               " FROM chain c JOIN state_group_entries e ON e.group_id = c.id WHERE 1")
        args: list[int] = [group]
        keep = None
        if pairs is not None:
            narrowed = self._filter(pairs, "e.")
            if narrowed is None:
                return {}
            sql += narrowed[0]
            args += narrowed[1]
            keep = narrowed[2]
        # oldest link first so that newer deltas overwrite
        sql += " ORDER BY c.n DESC"
        result: dict[StateKey, int] = {}
        for type_id, state_key_id, seq in self._conn.execute(sql, args):
            if keep is not None and not keep(type_id, state_key_id):
                continue
            pair = self._pair(type_id, state_key_id)
            if seq is None:
                result.pop(pair, None)
            else:
                result[pair] = seq
        return result

    def chain_length(self, group: int) -> int:
        """How many groups reading ``group`` touches (itself included)."""
        return self._conn.execute(
            _CHAIN_SQL + "SELECT count(*) FROM chain", (group,)).fetchone()[0]

    def group_count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM state_groups").fetchone()[0]

    # -- current state ------------------------------------------------------------------
    def current_map(self, pairs: StateFilter = None) -> dict[StateKey, int]:
        sql = "SELECT type_id, state_key_id, event_seq FROM current_state WHERE 1"
        args: list[int] = []
        keep = None
        if pairs is not None:
            narrowed = self._filter(pairs)
            if narrowed is None:
                return {}
            sql, args, keep = sql + narrowed[0], narrowed[1], narrowed[2]
        return {self._pair(t, k): seq for t, k, seq in self._conn.execute(sql, args)
                if keep is None or keep(t, k)}

    def current_seq(self, event_type: str, state_key: str) -> int | None:
        type_id, key_id = self.lookup_id(event_type), self.lookup_id(state_key)
        if type_id is None or key_id is None:
            return None
        row = self._conn.execute(
            "SELECT event_seq FROM current_state WHERE type_id = ? AND state_key_id = ?",
            (type_id, key_id)).fetchone()
        return row[0] if row else None

    def current_type_rows(self, event_type: str) -> list[tuple[str, int]]:
        """(state_key, event seq) of every current state entry of ``event_type``."""
        type_id = self.lookup_id(event_type)
        if type_id is None:
            return []
        rows = self._conn.execute(
            "SELECT state_key_id, event_seq FROM current_state WHERE type_id = ?", (type_id,))
        return [(self.string(k), seq) for k, seq in rows]

    def change_current(self, changes: Mapping[StateKey, int | None]) -> None:
        """Apply ``changes`` to the materialised current state (None removes)."""
        for (event_type, state_key), seq in changes.items():
            type_id, key_id = self.intern(event_type), self.intern(state_key)
            if seq is None:
                self._conn.execute(
                    "DELETE FROM current_state WHERE type_id = ? AND state_key_id = ?",
                    (type_id, key_id))
            else:
                self._conn.execute(
                    "INSERT OR REPLACE INTO current_state (type_id, state_key_id, event_seq)"
                    " VALUES (?, ?, ?)", (type_id, key_id, seq))

    def diff(self, old: Mapping[StateKey, int], new: Mapping[StateKey, int]
             ) -> dict[StateKey, int | None]:
        """The changes that turn ``old`` into ``new``."""
        changes: dict[StateKey, int | None] = {k: v for k, v in new.items() if old.get(k) != v}
        changes.update((k, None) for k in old if k not in new)
        return changes
