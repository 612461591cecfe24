"""RoomStore: schema and migrations, state deltas, queries, pagination, redactions."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import weakref
from unittest import mock

from twisted.trial import unittest

from homeserver.errors import InvalidParam
from homeserver.rooms.rules.pagination import Direction, TopologicalToken
from homeserver.rooms.storage import schema
from homeserver.rooms.storage.event_rows import decode
from homeserver.rooms.storage.connection import checkpoint
from homeserver.rooms.storage.store import (
    CHECKPOINT_EVERY, DuplicateEvent, EventContext, RoomStore)
from tests.fakes.dag import DagBuilder


class StoreTestCase(unittest.TestCase):
    full_every = 100

    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "room.db")
        self.store = RoomStore.open(self.path, create=True, full_every=self.full_every)
        self.store.initialise("!room:test", "10")
        self.addCleanup(self.store.close)
        self.dag = DagBuilder(self.store)

    def reopen(self) -> RoomStore:
        self.store.close()
        self.store = RoomStore.open(self.path, full_every=self.full_every)
        self.addCleanup(self.store.close)
        return self.store


class SchemaTests(StoreTestCase):
    def test_new_file_is_at_latest_version(self) -> None:
        """A new room DB is created at the latest schema version, in WAL mode."""
        conn = self.store._conn
        self.assertEqual(conn.execute("PRAGMA user_version").fetchone()[0],
                         schema.SCHEMA_VERSION)
        self.assertEqual(conn.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    def test_old_version_is_migrated_on_open(self) -> None:
        """Opening a v1 file runs the missing steps and keeps its data."""
        path = os.path.join(self.mktemp(), "old.db")
        os.makedirs(os.path.dirname(path))
        conn = sqlite3.connect(path, isolation_level=None)
        schema.migrate(conn, upto=1)
        conn.execute("INSERT INTO room_meta VALUES ('room_id', '!old:test')")
        conn.execute("INSERT INTO room_meta VALUES ('room_version', '10')")
        raw = json.dumps({"type": "m.room.message", "sender": "@a:test", "depth": 1,
                          "content": {"body": "hi"}}).encode()
        conn.execute("INSERT INTO events (event_id, type, sender, depth, origin_server_ts,"
                     " json) VALUES ('$old', 'm.room.message', '@a:test', 1, 5, ?)", (raw,))
        conn.close()

        store = RoomStore.open(path)
        self.addCleanup(store.close)
        self.assertEqual(store._conn.execute("PRAGMA user_version").fetchone()[0],
                         schema.SCHEMA_VERSION)
        self.assertEqual(store.room_id, "!old:test")
        self.assertEqual(store.get_event("$old").content, {"body": "hi"})
        self.assertIsNone(store.event_for_txn("nothing"))  # the v2 table exists

    def test_failing_step_leaves_the_file_at_its_version(self) -> None:
        """A step that fails half way is undone whole: no table of it, no version bump."""
        path = os.path.join(self.mktemp(), "half.db")
        os.makedirs(os.path.dirname(path))
        conn = sqlite3.connect(path, isolation_level=None)
        schema.migrate(conn, upto=1)
        broken = (schema.MIGRATIONS[0], "CREATE TABLE half_done (x INTEGER);\n"
                  "INSERT INTO no_such_table VALUES (1)")
        with mock.patch.object(schema, "MIGRATIONS", broken):
            self.assertRaises(sqlite3.OperationalError, schema.migrate, conn, upto=2)
        self.assertFalse(conn.in_transaction)
        self.assertEqual(conn.execute("PRAGMA user_version").fetchone()[0], 1)
        self.assertIsNone(conn.execute(
            "SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchone())
        conn.close()

    def test_newer_schema_is_refused(self) -> None:
        """A file written by a newer server is not opened (nor downgraded)."""
        self.store._conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
        self.store.close()
        self.assertRaises(schema.SchemaTooNew, RoomStore.open, self.path)

    def test_missing_file_is_not_created(self) -> None:
        """Opening a room that does not exist raises instead of creating an empty DB."""
        missing = os.path.join(self.mktemp(), "nope.db")
        self.assertRaises(FileNotFoundError, RoomStore.open, missing)
        self.assertFalse(os.path.exists(missing))


class WriteTests(StoreTestCase):
    def test_event_round_trips_as_its_bytes(self) -> None:
        """The stored JSON is the exact bytes persisted; flags come back as metadata.
        A cached read does without the bytes (only ``original`` reads carry them)."""
        ctx = self.dag.add("m.room.create", state_key="", content={"room_version": "10"})
        self.store.close()
        store = self.reopen()
        self.assertEqual(store.get_event(ctx.pdu.event_id, original=True).raw, ctx.pdu.raw)
        pdu = store.get_event(ctx.pdu.event_id)
        self.assertIsNone(pdu.raw)
        self.assertEqual(pdu.get_dict(), json.loads(ctx.pdu.raw))
        self.assertEqual(pdu.internal_metadata["seq"], ctx.seq)
        self.assertIsNone(pdu.internal_metadata["rejected"])
        self.assertEqual(store.get_event_by_seq(ctx.seq).event_id, ctx.pdu.event_id)

    def test_written_event_is_read_without_the_db(self) -> None:
        """An event just written is kept decoded, as a read would keep it: reading it
        back runs no statement, and it carries its metadata but not its bytes."""
        ctx = self.dag.add("m.room.create", state_key="", content={"room_version": "10"})
        statements: list[str] = []
        self.store._conn.set_trace_callback(statements.append)
        pdu = self.store.get_event(ctx.pdu.event_id)
        groups = self.store.state_groups_of(ctx.pdu.event_id)
        self.store._conn.set_trace_callback(None)
        self.assertEqual(statements, [])
        self.assertEqual(groups, (None, ctx.state_after))
        self.assertIsNotNone(ctx.state_after)
        self.assertEqual(self.reopen().state_groups_of(ctx.pdu.event_id), groups)
        self.assertEqual(pdu.get_dict(), ctx.pdu.get_dict())
        self.assertEqual(pdu.internal_metadata["seq"], ctx.seq)
        self.assertFalse(pdu.internal_metadata["outlier"])
        self.assertIsNone(pdu.raw)

    def test_rolled_back_write_is_not_kept(self) -> None:
        """A write undone by its savepoint leaves nothing behind in the cache."""
        pdu = self.dag.pdu("m.room.message", prev=[])
        with self.assertRaises(RuntimeError):
            with self.store.transaction():
                self.store.persist([EventContext(pdu)])
                raise RuntimeError("undo")
        self.assertIsNone(self.store.get_event(pdu.event_id))

    def test_last_seq_follows_writes_and_rollbacks(self) -> None:
        """last_seq counts a write at once and forgets one its savepoint undid."""
        self.assertEqual(self.store.last_seq(), 0)
        first = self.dag.add("m.room.message")
        self.assertEqual(self.store.last_seq(), first.seq)
        with self.store.transaction():
            with self.assertRaises(RuntimeError):
                with self.store.transaction():
                    self.dag.add("m.room.message")
                    self.assertEqual(self.store.last_seq(), first.seq + 1)
                    raise RuntimeError("undo")
            self.assertEqual(self.store.last_seq(), first.seq)

    def test_token_before_is_the_same_from_cache_and_file(self) -> None:
        """A timeline's prev_batch does not depend on whether its event is cached."""
        self.dag.add("m.room.create", state_key="")
        event = self.dag.add("m.room.message").pdu
        cached = self.store.token_before(event.event_id)
        self.reopen()
        self.assertEqual(self.store.token_before(event.event_id), cached)
        self.assertEqual(cached.seq, event.internal_metadata["seq"] - 1)

    def test_statements_leave_no_cursors_behind(self) -> None:
        """Statements share one cursor: sqlite3 keeps a weak reference to every cursor
        a connection makes (pruned only every 200th), ~95 bytes each per statement."""
        def dead_weakrefs() -> int:
            gc.collect()
            return sum(1 for o in gc.get_objects()
                       if type(o) is weakref.ReferenceType and o() is None)
        before = dead_weakrefs()
        for _ in range(150):
            self.store.last_seq()
            self.store._conn.executemany("INSERT OR REPLACE INTO room_meta VALUES (?, ?)",
                                         [("x", 1)])
        self.assertLess(dead_weakrefs() - before, 10)
        rows = self.store._conn.execute("SELECT key FROM room_meta WHERE key = ?", ("x",))
        self.assertEqual((rows.fetchone(), rows.fetchall()), (("x",), [("x",)]))

    def test_batch_is_one_commit(self) -> None:
        """persist() of several events is a single transaction."""
        before = self.store.commit_count
        first = self.dag.pdu("m.room.create", state_key="")
        second = self.dag.pdu("m.room.message", prev=[first])
        self.store.persist([EventContext(first), EventContext(second)])
        self.assertEqual(self.store.commit_count, before + 1)
        self.assertEqual(self.store.last_seq(), 2)

    def test_failed_savepoint_keeps_the_rest_of_the_batch(self) -> None:
        """A failing nested item rolls back alone; the outer transaction commits."""
        first = self.dag.pdu("m.room.message", prev=[])
        with self.store.transaction():
            self.store.persist([EventContext(first)])
            with self.assertRaises(DuplicateEvent):
                with self.store.transaction():  # a savepoint, as the actor gives each item
                    self.store.persist([EventContext(self.dag.pdu("m.room.message",
                                                                  prev=[])),
                                        EventContext(first)])
        self.assertTrue(self.store.has_event(first.event_id))
        self.assertEqual(self.store.last_seq(), 1)

    def test_deferred_meta_rides_the_next_commit(self) -> None:
        """last_announced_seq costs no commit of its own but survives a clean close."""
        commits = self.store.commit_count
        self.store.note_announced(7)
        self.assertEqual(self.store.commit_count, commits)
        self.assertEqual(self.store.last_announced_seq, 7)
        self.reopen()
        self.assertEqual(self.store.last_announced_seq, 7)

    def test_txn_key_maps_to_event(self) -> None:
        """A client transaction key remembers the event it produced."""
        ctx = self.dag.add("m.room.message", context={"txn_key": "@a:test/DEV/1"})
        self.assertEqual(self.store.event_for_txn("@a:test/DEV/1"), ctx.pdu.event_id)


class CheckpointTests(StoreTestCase):
    def write(self, count: int) -> list[str]:
        """``count`` commits of one message each; their event IDs."""
        ids = []
        for i in range(count):
            with self.store.transaction():
                ids.append(self.dag.add("m.room.message", content={"n": i}).pdu.event_id)
        return ids

    def in_db_file(self) -> set[str]:
        """The event IDs in the room's main file alone, without its WAL: what
        checkpoints moved there."""
        copy = os.path.join(self.mktemp(), "copy.db")
        os.makedirs(os.path.dirname(copy))
        with open(self.path, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        conn = sqlite3.connect(copy)
        try:
            return {row[0] for row in conn.execute("SELECT event_id FROM events")}
        except sqlite3.OperationalError:   # not even the schema is there yet
            return set()
        finally:
            conn.close()

    def test_checkpoints_are_handed_to_the_runner(self) -> None:
        """Every CHECKPOINT_EVERY commits a checkpoint goes to the runner, none inline."""
        handed: list = []
        self.store.checkpoint_in(handed.append)
        ids = self.write(CHECKPOINT_EVERY - 1)
        self.assertEqual(handed, [])
        ids += self.write(1)
        self.assertEqual(len(handed), 1)
        self.assertEqual(self.in_db_file(), set())
        handed[0]()   # what the runner's thread does
        self.assertEqual(self.in_db_file(), set(ids))
        self.write(CHECKPOINT_EVERY)
        self.assertEqual(len(handed), 2)

    def test_without_a_runner_nothing_is_handed(self) -> None:
        """A store not given a runner leaves checkpoints to SQLite and still commits."""
        ids = self.write(CHECKPOINT_EVERY + 1)
        self.assertTrue(all(self.store.has_event(e) for e in ids))

    def test_checkpoint_of_a_missing_file_creates_nothing(self) -> None:
        """A room whose file went away is not created again by a late checkpoint."""
        path = os.path.join(self.mktemp(), "gone.db")
        checkpoint(path)
        self.assertFalse(os.path.exists(path))


class StateTests(StoreTestCase):
    full_every = 5

    def test_deltas_with_full_snapshots_bound_the_chain(self) -> None:
        """Every group reads back exactly, and no chain is longer than full_every."""
        self.dag.add("m.room.create", state_key="")
        expected = {("m.room.create", ""): self.store.seq_of("$1")}
        groups = []
        for i in range(23):
            ctx = self.dag.add("m.room.topic", state_key="" if i % 2 else f"k{i}",
                               content={"topic": str(i)})
            expected[ctx.pdu.state_pair] = ctx.seq
            groups.append((ctx.state_after, dict(expected)))
        for group, state in groups:
            self.assertEqual(self.store.state.group_map(group), state)
            self.assertLessEqual(self.store.state.chain_length(group), self.full_every)
        full = self.store._conn.execute(
            "SELECT count(*) FROM state_groups WHERE parent_id IS NULL").fetchone()[0]
        self.assertEqual(full, 5)  # the first group, then one every 5 links
        self.assertEqual(self.store.state.current_map(), expected)

    def test_message_events_share_the_state_group(self) -> None:
        """Non-state events add no state group: before and after are the same group."""
        create = self.dag.add("m.room.create", state_key="")
        groups = self.store.state.group_count()
        msg = self.dag.add("m.room.message", content={"body": "x"})
        self.assertEqual(msg.state_before, create.state_after)
        self.assertEqual(msg.state_after, msg.state_before)
        self.assertEqual(self.store.state.group_count(), groups)

    def test_removed_key_in_a_delta(self) -> None:
        """A delta can remove a key its parent had (state resolution can drop one)."""
        self.dag.add("m.room.create", state_key="")
        topic = self.dag.add("m.room.topic", state_key="", content={"topic": "t"})
        group = self.store.state.new_group(topic.state_after, {("m.room.topic", ""): None})
        self.assertNotIn(("m.room.topic", ""), self.store.state.group_map(group))
        self.assertEqual(self.store.state.group_for_map(
            self.store.state.group_map(group), group), group)

    def test_filters_by_type_and_pair(self) -> None:
        """State reads can be narrowed to types (any key) or exact pairs."""
        self.dag.add("m.room.create", state_key="")
        self.dag.member("@alice:test")
        self.dag.member("@bob:test")
        group = self.dag.add("m.room.name", state_key="", content={"name": "n"}).state_after
        members = self.store.state_ids(group, [("m.room.member", None)])
        self.assertEqual(set(members), {("m.room.member", "@alice:test"),
                                        ("m.room.member", "@bob:test")})
        exact = self.store.current_state_ids([("m.room.member", "@bob:test"),
                                              ("m.room.name", "")])
        self.assertEqual(set(exact), {("m.room.member", "@bob:test"), ("m.room.name", "")})
        self.assertEqual(self.store.current_state_ids([("m.unknown", None)]), {})

    def test_long_filters_are_exact_too(self) -> None:
        """A filter of many exact pairs (lazy-loaded members) returns exactly those."""
        self.dag.add("m.room.create", state_key="")
        users = [f"@u{i}:test" for i in range(150)]
        for user in users:
            self.dag.member(user)
        wanted = [("m.room.member", u) for u in users[::2]] + [("m.room.create", "")]
        group = self.store.current_state_group
        self.assertEqual(set(self.store.current_state_ids(wanted)), set(wanted))
        self.assertEqual(set(self.store.state_ids(group, wanted)), set(wanted))
        few = wanted[:3]
        self.assertEqual(set(self.store.state_ids(group, few)), set(few))

    def test_membership_and_members(self) -> None:
        """Membership of one user and the member list, optionally by membership."""
        self.dag.add("m.room.create", state_key="")
        self.dag.member("@alice:test")
        self.dag.member("@bob:test")
        self.dag.member("@carol:test", "invite")
        self.dag.member("@bob:test", "leave")
        self.assertEqual(self.store.membership("@bob:test"), "leave")
        self.assertIsNone(self.store.membership("@nobody:test"))
        self.assertEqual(set(self.store.members()), {"@alice:test", "@bob:test", "@carol:test"})
        self.assertEqual(set(self.store.members("join")), {"@alice:test"})
        self.assertEqual(self.store.members("invite")["@carol:test"].membership, "invite")


class DagTests(StoreTestCase):
    def test_forward_extremities_fork_and_merge(self) -> None:
        """Extremities follow the DAG: one on a line, two after a fork, one after a merge."""
        root = self.dag.add("m.room.create", state_key="").pdu
        a = self.dag.add("m.room.message", prev=[root]).pdu
        self.assertEqual([e for e, _ in self.store.forward_extremities()], [a.event_id])
        b = self.dag.add("m.room.message", prev=[root]).pdu
        self.assertEqual({e for e, _ in self.store.forward_extremities()},
                         {a.event_id, b.event_id})
        merge = self.dag.add("m.room.message", prev=[a, b]).pdu
        self.assertEqual(self.store.forward_extremities(), [(merge.event_id, 3)])

    def table_extremities(self) -> list[tuple[str, int]]:
        return [tuple(r) for r in self.store._conn.execute(
            "SELECT event_id, depth FROM forward_extremities"
            " ORDER BY depth DESC, event_id")]

    def test_forward_extremities_in_memory_follow_the_table(self) -> None:
        """The extremities kept in memory once read are the table's after every kind
        of write: forks (ordered by depth, then ID), merges, limits, and a write whose
        transaction rolls back."""
        root = self.dag.add("m.room.create", state_key="").pdu
        self.assertEqual(self.store.forward_extremities(), self.table_extremities())
        tips = [self.dag.add("m.room.message", prev=[root]).pdu for _ in range(3)]
        deeper = self.dag.add("m.room.message", prev=[tips[0]]).pdu
        self.assertEqual(self.store.forward_extremities(), self.table_extremities())
        self.assertEqual(self.store.forward_extremities()[0], (deeper.event_id, 3))
        self.assertEqual(self.store.forward_extremities(limit=2),
                         self.table_extremities()[:2])
        with self.assertRaises(RuntimeError):
            with self.store.transaction():
                self.dag.add("m.room.message", prev=[deeper, tips[1], tips[2]])
                self.assertEqual(len(self.store.forward_extremities()), 1)
                raise RuntimeError("rolled back")
        self.assertEqual(self.store.forward_extremities(), self.table_extremities())
        self.assertEqual(len(self.store.forward_extremities()), 3)
        self.dag.add("m.room.message", prev=[deeper, tips[1], tips[2]])
        self.assertEqual(self.store.forward_extremities(), self.table_extremities())
        self.assertEqual(len(self.store.forward_extremities()), 1)

    def test_rejected_and_soft_failed_stay_out_of_timeline(self) -> None:
        """Rejected and soft-failed events are stored but never in timeline or extremities."""
        root = self.dag.add("m.room.create", state_key="").pdu
        self.dag.add("m.room.message", prev=[root], context={"rejected": "auth"})
        self.dag.add("m.room.message", prev=[root], context={"soft_failed": True})
        self.assertEqual(self.store.forward_extremities(), [(root.event_id, 1)])
        events, _ = self.store.events_since(0, 10)
        self.assertEqual([e.event_id for e in events], [root.event_id])
        self.assertEqual(self.store.get_event("$2").internal_metadata["rejected"], "auth")

    def test_auth_chain(self) -> None:
        """The auth chain follows auth edges transitively, without the starting events."""
        create = self.dag.pdu("m.room.create", state_key="")
        member = self.dag.pdu("m.room.member", state_key="@alice:test",
                              content={"membership": "join"}, prev=[create], auth=[create])
        pl = self.dag.pdu("m.room.power_levels", state_key="", prev=[member],
                          auth=[create, member])
        msg = self.dag.pdu("m.room.message", prev=[pl], auth=[create, member, pl])
        self.store.persist([EventContext(e) for e in (create, member, pl, msg)])
        chain = self.store.auth_chain([msg.event_id])
        self.assertEqual([e.event_id for e in chain],
                         [create.event_id, member.event_id, pl.event_id])

    def test_events_since_newest_last_with_limited(self) -> None:
        """events_since returns the newest N after a seq, oldest first, and says if cut."""
        for _ in range(5):
            self.dag.add("m.room.message")
        events, limited = self.store.events_since(1, 2)
        self.assertEqual([e.internal_metadata["seq"] for e in events], [4, 5])
        self.assertTrue(limited)
        events, limited = self.store.events_since(3, 10)
        self.assertEqual([e.internal_metadata["seq"] for e in events], [4, 5])
        self.assertFalse(limited)


class PaginationTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        root = self.dag.add("m.room.create", state_key="").pdu
        # a fork: two events at depth 2 arrive, then more on top
        a = self.dag.add("m.room.message", prev=[root]).pdu
        b = self.dag.add("m.room.message", prev=[root]).pdu
        self.dag.add("m.room.message", prev=[a, b])
        self.dag.add("m.room.message")
        self.order = ["$1", "$2", "$3", "$4", "$5"]  # by (depth, seq)

    def walk(self, direction: Direction, limit: int, start=None, to=None) -> list[list[str]]:
        pages, token = [], start
        while True:
            events, token = self.store.paginate(token, direction, limit, to)
            if events:
                pages.append([e.event_id for e in events])
            if token is None or not events:
                return pages

    def test_backwards_from_the_end(self) -> None:
        """Backwards pages are newest first and end with no token at the room's start."""
        pages = self.walk(Direction.BACKWARDS, 2)
        self.assertEqual(pages, [["$5", "$4"], ["$3", "$2"], ["$1"]])

    def test_forwards_from_the_start(self) -> None:
        """Forwards pages are oldest first and always give a token to continue later."""
        pages = self.walk(Direction.FORWARDS, 2)
        self.assertEqual(pages, [["$1", "$2"], ["$3", "$4"], ["$5"]])
        events, token = self.store.paginate(self.store.token_after("$5"), Direction.FORWARDS, 5)
        self.assertEqual(events, [])
        self.assertEqual(token, self.store.token_after("$5"))

    def test_tokens_meet_in_the_middle(self) -> None:
        """Backwards from a token then forwards from the result returns the same events."""
        start = self.store.token_before("$4")
        back, token = self.store.paginate(start, Direction.BACKWARDS, 2)
        self.assertEqual([e.event_id for e in back], ["$3", "$2"])
        fwd, _ = self.store.paginate(token, Direction.FORWARDS, 2)
        self.assertEqual([e.event_id for e in fwd], ["$2", "$3"])

    def test_to_token_bounds_the_walk(self) -> None:
        """A to token stops pagination in either direction."""
        to = self.store.token_after("$2")
        self.assertEqual(self.walk(Direction.BACKWARDS, 10, to=to), [["$5", "$4", "$3"]])
        self.assertEqual(self.walk(Direction.FORWARDS, 10, to=to), [["$1", "$2"]])

    def test_token_text_round_trips_and_rejects_garbage(self) -> None:
        """Tokens are opaque text; malformed ones are M_INVALID_PARAM."""
        token = self.store.token_before("$3")
        self.assertEqual(TopologicalToken.parse(str(token)), token)
        for bad in ("", "s12", "t1_", "t1_2_3", None, "t" + "9" * 30 + "_1"):
            self.assertRaises(InvalidParam, TopologicalToken.parse, bad)
        self.assertRaises(InvalidParam, Direction.parse, "x")


class RedactionTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.dag.add("m.room.create", state_key="")
        self.target = self.dag.add("m.room.message", "@bob:remote",
                                   content={"body": "secret"}).pdu

    def redact(self, sender: str, target: str, has_power: bool = False) -> EventContext:
        return self.dag.add("m.room.redaction", sender, redacts=target,
                            context={"redactor_has_power": has_power})

    def test_power_redacts_and_keeps_the_original(self) -> None:
        """A permitted redaction prunes the event for readers; the original bytes stay."""
        redaction = self.redact("@mod:test", self.target.event_id, has_power=True)
        pruned = self.store.get_event(self.target.event_id)
        self.assertEqual(pruned.content, {})
        self.assertEqual(pruned.internal_metadata["redacted_by"], redaction.pdu.event_id)
        original = self.store.get_event(self.target.event_id, original=True)
        self.assertEqual(original.content, {"body": "secret"})
        self.assertEqual(original.raw, self.target.raw)

    def test_other_server_without_power_does_not_redact(self) -> None:
        """Spec v3+: without power, only the target's own server may redact it."""
        self.redact("@eve:test", self.target.event_id)
        self.assertEqual(self.store.get_event(self.target.event_id).content,
                         {"body": "secret"})
        self.redact("@other:remote", self.target.event_id)
        self.assertEqual(self.store.get_event(self.target.event_id).content, {})

    def test_redaction_before_its_target(self) -> None:
        """A redaction that arrives first applies when its target is stored."""
        late = self.dag.pdu("m.room.message", "@bob:remote", content={"body": "late"})
        self.redact("@mod:test", late.event_id, has_power=True)
        self.store.persist([EventContext(late, state_before=self.store.current_state_group)])
        self.assertEqual(self.store.get_event(late.event_id).content, {})


class DecodeTests(unittest.TestCase):
    def test_big_integers_of_old_room_versions_decode_exactly(self) -> None:
        """A room version without strict canonical JSON may hold integers past 64 bits:
        they come back as the same integers (orjson would make them floats)."""
        big = 2 ** 70 + 1
        raw = json.dumps({"depth": 3, "content": {"n": big, "f": 1.5}}).encode()
        decoded = decode(raw, strict=False)
        self.assertEqual(decoded["content"]["n"], big)
        self.assertIs(type(decoded["content"]["n"]), int)
        self.assertEqual(decoded["content"]["f"], 1.5)
        self.assertEqual(decode(b'{"a":[1,"\\u00e9"]}', strict=True), {"a": [1, "\u00e9"]})


class StartWalTests(unittest.TestCase):
    def test_start_wal_writes_a_frame_and_changes_nothing(self) -> None:
        """After a clean close the reopened store's WAL is empty (not started);
        start_wal_in writes its first frame from another connection, leaving the
        schema version and the data as they were; later calls do nothing."""
        path = os.path.join(self.mktemp(), "room.db")
        store = RoomStore.open(path, create=True)
        self.assertTrue(store.wal_started)
        version = store._conn.execute("PRAGMA user_version").fetchone()[0]
        store.close()
        self.assertFalse(os.path.exists(path + "-wal"))
        store = RoomStore.open(path)
        self.assertFalse(store.wal_started)
        ran = []
        store.start_wal_in(lambda fn: ran.append(fn()))
        self.assertEqual(len(ran), 1)
        self.assertTrue(store.wal_started)
        self.assertGreater(os.path.getsize(path + "-wal"), 32)
        self.assertIsNone(store.start_wal_in(lambda fn: self.fail("ran twice")))
        self.assertEqual(store._conn.execute("PRAGMA user_version").fetchone()[0], version)
        store.close()
        self.assertEqual(sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0],
                         version)
