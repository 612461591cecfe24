"""The delayed events scheduler (homeserver/delayed_events/scheduler.py) with a fake
clock, a fake room sender and the real global store: the timer, what survives a new
scheduler over the same store (a restart), the actions and their races."""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet import defer, task

from homeserver.config import RateLimit
from homeserver.delayed_events.rules import DelayedEventsConfig
from homeserver.delayed_events.scheduler import TXN_SCOPE, DelayedEventScheduler
from homeserver.errors import Forbidden, LimitExceeded
from homeserver.ratelimit import RateLimiter
from homeserver.rooms.features.service import Txn
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"
ROOM = "!room:example.org"


class FakeRooms:
    """A RoomSender recording sends; a transaction sent twice gets its first event
    (as the room actor answers retries); rooms in ``forbidden`` refuse."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, Mapping[str, Any], str | None]] = []
        self.by_txn: dict[Txn, str] = {}
        self.forbidden: set[str] = set()
        self.hold: defer.Deferred | None = None
        #: fires when a held send has started
        self.entered: defer.Deferred = defer.Deferred()

    async def send_event(self, room_id, sender, event_type, content, *, state_key=None,
                         txn=None, ratelimit=False) -> str:
        hold = self.hold
        if hold is not None:  # a slow room: the send waits until released
            self.entered.callback(None)
            await hold
        if room_id in self.forbidden:
            raise Forbidden(f"{sender} may not send here")
        if txn is not None and txn in self.by_txn:
            return self.by_txn[txn]
        self.sent.append((room_id, sender, event_type, dict(content), state_key))
        event_id = f"$e{len(self.sent)}"
        if txn is not None:
            self.by_txn[txn] = event_id
        return event_id

    async def set_state(self, room_id, sender, event_type, state_key, content, *,
                        is_guest=False) -> str:
        return await self.send_event(room_id, sender, event_type, content,
                                     state_key=state_key)


class FakeStateEvent:
    def __init__(self, sender: str, event_type: str, state_key: str) -> None:
        self.room_id, self.sender, self.type, self.state_key = ROOM, sender, event_type, state_key

    def is_state(self) -> bool:
        return True


class SchedulerTests(StoreTests):
    def setUp(self) -> None:
        super().setUp()
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.rooms = FakeRooms()
        self.scheduler = self.make_scheduler()

    def make_scheduler(self, **config: Any) -> DelayedEventScheduler:
        limits = {"rc_message": RateLimit(1000, 1000),
                  "rc_delayed_event_mgmt": RateLimit(1000, 1000)}
        scheduler = DelayedEventScheduler(
            store=self.store.delayed_events, rooms=self.rooms,
            ratelimiter=RateLimiter(limits, self.clock.seconds), clock=self.clock,
            now_ms=lambda: int(self.clock.seconds() * 1000),
            config=DelayedEventsConfig(**config))
        scheduler.start()
        self.addCleanup(scheduler.stop)
        return scheduler

    async def advance(self, seconds: float, scheduler: DelayedEventScheduler | None = None):
        scheduler = scheduler or self.scheduler
        await scheduler.when_idle()
        self.clock.advance(seconds)
        await scheduler.when_idle()
        await scheduler.when_idle()  # a run that found more to do starts once more

    async def schedule(self, delay_ms: int, *, user: str = ALICE, state_key: str | None = None,
                       event_type: str = "m.room.message", body: str = "x",
                       room: str = ROOM) -> str:
        return await self.scheduler.schedule(
            user_id=user, device_id="DEV", room_id=room, event_type=event_type,
            state_key=state_key, content={"body": body}, delay_ms=delay_ms)

    async def test_fires_when_due_and_not_before(self):
        """Nothing is sent before its time; at its time it is sent as its owner, with
        a transaction derived from its delay ID, and recorded as sent."""
        delay_id = await self.schedule(2000)
        await self.advance(1.9)
        self.assertEqual(self.rooms.sent, [])
        await self.advance(0.11)
        self.assertEqual(self.rooms.sent, [(ROOM, ALICE, "m.room.message", {"body": "x"}, None)])
        self.assertIn(Txn(TXN_SCOPE, delay_id), self.rooms.by_txn)
        got = await self.scheduler.get(ALICE, delay_id)
        self.assertEqual(got["event_id"], "$e1")

    async def test_restart_survives_a_new_scheduler(self):
        """A scheduler built again over the same store (a server restart) sends what
        fell due while none ran, in due order, and waits for the rest."""
        first = await self.schedule(1000, body="first")
        await self.schedule(3000, body="second")
        await self.schedule(60_000, body="later")
        await self.scheduler.stop()
        self.clock.advance(5)  # the server was down past two due times
        revived = self.make_scheduler()
        await revived.when_idle()
        await revived.when_idle()
        self.assertEqual([s[3]["body"] for s in self.rooms.sent], ["first", "second"])
        await self.advance(60, revived)
        self.assertEqual([s[3]["body"] for s in self.rooms.sent], ["first", "second", "later"])
        self.assertEqual((await revived.get(ALICE, first))["event_id"], "$e1")

    async def test_crash_after_send_does_not_send_twice(self):
        """If the outcome was not recorded (a crash right after the send), sending
        again reuses the transaction, so the room gets the event once."""
        delay_id = await self.schedule(1000)
        self.rooms.by_txn[Txn(TXN_SCOPE, delay_id)] = "$before-crash"
        await self.advance(1)
        self.assertEqual(self.rooms.sent, [])
        self.assertEqual((await self.scheduler.get(ALICE, delay_id))["event_id"],
                         "$before-crash")

    async def test_restart_and_cancel(self):
        """A restart pushes the send back by the full delay; a cancel stops it."""
        restarted = await self.schedule(1000, body="r")
        cancelled = await self.schedule(1000, body="c")
        await self.advance(0.8)
        await self.scheduler.act(restarted, "restart", user_id=ALICE, client_ip="")
        await self.scheduler.act(cancelled, "cancel", user_id=ALICE, client_ip="")
        await self.advance(0.9)  # past the first due time, short of the restarted one
        self.assertEqual(self.rooms.sent, [])
        await self.advance(0.11)
        self.assertEqual([s[3]["body"] for s in self.rooms.sent], ["r"])
        got = await self.scheduler.get(ALICE, cancelled)
        self.assertNotIn("event_id", got)
        self.assertIn("finalised_ts", got)

    async def test_failure_is_recorded(self):
        """An event the room refuses at its time ends failed with the room's error;
        the send action instead answers the error and keeps it scheduled."""
        self.rooms.forbidden.add("!closed:example.org")
        manual = await self.schedule(60_000, room="!closed:example.org")
        with self.assertRaises(Forbidden):
            await self.scheduler.act(manual, "send", user_id=ALICE, client_ip="")
        self.assertNotIn("finalised_ts", await self.scheduler.get(ALICE, manual))
        timed = await self.schedule(1000, room="!closed:example.org")
        await self.advance(1)
        got = await self.scheduler.get(ALICE, timed)
        self.assertEqual(got["error"]["errcode"], "M_FORBIDDEN")

    async def test_other_users_state_cancels_theirs_not_own(self):
        """A state event cancels other users' scheduled events for that state, not
        the sender's own."""
        alices = await self.schedule(1000, state_key="k", event_type="t")
        bobs = await self.schedule(1000, user=BOB, state_key="k", event_type="t")
        self.scheduler.on_event(FakeStateEvent(ALICE, "t", "k"), 0)
        await self.advance(0)  # let the observer's work finish
        await self.advance(1)
        self.assertEqual([s[1] for s in self.rooms.sent], [ALICE])
        self.assertEqual((await self.scheduler.get(BOB, bobs))["error"]["errcode"],
                         "M_CANCELLED_BY_STATE_UPDATE")
        self.assertIn("event_id", await self.scheduler.get(ALICE, alices))

    async def test_overwrites_seen_after_restart(self):
        """A new scheduler (a restart) still cancels on overwrite the delayed state
        events scheduled before it, and ignores rooms without any."""
        bobs = await self.schedule(60_000, user=BOB, state_key="k", event_type="t")
        await self.scheduler.stop()
        revived = self.make_scheduler()
        await revived.when_idle()
        other = FakeStateEvent(ALICE, "t", "k")
        other.room_id = "!elsewhere:example.org"
        revived.on_event(other, 0)
        revived.on_event(FakeStateEvent(ALICE, "t", "k"), 0)
        await revived.when_idle()
        await revived.when_idle()
        self.assertEqual((await revived.get(BOB, bobs))["error"]["errcode"],
                         "M_CANCELLED_BY_STATE_UPDATE")

    async def test_cancel_while_the_timer_sends(self):
        """A cancel that arrives while the timer is sending the event waits for the send
        and then answers 409 (it was sent), never recording a cancel for a sent event."""
        delay_id = await self.schedule(1000)
        self.rooms.hold = defer.Deferred()
        await self.scheduler.when_idle()
        self.clock.advance(1)  # the timer starts sending; the room holds it
        await self.rooms.entered
        cancel = defer.ensureDeferred(
            self.scheduler.act(delay_id, "cancel", user_id=ALICE, client_ip=""))
        self.assertNoResult(cancel)
        self.rooms.hold, hold = None, self.rooms.hold
        hold.callback(None)
        outcome: list = []
        await cancel.addBoth(outcome.append)
        self.assertEqual(outcome[0].value.status, 409)
        await self.scheduler.when_idle()
        self.assertEqual(len(self.rooms.sent), 1)
        self.assertEqual((await self.scheduler.get(ALICE, delay_id))["event_id"], "$e1")

    async def test_limits(self):
        """Over the per-user count a schedule is 429 with the wait until the user's
        next send; when turned off it is 403."""
        limited = self.make_scheduler(max_per_user=1)
        await limited.schedule(user_id=ALICE, device_id=None, room_id=ROOM, event_type="t",
                               state_key=None, content={}, delay_ms=4000)
        with self.assertRaises(LimitExceeded) as caught:
            await limited.schedule(user_id=ALICE, device_id=None, room_id=ROOM,
                                   event_type="t", state_key=None, content={}, delay_ms=10)
        self.assertEqual(caught.exception.retry_after_ms, 4000)
        off = self.make_scheduler(max_per_user=0)
        with self.assertRaises(Forbidden):
            await off.schedule(user_id=ALICE, device_id=None, room_id=ROOM, event_type="t",
                               state_key=None, content={}, delay_ms=10)


SchedulerTestsSQLite, SchedulerTestsPostgres = on_both_backends(SchedulerTests)

