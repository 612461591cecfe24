"""Run each store test class against SQLite and PostgreSQL.

Write the tests once as a plain mixin class deriving from :class:`StoreTests`, then
generate the two trial classes::

    class AccountsTests(StoreTests):
        async def test_x(self): ...

    AccountsTestsSQLite, AccountsTestsPostgres = on_both_backends(AccountsTests)

Each generated class gets its own fresh database (a temp SQLite file, or a new
PostgreSQL database on 127.0.0.1:5432 as user ``postgres``, copied from a template
migrated once per process), dropped when the class's last test has run, at
interpreter exit for partial runs, or by a later run if the process died first.
Every test starts from empty tables and positions at 0.

PostgreSQL variants fail loudly when the server is unreachable; set
``ROOMSERVER_SKIP_PG=1`` to skip them instead. ``ROOMSERVER_PG_HOST``/``_PORT``/
``_USER`` point them elsewhere.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
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

    def create_migrated(self) -> dict[str, Any]:
        """Create a database with the schema at head; returns its config."""
        config = self.create()
        _migrate(config)
        return config

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

    #: a database migrated once per process; classes copy it (CREATE … TEMPLATE),
    #: which is much faster than migrating each class's database
    _template: ClassVar["PostgresBackend | None"] = None

    _reaped: ClassVar[bool] = False

    def create(self, template: str | None = None) -> dict[str, Any]:
        # the creating process's pid is in the name, so databases left behind by a
        # process that died before its atexit hooks ran can be recognised and dropped
        self.database = f"{_PG_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:8]}"
        conn = self._admin()
        try:
            if not PostgresBackend._reaped:
                PostgresBackend._reaped = True
                _drop_orphans(conn)
            clause = f' TEMPLATE "{template}"' if template else ""
            conn.cursor().execute(f'CREATE DATABASE "{self.database}"{clause}')
        finally:
            conn.close()
        # tests need no durability: skip the WAL flush on each commit (extra psycopg2
        # args pass through, as in Synapse's config)
        return {"name": "psycopg2",
                "args": dict(self.server, database=self.database, cp_min=1, cp_max=4,
                             options="-c synchronous_commit=off")}

    def create_migrated(self) -> dict[str, Any]:
        cls = PostgresBackend
        if cls._template is None:
            template = PostgresBackend()
            _migrate(template.create())
            atexit.register(template.drop)
            cls._template = template
        return self.create(template=cls._template.database)

    def drop(self) -> None:
        conn = self._admin()
        try:
            conn.cursor().execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            conn.close()


_PG_PREFIX = "roomserver_test_"


def _drop_orphans(conn: Any) -> None:
    """Drop test databases whose creating process (on this host) is gone."""
    cur = conn.cursor()
    cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                (_PG_PREFIX + "%",))
    for (name,) in cur.fetchall():
        pid = name[len(_PG_PREFIX):].split("_", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            try:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception:   # another run is reaping it too; never fail a test here
                pass
        except PermissionError:
            pass    # alive, someone else's


def _migrate(config: dict[str, Any]) -> None:
    db = Database.from_config(config, reactor)
    try:
        db.migrate()
    finally:
        db.engine.dispose()


def _wipe(engine: sa.Engine) -> None:
    """Empty every table and reset ids/positions, keeping the migrated schema.

    DELETE rather than TRUNCATE: on tiny tables it is ~20x faster on PostgreSQL.
    """
    tables = [t for t in metadata.sorted_tables if t is not stream_positions]
    with engine.begin() as conn:
        for table in reversed(tables):
            conn.execute(table.delete())
        if engine.dialect.name == "postgresql":
            for table in tables:
                for col in table.primary_key.columns:
                    if col.autoincrement is True:
                        conn.exec_driver_sql(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                            f"'{col.name}'), 1, false)")
        else:
            conn.exec_driver_sql("DELETE FROM sqlite_sequence")
        conn.execute(stream_positions.update().values(pos=0))


class _SharedDatabase:
    """One migrated database shared by the tests of one generated class."""

    def __init__(self, backend: Backend, test_count: int) -> None:
        self.backend = backend
        self.config = backend.create_migrated()
        self.remaining = test_count
        self.dropped = False
        atexit.register(self.drop)

    def drop(self) -> None:
        if not self.dropped:
            self.dropped = True
            self.backend.drop()

    def drop_in_background(self) -> None:
        """Drop without waiting (DROP DATABASE takes ~1s); joined at exit."""
        if not self.dropped:
            self.dropped = True
            thread = threading.Thread(target=self.backend.drop,
                                      name="drop-test-database")
            thread.start()
            atexit.register(thread.join)


class StoreTests:
    """Mixin base of the store tests: ``self.db`` (running) and ``self.store``.

    A class that makes its own databases sets ``needs_database = False``.
    """

    backend_class: ClassVar[type[Backend]]
    needs_database: ClassVar[bool] = True
    _shared: ClassVar[_SharedDatabase | None] = None

    db: Database
    store: GlobalStore

    def setUp(self) -> None:
        cls = type(self)
        if cls.backend_class is PostgresBackend:
            PostgresBackend.check_available()
        if not cls.needs_database:
            return
        if cls.__dict__.get("_shared") is None:
            names = reflect.prefixedMethodNames(cls, "test")
            cls._shared = _SharedDatabase(cls.backend_class(), len(names))
        self.db = Database.from_config(cls._shared.config, reactor,
                                       migrate_on_start=False)
        _wipe(self.db.engine)
        self.db.startService()
        self.store = GlobalStore(self.db)

    def record_runs(self) -> list:
        """From now on, note the function of every ``self.db.run`` (for tests of what
        is answered without a database round trip); returns the growing list."""
        calls: list = []
        real = self.db.run

        async def recording(fn, *args):
            calls.append(fn)
            return await real(fn, *args)

        self.db.run = recording  # type: ignore[method-assign]
        return calls

    async def tearDown(self) -> None:
        if not self.needs_database:
            return
        await self.db.stopService()
        shared = type(self)._shared
        if shared is not None:
            shared.remaining -= 1
            if shared.remaining <= 0:
                shared.drop_in_background()


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
