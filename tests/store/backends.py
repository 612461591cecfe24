"""Run each store test class against SQLite and PostgreSQL.

Write the tests once as a plain mixin class deriving from :class:`StoreTests`, then
generate the two trial classes::

    class AccountsTests(StoreTests):
        async def test_x(self): ...

    AccountsTestsSQLite, AccountsTestsPostgres = on_both_backends(AccountsTests)

Each generated class gets its own fresh database (a temp SQLite file, or a new
PostgreSQL database on 127.0.0.1:5432 as user ``postgres``), migrated once and
dropped when the class's last test has run (or at interpreter exit for partial
runs). Every test starts from empty tables and positions at 0.

PostgreSQL variants fail loudly when the server is unreachable; set
``ROOMSERVER_SKIP_PG=1`` to skip them instead. ``ROOMSERVER_PG_HOST``/``_PORT``/
``_USER`` point them elsewhere.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from typing import Any, ClassVar

import sqlalchemy as sa
from twisted.internet import reactor
from twisted.python import reflect
from twisted.trial import unittest

from homeserver.store import GlobalStore
from homeserver.store.database import Database
from homeserver.store.positions import stream_positions
from homeserver.store.schema import metadata

SKIP_PG_ENV = "ROOMSERVER_SKIP_PG"


class Backend:
    """Creates and drops one throw-away database."""

    name = ""

    def create(self) -> dict[str, Any]:
        """Create an empty database; returns its Synapse-style config."""
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


class SQLiteBackend(Backend):
    name = "SQLite"

    def create(self) -> dict[str, Any]:
        self._dir = tempfile.mkdtemp(prefix="roomserver-store-")
        return {"name": "sqlite3", "args": {"database": os.path.join(self._dir, "g.db")}}

    def drop(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


class PostgresBackend(Backend):
    name = "Postgres"
    _unreachable: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.server = dict(host=os.environ.get("ROOMSERVER_PG_HOST", "127.0.0.1"),
                           port=int(os.environ.get("ROOMSERVER_PG_PORT", "5432")),
                           user=os.environ.get("ROOMSERVER_PG_USER", "postgres"))

    @classmethod
    def check_available(cls) -> None:
        """Skip if asked to; otherwise fail (not skip) when the server is down."""
        if os.environ.get(SKIP_PG_ENV) == "1":
            raise unittest.SkipTest(f"{SKIP_PG_ENV}=1: PostgreSQL variants skipped")
        if cls._unreachable is not None:
            raise RuntimeError(cls._unreachable)

    def _admin(self) -> Any:
        import psycopg2

        try:
            conn = psycopg2.connect(dbname="postgres", connect_timeout=5, **self.server)
        except psycopg2.OperationalError as e:
            PostgresBackend._unreachable = (
                f"PostgreSQL unreachable at {self.server}: {e!s}".strip()
                + f" (set {SKIP_PG_ENV}=1 to skip the PostgreSQL variants)")
            raise RuntimeError(PostgresBackend._unreachable) from e
        conn.autocommit = True
        return conn

    def create(self) -> dict[str, Any]:
        self.database = f"roomserver_test_{uuid.uuid4().hex[:12]}"
        conn = self._admin()
        try:
            conn.cursor().execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()
        return {"name": "psycopg2",
                "args": dict(self.server, database=self.database, cp_min=1, cp_max=4)}

    def drop(self) -> None:
        conn = self._admin()
        try:
            conn.cursor().execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            conn.close()


def _wipe(engine: sa.Engine) -> None:
    """Empty every table and reset ids/positions, keeping the migrated schema."""
    tables = [t for t in metadata.sorted_tables if t is not stream_positions]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            for table in reversed(tables):
                conn.execute(table.delete())
            conn.exec_driver_sql("DELETE FROM sqlite_sequence")
        conn.execute(stream_positions.update().values(pos=0))


class _SharedDatabase:
    """One migrated database shared by the tests of one generated class."""

    def __init__(self, backend: Backend, test_count: int) -> None:
        self.backend = backend
        self.config = backend.create()
        self.remaining = test_count
        self.dropped = False
        atexit.register(self.drop)
        db = Database.from_config(self.config, reactor)
        try:
            db.migrate()
        finally:
            db.engine.dispose()

    def drop(self) -> None:
        if not self.dropped:
            self.dropped = True
            self.backend.drop()


class StoreTests:
    """Mixin base of the store tests: ``self.db`` (running) and ``self.store``."""

    backend_class: ClassVar[type[Backend]]
    _shared: ClassVar[_SharedDatabase | None] = None

    db: Database
    store: GlobalStore

    def setUp(self) -> None:
        cls = type(self)
        if cls.backend_class is PostgresBackend:
            PostgresBackend.check_available()
        if cls.__dict__.get("_shared") is None:
            names = reflect.prefixedMethodNames(cls, "test")
            cls._shared = _SharedDatabase(cls.backend_class(), len(names))
        self.db = Database.from_config(cls._shared.config, reactor,
                                       migrate_on_start=False)
        _wipe(self.db.engine)
        self.db.startService()
        self.store = GlobalStore(self.db)

    async def tearDown(self) -> None:
        await self.db.stopService()
        shared = type(self)._shared
        if shared is not None:
            shared.remaining -= 1
            if shared.remaining <= 0:
                shared.drop()


def on_both_backends(tests: type) -> tuple[type, type]:
    """The SQLite and PostgreSQL trial classes for the mixin ``tests``."""
    made = []
    for backend in (SQLiteBackend, PostgresBackend):
        name = f"{tests.__name__}{backend.name}"
        made.append(type(name, (tests, unittest.TestCase), {
            "__module__": tests.__module__, "__qualname__": name,
            "backend_class": backend, "_shared": None,
        }))
    return made[0], made[1]
