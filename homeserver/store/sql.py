"""Dialect-portable SQL pieces shared by the store parts: metadata, types, upsert.

Every table of the global database is declared on :data:`metadata` by the module that
owns it; alembic migrations (``migrations/versions``) are the schema's source of truth
and a test checks the two agree.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

#: Stream positions and other autoincrement keys: BIGSERIAL on PostgreSQL, and on
#: SQLite an INTEGER PRIMARY KEY (the rowid; the table also needs
#: ``sqlite_autoincrement=True`` so ids are never reused after deletes).
Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class JsonText(sa.TypeDecorator):
    """A JSON value stored as compact text (the same bytes on both dialects)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else json.loads(value)


def canonical_json_text(value: Any) -> str:
    """Sorted-key compact JSON, for values compared by their text (e.g. filters)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def driver_execute(conn: Connection, sql: str, params: Sequence[Any] = ()
                   ) -> tuple[int, Any]:
    """Run one statement on the DB-API connection under ``conn``, inside its
    transaction; returns ``(rowcount, first row or None)``.

    For the few statements every sent event runs (the room stream's lock, entry and
    advance): SQLAlchemy's execution of a compiled statement costs ~35 µs on top of
    the driver's ~10 µs here, a third of an announcement. ``sql`` is written once
    with ``?`` marks and must be valid on both dialects; errors are raised as
    SQLAlchemy's (``sa.exc.OperationalError`` for a locked SQLite file, as callers
    expect).
    """
    return _driver_call(conn, sql, params, many=False)


def driver_executemany(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """:func:`driver_execute` for many rows of parameters; returns the rowcount."""
    return _driver_call(conn, sql, rows, many=True)[0]


def _driver_call(conn: Connection, sql: str, params: Any, *, many: bool
                 ) -> tuple[int, Any]:
    dialect = conn.dialect
    if dialect.paramstyle != "qmark":
        sql = _format_marks(sql)
    raw = conn.connection.driver_connection
    dbapi = dialect.loaded_dbapi
    try:
        cursor = raw.cursor()
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
            row = cursor.fetchone() if cursor.description is not None else None
            return cursor.rowcount, row
        finally:
            cursor.close()
    except dbapi.Error as e:
        raise sa.exc.DBAPIError.instance(sql, params, e, dbapi.Error,
                                         dialect=dialect) from e


@functools.lru_cache(maxsize=64)
def _format_marks(sql: str) -> str:
    # psycopg2's "format" paramstyle: no literal % in these statements
    assert "%" not in sql, sql
    return sql.replace("?", "%s")


def _dialect_insert(name: str, table: sa.Table) -> Any:
    # imported here, where the engine has loaded its own dialect already: importing
    # both at start would load PostgreSQL's (about 2 MB) into every SQLite server
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise NotImplementedError(f"no upsert for dialect {name!r}")
    return insert(table)


def upsert(conn: Connection, table: sa.Table, values: Mapping[str, Any],
           key: Sequence[str], update: Sequence[str] | None = None,
           where: sa.ColumnElement[bool] | None = None) -> int:
    """INSERT, or on a conflict on ``key`` UPDATE the ``update`` columns.

    ``update`` defaults to every non-key column in ``values``; an empty ``update``
    means "insert if absent". ``where`` (may refer to ``excluded``, see
    :func:`excluded`) limits when an existing row is overwritten. Returns the number
    of rows written (0 when the conflict left the row untouched).
    """
    if update is None:
        update = [c for c in values if c not in key]
    if where is not None:
        stmt = _upsert_statement(conn.dialect.name, table, tuple(key), tuple(update), where)
    else:
        stmt = _cached_upsert(conn.dialect.name, table, tuple(key), tuple(update))
    # the values go as parameters, so the statement (and its compiled form) is reused
    return conn.execute(stmt, dict(values)).rowcount


def _upsert_statement(dialect: str, table: sa.Table, key: tuple[str, ...],
                      update: tuple[str, ...], where: Any = None) -> Any:
    stmt = _dialect_insert(dialect, table)
    if update:
        return stmt.on_conflict_do_update(
            index_elements=list(key),
            set_={c: stmt.excluded[c] for c in update},
            where=where,
        )
    return stmt.on_conflict_do_nothing(index_elements=list(key))


#: one statement object per shape: building one and computing its cache key on every
#: call cost more than the query itself in profiles of the send path
_cached_upsert = functools.lru_cache(maxsize=512)(_upsert_statement)


def insert_if_absent(conn: Connection, table: sa.Table, values: Mapping[str, Any],
                     key: Sequence[str]) -> bool:
    """INSERT unless a row with the same ``key`` exists; True if it was inserted."""
    return upsert(conn, table, values, key, update=()) == 1


def excluded(table: sa.Table, column: str) -> sa.ColumnElement[Any]:
    """The proposed value of ``column`` inside an upsert's ``where`` clause.

    Both dialects spell it ``excluded.<column>``.
    """
    return sa.literal_column(f"excluded.{column}", type_=table.c[column].type)
