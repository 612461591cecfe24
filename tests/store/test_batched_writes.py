"""Database.run_batched: group commit of short writes; a failing one fails alone."""

from __future__ import annotations

import sqlalchemy as sa
from twisted.internet import defer, reactor, threads

from homeserver.store import positions
from homeserver.store.database import Database, DatabaseNotRunning
from tests.store.backends import StoreTests, on_both_backends

_INSERT = ("INSERT INTO registration_tokens (token, pending, completed) "
           "VALUES (:t, 0, 0)")


def insert(conn: sa.Connection, token: str) -> str:
    conn.execute(sa.text(_INSERT), {"t": token})
    return token


class BatchedWriteTests(StoreTests):
    def count_transactions(self) -> list[int]:
        sizes: list[int] = []
        real = self.db._transact_batch

        def counting(calls, *args, **kwargs):
            sizes.append(len(calls))
            return real(calls, *args, **kwargs)

        self.db._transact_batch = counting
        return sizes

    async def test_calls_of_one_turn_share_a_transaction(self) -> None:
        sizes = self.count_transactions()
        ds = [defer.ensureDeferred(self.db.run_batched(insert, f"t{i}")) for i in range(5)]
        self.assertEqual(await defer.gatherResults(ds), [f"t{i}" for i in range(5)])
        self.assertEqual(sizes, [5])
        for i in range(5):
            self.assertIsNotNone(await self.store.registration_tokens.get(f"t{i}"))

    async def test_no_savepoints_unless_a_call_fails(self) -> None:
        """A batch whose calls all succeed runs without a savepoint per call; one
        with a failing call is written again with them."""
        statements: list[str] = []

        def seen(conn, cursor, statement, *args) -> None:
            statements.append(statement.upper())

        sa.event.listen(self.db.engine, "before_cursor_execute", seen)
        self.addCleanup(sa.event.remove, self.db.engine, "before_cursor_execute", seen)
        ds = [defer.ensureDeferred(self.db.run_batched(insert, f"s{i}")) for i in range(3)]
        await defer.gatherResults(ds)
        self.assertEqual([s for s in statements if "SAVEPOINT" in s], [])

        def boom(conn: sa.Connection) -> None:
            raise ValueError("boom")

        ds = [defer.ensureDeferred(self.db.run_batched(insert, "s3")),
              defer.ensureDeferred(self.db.run_batched(boom))]
        results = await defer.DeferredList(ds, consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [True, False])
        self.assertTrue(any("SAVEPOINT" in s for s in statements))
        self.assertIsNotNone(await self.store.registration_tokens.get("s3"))

    async def test_behind_calls_go_together_after_this_turn(self) -> None:
        """run_behind: calls of the same moment are one transaction, written after the
        current turn's work (not inside the caller's call); on SQLite with an idle pool
        on the reactor thread, else in the pool; a failing call fails alone."""
        import threading
        seen: list[str] = []

        def where(conn: sa.Connection, token: str) -> str:
            seen.append(threading.current_thread().name)
            return insert(conn, token)

        def boom(conn: sa.Connection) -> None:
            raise ValueError("boom")

        sizes = self.count_transactions()
        ds = [defer.ensureDeferred(self.db.run_behind(where, f"r{i}")) for i in range(3)]
        bad = defer.ensureDeferred(self.db.run_behind(boom))
        self.assertEqual(seen, [])   # nothing ran inside the callers' turn
        self.assertEqual(await defer.gatherResults(ds), ["r0", "r1", "r2"])
        with self.assertRaises(ValueError):
            await bad
        on_reactor = self.db.dialect == "sqlite"
        self.assertEqual(set(seen) == {"MainThread"}, on_reactor)
        if not on_reactor:
            self.assertEqual(sizes, [4])   # one pool batch
        for i in range(3):
            self.assertIsNotNone(await self.store.registration_tokens.get(f"r{i}"))

    async def test_behind_calls_wait_for_a_locked_database_in_the_pool(self) -> None:
        """A write of the pool's holding the lock: the behind batch goes to the pool
        after it instead of failing."""
        import threading
        release, started = threading.Event(), threading.Event()

        def writing(conn: sa.Connection) -> None:
            insert(conn, "pool")
            started.set()
            release.wait(10)

        busy = defer.ensureDeferred(self.db.run(writing))
        await threads.deferToThread(started.wait, 10)
        later = defer.ensureDeferred(self.db.run_behind(insert, "behind"))
        reactor.callLater(0.05, release.set)
        await busy
        self.assertEqual(await later, "behind")

    async def test_calls_while_a_batch_is_written_join_the_next(self) -> None:
        sizes = self.count_transactions()
        first = defer.ensureDeferred(self.db.run_batched(insert, "a"))
        d: defer.Deferred = defer.Deferred()
        reactor.callLater(0.001, d.callback, None)
        await d  # the first batch is on its way now
        later = [defer.ensureDeferred(self.db.run_batched(insert, f"b{i}"))
                 for i in range(3)]
        await defer.gatherResults([first] + later)
        self.assertEqual(sum(sizes), 4)
        self.assertEqual(sizes[0], 1)

    async def test_one_failing_call_fails_alone(self) -> None:
        def boom(conn: sa.Connection) -> None:
            insert(conn, "doomed")
            positions.advance(conn, positions.ROOM, 10 ** 9)  # rolled back with it
            raise ValueError("boom")

        advanced: list[dict] = []
        self.db.add_advance_listener(advanced.append)
        ok1 = defer.ensureDeferred(self.db.run_batched(insert, "x"))
        bad = defer.ensureDeferred(self.db.run_batched(boom))
        ok2 = defer.ensureDeferred(self.db.run_batched(insert, "y"))
        self.assertEqual(await ok1, "x")
        with self.assertRaises(ValueError):
            await bad
        self.assertEqual(await ok2, "y")
        self.assertIsNone(await self.store.registration_tokens.get("doomed"))
        self.assertIsNotNone(await self.store.registration_tokens.get("y"))
        self.assertEqual(advanced, [])  # the only advance was rolled back

    async def test_a_call_alone_fails_with_its_transaction(self) -> None:
        def duplicate(conn: sa.Connection) -> None:
            insert(conn, "dup")

        await self.db.run(insert, "dup")
        # alone in its batch: the failure is the transaction's
        with self.assertRaises(sa.exc.IntegrityError):
            await self.db.run_batched(duplicate)

    async def test_every_hook_runs_before_any_caller_resumes(self) -> None:
        """on_commit hooks of a batch all run, then listeners, then callers resume."""
        order: list[str] = []
        self.db.add_advance_listener(lambda advanced: order.append("listeners"))

        def advancing(conn: sa.Connection, token: str) -> str:
            positions.advance(conn, positions.ROOM, 1)
            return insert(conn, token)

        async def call(token: str) -> None:
            await self.db.run_batched(advancing, token,
                                      on_commit=lambda r: order.append(f"hook {r}"))
            order.append(f"resumed {token}")

        await defer.gatherResults([defer.ensureDeferred(call(t)) for t in "abc"])
        self.assertEqual(order, ["hook a", "hook b", "hook c", "listeners",
                                 "resumed a", "resumed b", "resumed c"])

    async def test_hooks_of_failed_calls_do_not_run(self) -> None:
        """A call rolled back to its savepoint (or whose batch failed) has no hook run."""
        ran: list[str] = []

        def boom(conn: sa.Connection) -> None:
            raise ValueError("boom")

        ok = defer.ensureDeferred(self.db.run_batched(insert, "h1", on_commit=ran.append))
        bad = defer.ensureDeferred(self.db.run_batched(boom, on_commit=ran.append))
        self.assertEqual(await ok, "h1")
        with self.assertRaises(ValueError):
            await bad
        with self.assertRaises(sa.exc.IntegrityError):  # alone: the batch fails
            await self.db.run_batched(insert, "h1", on_commit=ran.append)
        self.assertEqual(ran, ["h1"])

    async def test_a_failing_hook_fails_nobody(self) -> None:
        """A hook that raises is logged; its call and the others still succeed."""
        def broken(_result: str) -> None:
            raise RuntimeError("hook")

        ds = [defer.ensureDeferred(self.db.run_batched(insert, "f1", on_commit=broken)),
              defer.ensureDeferred(self.db.run_batched(insert, "f2"))]
        self.assertEqual(await defer.gatherResults(ds), ["f1", "f2"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    async def test_writes_still_gathering_are_written_on_stop(self) -> None:
        """Stopping the database writes what run_behind and run_batched were still
        gathering instead of failing it."""
        db = Database.from_config(type(self)._shared.config, reactor,
                                  migrate_on_start=False)
        db.startService()
        behind = defer.ensureDeferred(db.run_behind(insert, "gathered"))
        batched = defer.ensureDeferred(db.run_batched(insert, "batched"))
        await db.stopService()
        self.assertEqual(await behind, "gathered")
        self.assertEqual(await batched, "batched")
        for token in ("gathered", "batched"):
            self.assertIsNotNone(await self.store.registration_tokens.get(token))

    async def test_after_stop_raises(self) -> None:
        db = Database.from_config(type(self)._shared.config, reactor,
                                  migrate_on_start=False)
        db.startService()
        await db.stopService()
        with self.assertRaises(DatabaseNotRunning):
            await db.run_batched(insert, "z")


BatchedWriteTestsSQLite, BatchedWriteTestsPostgres = on_both_backends(BatchedWriteTests)
