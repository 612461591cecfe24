"""Delayed events (homeserver/store/delayed_events.py): scheduling, due order, the
guarded outcome moves, transaction retries, limits and retention."""

from __future__ import annotations

from homeserver.store.delayed_events import DelayedEvent, TooManyScheduled
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"
ROOM = "!room:example.org"


def event(delay_id: str, *, user: str = ALICE, at: int = 1000, delay: int = 500,
          state_key: str | None = None, event_type: str = "m.room.message") -> DelayedEvent:
    return DelayedEvent(delay_id=delay_id, user_id=user, device_id="DEV", room_id=ROOM,
                        event_type=event_type, state_key=state_key, content={"body": delay_id},
                        delay_ms=delay, scheduled_at=at, send_ts=at + delay)


class DelayedEventsStoreTests(StoreTests):
    async def test_due_in_order_and_next(self) -> None:
        """Due events come back in the order they fell due; next_send_ts is the
        earliest scheduled one; a finalised event is neither due nor next."""
        store = self.store.delayed_events
        for e in (event("b", delay=300), event("a", delay=100), event("c", delay=900)):
            await store.add(e, txn_key=None, max_scheduled=10)
        self.assertEqual(await store.next_send_ts(), 1100)
        self.assertEqual([e.delay_id for e in await store.due(1300)], ["a", "b"])
        self.assertTrue(await store.finalise("a", "sent", 1300, event_id="$a"))
        self.assertFalse(await store.finalise("a", "cancelled", 1400))  # ended already
        self.assertEqual(await store.next_send_ts(), 1300)
        self.assertEqual([e.delay_id for e in await store.due(2000)], ["b", "c"])
        sent = await store.get("a")
        self.assertEqual((sent.outcome, sent.event_id, sent.finalised_ts), ("sent", "$a", 1300))
        self.assertEqual(dict(sent.content), {"body": "a"})

    async def test_restart_only_while_scheduled(self) -> None:
        """A restart moves scheduled_at and send_ts; on an ended event it does nothing."""
        store = self.store.delayed_events
        await store.add(event("a"), txn_key=None, max_scheduled=10)
        moved = await store.restart("a", 5000)
        self.assertEqual((moved.scheduled_at, moved.send_ts), (5000, 5500))
        await store.finalise("a", "cancelled", 6000)
        self.assertIsNone(await store.restart("a", 7000))
        self.assertIsNone(await store.restart("unknown", 7000))

    async def test_transaction_and_limit(self) -> None:
        """The same transaction key returns the first event; the per-user limit counts
        only scheduled events and reports when the user's next one falls due."""
        store = self.store.delayed_events
        first, new = await store.add(event("a"), txn_key="k", max_scheduled=2)
        again, new_again = await store.add(event("z"), txn_key="k", max_scheduled=2)
        self.assertEqual((again.delay_id, new, new_again), ("a", True, False))
        await store.add(event("b", delay=50), txn_key=None, max_scheduled=2)
        with self.assertRaises(TooManyScheduled) as caught:
            await store.add(event("c"), txn_key=None, max_scheduled=2)
        self.assertEqual(caught.exception.next_send_ts, 1050)
        await store.add(event("d", user=BOB), txn_key="k", max_scheduled=2)  # other user
        await store.finalise("b", "sent", 2000)
        await store.add(event("c"), txn_key=None, max_scheduled=2)

    async def test_lists_and_state_of_others(self) -> None:
        """The user's scheduled and finalised lists; the scheduled state events of
        other users for one piece of state."""
        store = self.store.delayed_events
        await store.add(event("mine", state_key="k", event_type="t"), txn_key=None,
                        max_scheduled=10)
        await store.add(event("bobs", user=BOB, state_key="k", event_type="t"),
                        txn_key=None, max_scheduled=10)
        await store.add(event("msg", delay=10), txn_key=None, max_scheduled=10)
        self.assertEqual([e.delay_id for e in await store.scheduled_for_user(ALICE)],
                         ["msg", "mine"])
        self.assertEqual(await store.scheduled_state_of_others(ROOM, "t", "k", ALICE),
                         ["bobs"])
        self.assertEqual(await store.scheduled_state_of_others(ROOM, "t", "other", ALICE), [])
        self.assertEqual(await store.rooms_with_scheduled_state(), [ROOM])
        await store.finalise("msg", "sent", 3000)
        self.assertEqual([e.delay_id for e in await store.finalised_for_user(ALICE, 10)],
                         ["msg"])

    async def test_prune_finalised(self) -> None:
        """Finalised events older than the retention go, and a user's beyond the
        newest N; scheduled ones always stay."""
        store = self.store.delayed_events
        for i in range(4):
            await store.add(event(f"e{i}"), txn_key=None, max_scheduled=10)
            await store.finalise(f"e{i}", "sent", 1000 + i)
        await store.add(event("live"), txn_key=None, max_scheduled=10)
        gone = await store.prune_finalised(ALICE, older_than=1001, keep=2)
        self.assertEqual(gone, 2)
        self.assertEqual([e.delay_id for e in await store.finalised_for_user(ALICE, 10)],
                         ["e3", "e2"])
        self.assertIsNotNone(await store.get("live"))


DelayedEventsStoreTestsSQLite, DelayedEventsStoreTestsPostgres = on_both_backends(
    DelayedEventsStoreTests)
