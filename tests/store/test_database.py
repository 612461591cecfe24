"""The Database: migrations, transactions in the thread pool, lifecycle."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any
from unittest import mock

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from twisted.internet import defer, reactor
from twisted.trial import unittest

from homeserver.store import GlobalStore
from homeserver.store.database import (HEAD_REVISION, Database, DatabaseNotRunning,
                                       alembic_config)
from homeserver.store.positions import STREAMS
from homeserver.store.schema import metadata
from tests.store.backends import (PostgresBackend, SQLiteBackend, StoreTests,
                                  on_both_backends)


class MigrationTests(StoreTests):
    needs_database = False

    def _fresh(self) -> Database:
        backend = self.backend_class()
        config = backend.create()
        self.addCleanup(backend.drop)
        db = Database.from_config(config, reactor)
        self.addCleanup(db.engine.dispose)
        return db

    def test_migrate_from_empty(self) -> None:
        """Upgrading an empty database creates every table and seeds the streams."""
        db = self._fresh()
        db.migrate()
        with db.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            positions = dict(conn.exec_driver_sql(
                "SELECT stream_name, pos FROM stream_positions").all())
        self.assertTrue(set(metadata.tables) <= tables)
        self.assertEqual(positions, {s: 0 for s in STREAMS})

    def test_migrations_match_tables(self) -> None:
        """The migrated schema is exactly what the store modules declare."""
        db = self._fresh()
        db.migrate()
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            self.assertEqual(compare_metadata(ctx, metadata), [])

    def test_migrate_twice_and_downgrade(self) -> None:
        """Upgrading again is a no-op; downgrading to base removes every table."""
        db = self._fresh()
        db.migrate()
        db.migrate()
        db.downgrade("base")
        with db.engine.connect() as conn:
            left = set(sa.inspect(conn).get_table_names()) & set(metadata.tables)
        self.assertEqual(left, set())
        db.migrate()

    async def test_start_service_migrates(self) -> None:
        """startService migrates a fresh database before queries run."""
        db = self._fresh()
        db.startService()
        try:
            self.assertEqual(await GlobalStore(db).current_position("room"), 0)
        finally:
            await db.stopService()

    async def test_start_service_at_head_skips_alembic(self) -> None:
        """A database already at head starts without running alembic at all."""
        db = self._fresh()
        self.assertFalse(db.at_head())
        db.migrate()
        self.assertTrue(db.at_head())
        calls: list[tuple[str, str]] = []
        db._alembic = lambda command, revision: calls.append((command, revision))
        db.startService()
        await db.stopService()
        self.assertEqual(calls, [])

    async def test_start_service_upgrades_old_schema(self) -> None:
        """A database at an older revision is upgraded to head on start."""
        db = self._fresh()
        db.migrate()
        db.downgrade("-1")
        self.assertFalse(db.at_head())
        db.startService()
        await db.stopService()
        self.assertTrue(db.at_head())


class HeadRevisionTests(unittest.TestCase):
    def test_head_revision_is_alembic_head(self) -> None:
        """HEAD_REVISION names alembic's only head (update it with each migration)."""
        heads = ScriptDirectory.from_config(alembic_config()).get_heads()
        self.assertEqual(heads, [HEAD_REVISION])


class TransactionTests(StoreTests):
    async def test_run_returns_result(self) -> None:
        """run() hands fn a connection and returns fn's result."""
        result = await self.db.run(lambda conn, a, b: conn.execute(
            sa.select(sa.literal(a) + sa.literal(b))).scalar(), 2, 3)
        self.assertEqual(result, 5)

    async def test_run_rolls_back_on_error(self) -> None:
        """An exception in fn rolls the whole transaction back and propagates."""
        def txn(conn: sa.Connection) -> None:
            conn.exec_driver_sql(
                "INSERT INTO registration_tokens (token, pending, completed) "
                "VALUES ('t', 0, 0)")
            raise ValueError("boom")

        with self.assertRaises(ValueError):
            await self.db.run(txn)
        self.assertIsNone(await self.store.registration_tokens.get("t"))

    async def test_run_after_stop_raises(self) -> None:
        """Queries on a stopped database fail instead of hanging."""
        db = Database.from_config(type(self)._shared.config, reactor,
                                  migrate_on_start=False)
        db.startService()
        await db.stopService()
        with self.assertRaises(DatabaseNotRunning):
            await db.run(lambda conn: None)

    async def test_shrink_memory_on_sqlite_only(self) -> None:
        """shrink_memory runs ``PRAGMA shrink_memory`` in the pool on SQLite (nothing
        on PostgreSQL, nor once stopped); queries go on working after it."""
        from homeserver.store import database

        ran: list[str] = []
        real = database._shrink_memory
        self.patch(database, "_shrink_memory",
                   lambda conn: (ran.append(conn.dialect.name), real(conn)))
        self.db.shrink_memory()
        result = await self.db.run(lambda conn: conn.execute(sa.select(sa.literal(7))).scalar())
        self.assertEqual(result, 7)
        self.assertEqual(ran, ["sqlite"] if self.db.dialect == "sqlite" else [])
        stopped = Database.from_config(type(self)._shared.config, reactor,
                                       migrate_on_start=False)
        stopped.shrink_memory()   # not started: nothing to do, nothing raised
        self.addCleanup(stopped.engine.dispose)

    async def test_concurrent_runs(self) -> None:
        """Many queries in flight at once all complete."""
        from twisted.internet import defer

        ds = [defer.ensureDeferred(self.db.run(
            lambda conn, i: conn.execute(sa.select(sa.literal(i))).scalar(), i))
            for i in range(20)]
        self.assertEqual(await defer.gatherResults(ds), list(range(20)))


    async def test_inline_write_on_the_reactor_thread_when_the_pool_is_idle(self) -> None:
        """run_batched(inline=True): SQLite commits on the reactor thread when nothing
        of this process is in the pool; PostgreSQL, and SQLite with a transaction in
        flight, go through the pool. Either way the write is committed and the
        on_commit hook ran before the caller resumes."""
        threads_seen: list[str] = []
        hooked: list[int] = []

        def txn(conn: sa.Connection, token: str) -> int:
            threads_seen.append(threading.current_thread().name)
            conn.exec_driver_sql("INSERT INTO registration_tokens (token, pending, "
                                 f"completed) VALUES ('{token}', 0, 0)")
            return len(threads_seen)

        self.assertEqual(await self.db.run_batched(txn, "a", inline=True,
                                                   on_commit=hooked.append), 1)
        on_reactor = self.db.dialect == "sqlite"
        self.assertEqual(threads_seen[0] == "MainThread", on_reactor)

        release = threading.Event()
        busy = defer.ensureDeferred(self.db.run(lambda conn: release.wait(10)))
        second = defer.ensureDeferred(self.db.run_batched(txn, "b", inline=True,
                                                          on_commit=hooked.append))
        release.set()
        await busy
        self.assertEqual(await second, 2)
        self.assertNotEqual(threads_seen[1], "MainThread")
        self.assertEqual(hooked, [1, 2])
        for token in ("a", "b"):
            self.assertIsNotNone(await self.store.registration_tokens.get(token))


class InlineLockTests(StoreTests, unittest.TestCase):
    backend_class = SQLiteBackend
    _shared = None

    async def test_inline_write_waits_in_the_pool_while_another_process_writes(self
                                                                              ) -> None:
        """A database locked by another connection does not block the reactor: the
        inline write gives way at once and commits from the pool once the lock goes."""
        path = type(self)._shared.config["args"]["database"]
        other = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        threads_seen: list[str] = []

        def txn(conn: sa.Connection) -> str:
            threads_seen.append(threading.current_thread().name)
            conn.exec_driver_sql("INSERT INTO registration_tokens (token, pending, "
                                 "completed) VALUES ('locked', 0, 0)")
            return "done"

        d = defer.ensureDeferred(self.db.run_batched(txn, inline=True))
        self.assertFalse(d.called)  # not waiting on the reactor thread
        reactor.callLater(0.05, other.execute, "COMMIT")
        self.assertEqual(await d, "done")
        self.assertEqual(threads_seen[0], "MainThread")  # the try that gave way
        self.assertNotEqual(threads_seen[-1], "MainThread")
        self.assertIsNotNone(await self.store.registration_tokens.get("locked"))

    async def test_inline_writes_reuse_one_connection(self) -> None:
        """Inline writes run on one connection kept open; a write that raises rolls
        back (nothing of it stays) and the next one commits on a usable connection,
        a new one if the failure left the old one in a transaction."""
        connections: list[Any] = []

        def txn(conn: sa.Connection, token: str, fail: bool = False) -> str:
            connections.append(conn.connection.driver_connection)
            conn.exec_driver_sql("INSERT INTO registration_tokens (token, pending, "
                                 f"completed) VALUES ('{token}', 0, 0)")
            if fail:
                raise ValueError("refused")
            return token

        self.assertEqual(await self.db.run_batched(txn, "one", inline=True), "one")
        self.assertEqual(await self.db.run_batched(txn, "two", inline=True), "two")
        self.assertIs(connections[0], connections[1])
        with self.assertRaises(ValueError):
            await self.db.run_batched(txn, "bad", True, inline=True)
        self.assertIsNone(await self.store.registration_tokens.get("bad"))
        self.assertEqual(await self.db.run_batched(txn, "three", inline=True), "three")
        self.assertIs(connections[-1], connections[0])   # the rollback kept it usable

        # a COMMIT that fails leaves the transaction open: that connection is dropped
        held = self.db._inline_conn
        with mock.patch.object(held.dialect, "do_commit",
                               side_effect=sqlite3.OperationalError("disk I/O error")):
            with self.assertRaises(sa.exc.OperationalError):
                await self.db.run_batched(txn, "lost", inline=True)
        self.assertIsNot(self.db._inline_conn, held)
        self.assertEqual(await self.db.run_batched(txn, "four", inline=True), "four")
        self.assertIsNotNone(await self.store.registration_tokens.get("four"))
        self.assertIsNone(await self.store.registration_tokens.get("lost"))


MigrationTestsSQLite, MigrationTestsPostgres = on_both_backends(MigrationTests)
TransactionTestsSQLite, TransactionTestsPostgres = on_both_backends(TransactionTests)


class ConfigTests(unittest.TestCase):
    def test_sqlite_config(self) -> None:
        """A sqlite3 config gets one thread, WAL, NORMAL sync and foreign keys."""
        backend = SQLiteBackend()
        db = Database.from_config(backend.create(), reactor)
        self.addCleanup(backend.drop)
        self.addCleanup(db.engine.dispose)
        self.assertEqual(db.dialect, "sqlite")
        self.assertEqual((db._pool.min, db._pool.max), (1, 1))
        with db.engine.connect() as conn:
            self.assertEqual(conn.exec_driver_sql("PRAGMA journal_mode").scalar(), "wal")
            self.assertEqual(conn.exec_driver_sql("PRAGMA synchronous").scalar(), 1)
            self.assertEqual(conn.exec_driver_sql("PRAGMA foreign_keys").scalar(), 1)

    def test_postgres_config(self) -> None:
        """A psycopg2 config sizes the pool from cp_min/cp_max (no connection made)."""
        db = Database.from_config({"name": "psycopg2", "args": {
            "user": "u", "password": "p", "database": "d", "host": "h", "port": 1,
            "cp_min": 2, "cp_max": 6}}, reactor)
        self.assertEqual(db.dialect, "postgresql")
        self.assertEqual((db._pool.min, db._pool.max), (2, 6))

    def test_unknown_engine(self) -> None:
        """An unsupported database name is a config error."""
        with self.assertRaises(ValueError):
            Database.from_config({"name": "mysql", "args": {}}, reactor)

    def test_memory_sqlite(self) -> None:
        """':memory:' works (one shared connection), handy for other layers' tests."""
        db = Database.from_config({"name": "sqlite3", "args": {"database": ":memory:"}},
                                  reactor)
        db.migrate()
        with db.engine.connect() as conn:
            self.assertIn("users", sa.inspect(conn).get_table_names())
        db.engine.dispose()


class PostgresAvailabilityTests(unittest.TestCase):
    def test_unreachable_postgres_fails_loudly(self) -> None:
        """Without ROOMSERVER_SKIP_PG=1 an unreachable server is an error, not a skip."""
        import os

        backend = PostgresBackend()
        backend.server = dict(backend.server, port=1)
        saved = PostgresBackend._unreachable
        env = os.environ.pop("ROOMSERVER_SKIP_PG", None)
        try:
            with self.assertRaises(RuntimeError) as e:
                backend.create()
            self.assertIn("ROOMSERVER_SKIP_PG", str(e.exception))
            with self.assertRaises(RuntimeError):
                PostgresBackend.check_available()
            os.environ["ROOMSERVER_SKIP_PG"] = "1"
            with self.assertRaises(unittest.SkipTest):
                PostgresBackend.check_available()
        finally:
            PostgresBackend._unreachable = saved
            os.environ.pop("ROOMSERVER_SKIP_PG", None)
            if env is not None:
                os.environ["ROOMSERVER_SKIP_PG"] = env
