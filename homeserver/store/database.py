"""The global database: a SQLAlchemy engine plus the thread pool its queries run in.

DESIGN.md §4. SQLAlchemy Core is blocking, so transactions run in a dedicated Twisted
thread pool and the reactor only awaits their result; on SQLite, short writes on a
send's path may commit on the reactor thread instead (``run_batched(inline=True)``,
``run_behind``; README, "Departures from DESIGN.md"). SQLite gets exactly one
thread (one writer; WAL lets readers in other processes proceed); PostgreSQL gets a
few (``cp_min``…``cp_max``, as in Synapse's config).

The schema is managed by alembic; :meth:`Database.migrate` upgrades to head and runs
at start-up (before the pool starts) unless the caller opts out. A database already at
:data:`HEAD_REVISION` is recognised with one plain query, so a normal start never
imports alembic (about 6 MB of resident memory).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator, Mapping, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from homeserver.store import positions

T = TypeVar("T")

_MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
#: pg_advisory_xact_lock key held while migrating, so that several processes
#: starting together do not race each other's DDL
_MIGRATION_LOCK_KEY = 0x726F6F6D  # "room"

#: The newest revision in ``migrations/versions``. Adding a migration means updating
#: this too: tests/store/test_database.py compares it with alembic's own head.
HEAD_REVISION = "0017_delayed_events"


class DatabaseNotRunning(RuntimeError):
    """A query was issued while the database service is stopped."""


class Database(Service):
    """Owns the engine and the thread pool; runs ``fn(conn, *args)`` in a transaction.

    An ``IService``: ``startService`` migrates (optionally) and starts the pool,
    ``stopService`` returns a Deferred that fires once the pool's threads are gone.
    """

    log = Logger()

    def __init__(self, engine: Engine, reactor: Any, *, min_threads: int = 1,
                 max_threads: int = 1, migrate_on_start: bool = True) -> None:
        self.engine = engine
        #: SQLite: the connection short writes may use on the reactor thread
        #: (:meth:`run_batched` with ``inline=True``)
        self._inline_engine = _inline_engine(engine)
        #: the inline engine's one connection, kept open: a pool checkout and return
        #: per transaction (the return rolls back) was a third of an announcement's
        #: ~300 µs
        self._inline_conn: Connection | None = None
        #: pool transactions submitted and not yet back on the reactor thread
        self._in_flight = 0
        self._inline_commits = 0
        #: run_behind: calls waiting for their batch, and its delayed call
        self._behind: list[tuple[Callable[..., Any], tuple, defer.Deferred, None]] = []
        self._behind_call: Any = None
        self.reactor = reactor
        self.migrate_on_start = migrate_on_start
        self.name = "database"
        self._pool = ThreadPool(min_threads, max_threads, name="global-db")
        self._advance_listeners: list[Callable[[dict[str, int]], None]] = []
        #: run_batched: calls waiting for the next batch, and its state
        self._batch: list[tuple[Callable[..., Any], tuple, defer.Deferred,
                                Callable[[Any], None] | None]] = []
        self._batch_busy = False
        self._batch_call: Any = None

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Mapping[str, Any], reactor: Any, *,
                    migrate_on_start: bool = True) -> "Database":
        """Build from Synapse's ``database`` section.

        ``{"name": "sqlite3", "args": {"database": path}}`` or
        ``{"name": "psycopg2", "args": {"user", "password", "database", "host",
        "port", "cp_min", "cp_max", …}}``; other psycopg2 args pass through to
        ``psycopg2.connect`` (e.g. ``sslmode``, ``keepalives_idle``).
        """
        name = config.get("name", "sqlite3")
        args = dict(config.get("args") or {})
        if name in ("sqlite3", "sqlite"):
            engine = sqlite_engine(args.get("database", "homeserver.db"))
            threads_ = (1, 1)
        elif name in ("psycopg2", "postgresql", "postgres"):
            cp_min = int(args.pop("cp_min", 1))
            cp_max = max(cp_min, int(args.pop("cp_max", 4)), 1)
            engine = postgres_engine(args, pool_size=cp_max)
            threads_ = (max(cp_min, 0), cp_max)
        else:
            raise ValueError(f"unsupported database engine {name!r} "
                             "(expected 'sqlite3' or 'psycopg2')")
        return cls(engine, reactor, min_threads=threads_[0], max_threads=threads_[1],
                   migrate_on_start=migrate_on_start)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def now_ms(self) -> int:
        """The injected reactor's clock, in milliseconds."""
        return int(self.reactor.seconds() * 1000)

    # -- schema -----------------------------------------------------------------------
    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` with alembic, synchronously."""
        self._alembic("upgrade", revision)

    def at_head(self) -> bool:
        """Whether ``alembic_version`` holds exactly :data:`HEAD_REVISION`.

        Read without alembic. Anything else (no table yet, an older revision, one this
        code does not know) is left to :meth:`migrate`, which upgrades or fails loudly.
        """
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return False
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            return set(versions.scalars()) == {HEAD_REVISION}

    def downgrade(self, revision: str) -> None:
        """Downgrade the schema to ``revision`` (for tests and operators)."""
        self._alembic("downgrade", revision)

    def _alembic(self, command_name: str, revision: str) -> None:
        from alembic import command

        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                             {"k": _MIGRATION_LOCK_KEY})
            cfg = alembic_config(conn)
            getattr(command, command_name)(cfg, revision)

    # -- IService ---------------------------------------------------------------------
    def startService(self) -> None:
        if self.migrate_on_start and not self.at_head():
            self.migrate()
        self._pool.start()
        super().startService()

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        # writes still gathering (run_behind, run_batched) go now: the pool finishes
        # the work queued before it stops
        self.write_behind_now()
        if self._batch and not self._batch_busy:
            if self._batch_call is not None and self._batch_call.active():
                self._batch_call.cancel()
            self._write_batch()
        # ThreadPool.stop joins its threads: do that off the reactor thread
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                      self._pool.stop)
        d.addCallback(lambda _: self._dispose())
        return d

    def _dispose(self) -> None:
        if self._inline_conn is not None:
            self._inline_conn.close()
            self._inline_conn = None
        self.engine.dispose()
        if self._inline_engine is not None and self._inline_engine is not self.engine:
            self._inline_engine.dispose()

    def shrink_memory(self) -> defer.Deferred | None:
        """SQLite: give back the page cache of the global DB's connection (its pages are
        read again from the file, mostly in the OS's cache, when next needed). Called
        when hibernated rooms' memory is returned (``rooms/actor/memory.py``): with
        2,000 rooms the cache holds ~2 MB of the room stream and memberships, which
        stayed resident at rest. Runs in the pool; the Deferred fires once done (a
        failure is logged, not passed on); None if there is nothing to do."""
        if self.dialect != "sqlite" or not self.running:
            return None
        if self._inline_engine is not None and self._inline_engine is not self.engine:
            # the reactor thread's own connection (inline writes run on this thread,
            # so none is in progress now)
            with self._inline_transaction() as conn:
                conn.exec_driver_sql("PRAGMA shrink_memory")
        return defer.ensureDeferred(self.run(_shrink_memory)).addErrback(
            lambda f: self.log.failure("PRAGMA shrink_memory failed", f))

    # -- queries ----------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in one transaction in the pool; return its result.

        The transaction commits if ``fn`` returns and rolls back if it raises.
        """
        self._check_running()
        self._in_flight += 1
        try:
            results, advanced = await threads.deferToThreadPool(
                self.reactor, self._pool, self._transact_batch, [(fn, args)])
        finally:
            self._in_flight -= 1
        self._tell_listeners(advanced)
        return results[0][1]  # a batch of one: its failure raised above

    async def run_batched(self, fn: Callable[..., T], *args: Any,
                          on_commit: Callable[[T], None] | None = None,
                          inline: bool = False) -> T:
        """Like :meth:`run`, for short writes that many callers issue at once (room
        announcements, client transaction records): calls made in the same reactor
        turn, or while the previous batch is being written, go together into one
        transaction: one trip to the pool and one commit for all (group commit).

        A call that raises fails alone (the batch is then written again with a
        savepoint per call, so ``fn`` may run twice and must keep its effects to the
        transaction); if the commit fails, every call of the batch fails.

        ``on_commit(result)`` runs on the reactor thread once the batch committed,
        before the advance listeners hear of its positions and before *any* caller of
        the batch resumes. In-memory views of what the call wrote belong there: the
        first caller to resume may wake code (a long-polling /sync) that reads the
        batch's new positions at once, while the other callers of the batch have not
        resumed yet.

        ``inline=True`` (SQLite only; for the short writes on a request's critical
        path, the room announcements): when no transaction of this process is in the
        pool, the write runs at once on the reactor thread, as the room databases'
        commits do: SQLite writes into the page cache without an fsync (WAL,
        ``synchronous=NORMAL``; this connection never checkpoints, the pool's does),
        and the two thread hops of the pool (~1.5 ms of a send's path, issue 16) are
        saved. If the database is locked (another process writing) it waits its turn
        in the pool instead.
        """
        self._check_running()
        if inline and self._inline_engine is not None and self._pool_idle():
            try:
                results, advanced = self._transact_batch([(fn, args)], inline=True)
            except sa.exc.OperationalError as e:
                if not _is_busy(e):
                    raise
            else:
                value = results[0][1]
                if on_commit is not None:
                    on_commit(value)
                self._tell_listeners(advanced)
                self._inline_committed()
                return value
        done: defer.Deferred = defer.Deferred()
        self._batch.append((fn, args, done, on_commit))
        self._schedule_batch()
        return await done

    async def run_behind(self, fn: Callable[..., T], *args: Any) -> T:
        """A short write that no request waits for (notification rows): the calls of
        the next ``_BEHIND_DELAY`` seconds are written together,
        after the work of this reactor turn (the long-polls a send wakes are answered
        first). On SQLite, when the pool has nothing of ours in flight, the batch
        commits on the reactor thread like an inline announcement, so that the
        announcements that follow find the pool idle too instead of waiting behind
        it; else (busy, locked, PostgreSQL) it joins :meth:`run_batched`'s next batch.
        Failures are per call, as in :meth:`run_batched`."""
        self._check_running()
        if self._inline_engine is None:
            return await self.run_batched(fn, *args)
        done: defer.Deferred = defer.Deferred()
        self._behind.append((fn, args, done, None))
        if self._behind_call is None:
            self._behind_call = self.reactor.callLater(_BEHIND_DELAY, self._write_behind)
        return await done

    def write_behind_now(self) -> None:
        """Write what :meth:`run_behind` is gathering now, not at the end of its delay
        (a reader of those rows is waiting)."""
        if self._behind_call is not None and self._behind_call.active():
            self._behind_call.cancel()
            self._write_behind()

    def _write_behind(self) -> None:
        self._behind_call = None
        items, self._behind = self._behind, []
        if not self._running_or_fail(items):
            return
        if self._pool_idle():
            try:
                results, advanced = self._transact_batch(
                    [(fn, args) for fn, args, _, _ in items], inline=True)
            except Exception as e:
                if not (isinstance(e, sa.exc.OperationalError) and _is_busy(e)):
                    _fail(items, Failure())   # the commit failed: every call did
                    return
            else:
                self._tell_listeners(advanced)
                self._inline_committed()
                for (ok, value), (_, _, done, _) in zip(results, items):
                    done.callback(value) if ok else done.errback(value)
                return
        self._batch.extend(items)   # busy or locked: the pool's next batch
        self._schedule_batch()

    def _pool_idle(self) -> bool:
        """Nothing of ours in the pool or waiting for it: a write on the reactor
        thread can neither meet a lock of ours nor overtake an earlier write."""
        return self._in_flight == 0 and not self._batch and not self._batch_busy

    def _check_running(self) -> None:
        if not self._pool.started or self._pool.joined:
            raise DatabaseNotRunning("the database service is not running")

    def _running_or_fail(self, items: list) -> bool:
        """Whether the database runs; if not, every call of ``items`` fails."""
        try:
            self._check_running()
        except DatabaseNotRunning:
            _fail(items, Failure())
            return False
        return True

    def _schedule_batch(self) -> None:
        if not self._batch_busy and self._batch_call is None:
            self._batch_call = self.reactor.callLater(0, self._write_batch)

    def _write_batch(self) -> None:
        self._batch_call = None
        items, self._batch = self._batch, []
        if not self._running_or_fail(items):
            return
        self._batch_busy = True
        self._in_flight += 1
        d = threads.deferToThreadPool(self.reactor, self._pool, self._transact_batch,
                                      [(fn, args) for fn, args, _, _ in items])
        d.addBoth(self._batch_written, [(done, hook) for _, _, done, hook in items])

    def _batch_written(self, outcome: Any,
                       waiting: list[tuple[defer.Deferred, Callable[[Any], None] | None]]
                       ) -> None:
        self._batch_busy = False
        self._in_flight -= 1
        if isinstance(outcome, Failure):
            for done, _ in waiting:
                done.errback(outcome)
        else:
            results, advanced = outcome
            # Resuming a caller runs its code (and whatever it wakes) to its next real
            # wait, before the next caller resumes: every caller's in-memory view of
            # the batch is updated first, then its positions are published
            # (as in run()), and only then does anyone resume.
            for (ok, value), (_, hook) in zip(results, waiting):
                if ok and hook is not None:
                    try:
                        hook(value)
                    except Exception:
                        self.log.failure("on_commit hook of a batched write failed")
            self._tell_listeners(advanced)
            for (ok, value), (done, _) in zip(results, waiting):
                done.callback(value) if ok else done.errback(value)
        if self._batch:
            self._schedule_batch()

    def _inline_committed(self) -> None:
        # The inline connection never checkpoints (a checkpoint fsyncs): every so many
        # of its commits, the pool's connection copies the WAL back, off the reactor.
        self._inline_commits += 1
        if self._inline_commits % _INLINE_CHECKPOINT_EVERY == 0:
            self._pool.callInThread(self._checkpoint)

    def _checkpoint(self) -> None:
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:
            self.log.failure("global database checkpoint failed")
        finally:
            raw.close()

    @contextlib.contextmanager
    def _inline_transaction(self) -> Iterator[Connection]:
        """A transaction on the inline engine's connection (reactor thread only),
        opened on first use and again after a failure left it unusable."""
        if self._inline_engine is self.engine:   # :memory:: the one shared connection
            with self.engine.begin() as conn:
                yield conn
            return
        conn = self._inline_conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._inline_conn = self._inline_engine.connect()
        try:
            with conn.begin():
                yield conn
        except BaseException:
            # SQLAlchemy rolls back a transaction whose statements failed, but not one
            # whose COMMIT failed (its pool reset used to): such a connection, still
            # inside its transaction, is closed (which rolls back) and not reused
            if _still_in_transaction(conn):
                self._inline_conn = None
                try:
                    conn.close()
                except Exception:
                    self.log.failure("closing the inline connection failed")
            raise

    def _transact_batch(self, calls: list[tuple[Callable[..., Any], tuple]],
                        inline: bool = False
                        ) -> tuple[list[tuple[bool, Any]], dict | None]:
        begin = self._inline_transaction if inline else self.engine.begin
        if len(calls) > 1:
            # Most batches have no failing call: all of them in one transaction without
            # a savepoint each (two statements per call). If one raises, that try rolls
            # back and the batch runs again with savepoints (the calls are transaction
            # functions: what they did is undone with the transaction).
            try:
                with begin() as conn:
                    conn.info.pop(positions.ADVANCED, None)
                    results = [(True, fn(conn, *args)) for fn, args in calls]
                    advanced = conn.info.pop(positions.ADVANCED, None)
                return results, advanced
            except sa.exc.OperationalError as e:
                if inline and _is_busy(e):
                    raise   # inline and locked: the caller hands the batch to the pool
            except Exception:
                pass
        results = []
        with begin() as conn:
            conn.info.pop(positions.ADVANCED, None)  # left by a rolled-back transaction
            if len(calls) == 1:  # alone: its failure is the transaction's
                fn, args = calls[0]
                results.append((True, fn(conn, *args)))
            else:
                for fn, args in calls:
                    before = dict(conn.info.get(positions.ADVANCED) or {})
                    try:
                        with conn.begin_nested():
                            results.append((True, fn(conn, *args)))
                    except sa.exc.OperationalError as e:
                        if inline and _is_busy(e):
                            raise
                        conn.info[positions.ADVANCED] = before
                        results.append((False, Failure()))
                    except Exception:
                        conn.info[positions.ADVANCED] = before  # rolled back: not written
                        results.append((False, Failure()))
            advanced = conn.info.pop(positions.ADVANCED, None)
        return results, advanced  # only reached once the transaction has committed

    def add_advance_listener(self, listener: Callable[[dict[str, int]], None]) -> None:
        """Call ``listener({stream: pos})`` (on the reactor thread) after each committed
        transaction that wrote stream positions (see ``positions.advance``)."""
        self._advance_listeners.append(listener)

    def _tell_listeners(self, advanced: dict[str, int] | None) -> None:
        if advanced:
            for listener in self._advance_listeners:
                listener(advanced)


def _shrink_memory(conn: Connection) -> None:
    conn.exec_driver_sql("PRAGMA shrink_memory")


def alembic_config(connection: Connection | None = None) -> Any:
    """An alembic Config built in code (no alembic.ini needed at run time)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _MIGRATIONS_DIR)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


#: commits on the inline connection between two checkpoints by the pool's
_INLINE_CHECKPOINT_EVERY = 64
#: how long run_behind gathers calls before writing them: at 2 ms a busy server wrote
#: about one event's notification rows per commit; at 20 ms, with 8 senders, ~10
#: events' rows share a commit and its index pages (8 senders × 8 rooms: ~10% more
#: events per second in six alternating runs). Nothing waits for these rows but
#: push delivery (/sync counts them from memory until they are stored).
_BEHIND_DELAY = 0.02


def _fail(items: list, failure: Failure) -> None:
    for _, _, done, _ in items:
        done.errback(failure)


def _inline_engine(engine: Engine) -> Engine | None:
    """For a SQLite file: a second engine on the same file whose connection waits for
    no lock (``timeout=0``: a busy database sends the write to the pool) and never
    checkpoints. ``:memory:`` shares its one connection; PostgreSQL gets none."""
    if engine.dialect.name != "sqlite":
        return None
    path = engine.url.database
    if not path or path == ":memory:":
        return engine
    inline = sqlite_engine(path, timeout=0)

    @sa.event.listens_for(inline, "connect")
    def _no_checkpoints(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    return inline


def _still_in_transaction(conn: Connection) -> bool:
    """Whether the SQLite connection under ``conn`` is inside a transaction (or its
    state is unknown)."""
    try:
        return conn.invalidated or bool(conn.connection.driver_connection.in_transaction)
    except Exception:
        return True


def _is_busy(error: sa.exc.OperationalError) -> bool:
    text = str(error.orig).lower()
    return "locked" in text or "busy" in text


def sqlite_engine(path: str, *, timeout: float = 30) -> Engine:
    """A SQLite engine: WAL, ``synchronous=NORMAL``, foreign keys, real transactions."""
    if path == ":memory:":
        # one shared connection, or every checkout would see a new empty database
        engine = sa.create_engine("sqlite://", poolclass=sa.StaticPool,
                                  connect_args={"check_same_thread": False})
    else:
        engine = sa.create_engine(f"sqlite:///{path}",
                                  connect_args={"check_same_thread": False,
                                                "timeout": timeout})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (which would not BEGIN
        # before SELECTs or DDL) and BEGIN ourselves below; see SQLAlchemy's
        # "sqlite_enabling_transactions".
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def postgres_engine(args: Mapping[str, Any], *, pool_size: int) -> Engine:
    """A psycopg2 engine from Synapse-style connection args."""
    connect_args = {k: v for k, v in args.items() if v is not None}
    if "database" in connect_args:
        connect_args["dbname"] = connect_args.pop("database")
    return sa.create_engine("postgresql+psycopg2://", connect_args=connect_args,
                            pool_size=pool_size, max_overflow=0, pool_pre_ping=True)
