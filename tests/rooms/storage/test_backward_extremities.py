"""Where a room's known history stops (backward extremities), and how the store keeps
backfilled history: negative seqs, never in the live stream, outliers promoted."""

from __future__ import annotations

import json
import os
import sqlite3

from homeserver.events.pdu import PDU
from homeserver.rooms.rules.pagination import Direction
from homeserver.rooms.storage import schema
from homeserver.rooms.storage.store import EventContext, RoomStore
from tests.rooms.storage.test_store import StoreTestCase

DEEP = 2 ** 53


class BackwardExtremityTests(StoreTestCase):
    def write(self, pdu: PDU, before: int | None = None) -> None:
        with self.store.transaction():
            self.store.persist([EventContext(pdu, state_before=before)])

    def test_unknown_prev_events_are_backward_extremities(self) -> None:
        """A timeline event citing events we lack makes them backward extremities,
        with its depth; asking below a depth leaves out those cited from above it."""
        create = self.dag.add("m.room.create", state_key="").pdu
        old, older = self.dag.pdu("m.room.message", prev=[]), self.dag.pdu("m.room.message", prev=[])
        middle = self.dag.pdu("m.room.message", prev=[older])
        self.write(middle, create.internal_metadata["state_after"])
        deep = self.dag.pdu("m.room.message", prev=[middle, old])
        self.write(deep, create.internal_metadata["state_after"])
        self.assertEqual(self.store.backward_extremities(DEEP, 10),
                         [old.event_id, older.event_id])
        self.assertEqual(self.store.backward_extremities(deep.depth - 1, 10),
                         [older.event_id])
        self.assertEqual(self.store.backward_extremities(DEEP, 1), [old.event_id])

    def test_arriving_event_is_no_longer_an_extremity(self) -> None:
        """Once the cited event is written (as history) it stops being one; an
        outlier does not count as held until it is promoted."""
        gap = self.dag.pdu("m.room.message", prev=[])
        self.write(self.dag.pdu("m.room.message", prev=[gap]))
        with self.store.transaction():
            self.store.persist([EventContext(gap, outlier=True)])
        self.assertEqual(self.store.backward_extremities(DEEP, 10), [gap.event_id])
        with self.store.transaction():
            self.store.promote_outlier(EventContext(gap, state_before=None))
        self.assertEqual(self.store.backward_extremities(DEEP, 10), [])

    def test_backfilled_events_are_history(self) -> None:
        """A backfilled event gets a seq below every other, sorts before the live
        events of its depth, is never in the live stream (announcing, /sync) and
        does not touch the forward extremities."""
        first = self.dag.add("m.room.create", state_key="")
        live = self.dag.add("m.room.message", prev=[first.pdu])
        twin = self.dag.pdu("m.room.message", prev=[first.pdu])
        with self.store.transaction():
            self.store.persist([EventContext(twin, state_before=first.state_after,
                                             backfilled=True)])
        seq = twin.internal_metadata["seq"]
        self.assertLess(seq, 0)
        self.assertEqual(self.store.forward_extremities(), [(live.pdu.event_id, 2)])
        self.assertEqual([e.event_id for e in self.store.timeline_after(-100)],
                         [first.pdu.event_id, live.pdu.event_id])
        events, _ = self.store.events_since(-100, 10)
        self.assertNotIn(twin.event_id, [e.event_id for e in events])
        page, _ = self.store.paginate(None, Direction.BACKWARDS, 10)
        self.assertEqual([e.event_id for e in page],
                         [live.pdu.event_id, twin.event_id, first.pdu.event_id])

    def test_promoted_outlier_gets_state_and_stays_out_of_sync(self) -> None:
        """An outlier promoted by backfill is in /messages with the state after it,
        but not in what /sync reads."""
        create = self.dag.pdu("m.room.create", state_key="", prev=[])
        with self.store.transaction():
            self.store.persist([EventContext(create, outlier=True)])
        self.write(self.dag.pdu("m.room.message", prev=[create]))
        ctx = EventContext(self.store.get_event(create.event_id), state_before=None)
        with self.store.transaction():
            self.store.promote_outlier(ctx)
        self.assertEqual(self.store.state_ids(ctx.state_after),
                         {("m.room.create", ""): create.event_id})
        page, _ = self.store.paginate(None, Direction.BACKWARDS, 10)
        self.assertEqual(page[-1].event_id, create.event_id)
        self.assertFalse(page[-1].internal_metadata["outlier"])
        events, _ = self.store.events_since(0, 10)
        self.assertNotIn(create.event_id, [e.event_id for e in events])

    def test_old_room_gets_its_extremities_on_migration(self) -> None:
        """A room DB from before step 5 has its backward extremities computed when
        it is first opened."""
        path = os.path.join(self.mktemp(), "old.db")
        os.makedirs(os.path.dirname(path))
        conn = sqlite3.connect(path, isolation_level=None)
        schema.migrate(conn, upto=4)
        conn.execute("INSERT INTO room_meta VALUES ('room_id', '!old:test')")
        conn.execute("INSERT INTO room_meta VALUES ('room_version', '10')")
        for seq, event_id, depth, outlier in ((1, "$held", 3, 0), (2, "$outlier", 2, 1),
                                              (3, "$top", 4, 0)):
            raw = json.dumps({"type": "m.room.message", "depth": depth}).encode()
            conn.execute("INSERT INTO events (seq, event_id, type, sender, depth,"
                         " origin_server_ts, json, outlier) VALUES"
                         " (?, ?, 'm.room.message', '@a:test', ?, 1, ?, ?)",
                         (seq, event_id, depth, raw, outlier))
        conn.executemany("INSERT INTO event_edges VALUES (?, ?)",
                         [(1, "$outlier"), (1, "$lost"), (3, "$held"), (2, "$never")])
        conn.close()
        store = RoomStore.open(path)
        self.addCleanup(store.close)
        self.assertEqual(store.backward_extremities(DEEP, 10), ["$lost", "$outlier"])
