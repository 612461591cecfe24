"""A room DB's sqlite3 connection: every statement runs on one reused cursor.

``sqlite3.Connection.execute`` makes a new cursor per call, and CPython 3.11's sqlite3
module keeps a weak reference to every cursor a connection ever made, pruning the dead
ones only every 200th cursor. An awake room therefore carried up to 200 dead weakrefs
(~19 KB), made one by one in the middle of its requests: in a burst of new rooms they
were a quarter of what each open room held in Python objects, and, being long-lived
among short-lived request objects, they kept CPython's allocator arenas resident after
the rooms hibernated (measured with ``make bench``, "rooms at rest"; see the README's
Performance section).

:class:`RoomConnection` is the ``factory`` for ``sqlite3.connect``: ``execute`` and
``executemany`` run on one cursor and hand back every row at once (:class:`Rows`), so
a caller may run other statements while it walks the rows (the state store does, to
look up interned strings). Everything else is the plain connection; ``close`` also
lets go of the cursor, so a closed room's connection is freed by reference counting.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from typing import Any, Iterable


class Rows(list):
    """All rows of one statement, with the cursor's ``lastrowid`` and ``rowcount``."""

    __slots__ = ("lastrowid", "rowcount")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        super().__init__(cursor)
        self.lastrowid = cursor.lastrowid
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self[0] if self else None

    def fetchall(self) -> list:
        return self


class _ClosedCursor:
    """What a closed RoomConnection runs statements on: sqlite3's own error."""

    def execute(self, *args: Any) -> Any:
        raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    executemany = execute


class RoomConnection(sqlite3.Connection):
    #: the instance's own cursor while open (``close`` removes it)
    _cursor: Any = _ClosedCursor()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursor = self.cursor()

    def execute(self, sql: str, parameters: Any = (), /) -> Rows:  # type: ignore[override]
        return Rows(self._cursor.execute(sql, parameters))

    def executemany(self, sql: str, parameters: Iterable[Any], /  # type: ignore[override]
                    ) -> Rows:
        return Rows(self._cursor.executemany(sql, parameters))

    def close(self) -> None:
        # the cursor refers back to its connection: without this the pair (and the
        # cursor weakref list) would wait for a full collection after every
        # hibernation instead of going at once
        cursor = self.__dict__.pop("_cursor", None)
        if cursor is not None:
            cursor.close()
        super().close()



def connect(path: str) -> RoomConnection:
    """A room DB connection in autocommit mode (the store runs its own transactions),
    used by one thread at a time: the reactor's, and a closer thread at the end."""
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           factory=RoomConnection)


def checkpoint(path: str) -> None:
    """A passive WAL checkpoint of the room DB at ``path`` over a connection of its
    own, for a thread other than the room's (``RoomStore.checkpoint_in``). Never
    raises: a checkpoint that cannot run now is left to the next one."""
    try:
        # mode=rw: a room whose file went away is not created again
        conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=rw", uri=True,
                               isolation_level=None, timeout=0)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error:
        pass   # busy (the room is closing): the next checkpoint or the close does it
    finally:
        conn.close()


def start_wal(path: str) -> None:
    """Write a first frame into the room DB's WAL over a connection of its own, for a
    thread other than the room's (``RoomStore.wal_started``).

    SQLite deletes a database's ``-wal`` file when its last connection closes (and
    ``RoomRegistry.recover_unclean`` counts on that), so the first commit of every
    woken room creates the file again: the WAL header is written and fsynced, and so
    is the directory holding the new file. Done here, those two fsyncs leave the
    reactor thread. The write sets ``user_version`` to the value it has (a real page
    write, nothing changes). Raises ``sqlite3.Error`` (e.g. busy): the caller's
    commit then starts the WAL itself."""
    conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=rw", uri=True,
                           isolation_level=None, timeout=0)
    try:
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
