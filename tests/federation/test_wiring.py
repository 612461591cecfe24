"""The federation housekeeping jobs keep their tables bounded (on the real store)."""

from __future__ import annotations

from twisted.internet import task
from twisted.trial import unittest

from federation import wiring
from homeserver.config import FederationOutboxConfig
from homeserver.store.outbox import (
    DEVICE_LIST_UPDATE, DIRECT_TO_DEVICE, RECEIPT, SIGNING_KEY_UPDATE, OutboxEntry)
from tests.store.backends import StoreTests, on_both_backends

DAY_MS = 24 * 3600 * 1000


class _Config:
    federation_outbox = FederationOutboxConfig(edu_max_age_ms=7 * DAY_MS)


class _DeviceMessages:
    def __init__(self) -> None:
        self.purged: list[int] = []

    async def purge_old(self, now_ms: int) -> int:
        self.purged.append(now_ms)
        return 0


class HousekeepingTests(StoreTests):
    async def test_inbound_txns_purged_after_a_day(self) -> None:
        """A /send dedup record is kept (a retry is still answered from it) until it
        is a day old, then the next run removes it."""
        txns = self.store.federation_inbound_txns
        await txns.record("old.example", "t1", {"pdus": {}})
        now = {"ms": self.db.now_ms()}
        clock = task.Clock()
        jobs = {job.name: job for job in wiring.housekeeping(
            config=_Config(), store=self.store,
            c={"federation_device_messages": _DeviceMessages()},
            clock=clock, now_ms=lambda: now["ms"])}
        job = jobs["federation-inbound-txns-purge"]
        now["ms"] += wiring.INBOUND_TXN_KEEP_MS - 60_000
        await job.run_once()
        self.assertIsNotNone(await txns.get_response("old.example", "t1"))
        now["ms"] += 120_000
        await job.run_once()
        self.assertIsNone(await txns.get_response("old.example", "t1"))


    async def test_outbox_entries_older_than_the_limit_expire(self) -> None:
        """Outbox entries older than federation.edu_max_age go (whoever has not had
        them), except each user's newest device-list and signing-key update; newer
        entries stay."""
        outbox = self.store.federation_outbox
        t0 = 1_000 * DAY_MS
        u, v = "@u:hs", "@v:hs"
        await outbox.add([
            OutboxEntry(DIRECT_TO_DEVICE, u, {"n": 1}, "down.example"),
            OutboxEntry(DEVICE_LIST_UPDATE, u, {"n": 2}),
            OutboxEntry(DEVICE_LIST_UPDATE, u, {"n": 3}),
            OutboxEntry(DEVICE_LIST_UPDATE, v, {"n": 4}),
            OutboxEntry(SIGNING_KEY_UPDATE, u, {"n": 5}),
            OutboxEntry(RECEIPT, u, {"n": 6})], t0)
        await outbox.add([OutboxEntry(DIRECT_TO_DEVICE, u, {"n": 7}, "down.example"),
                          OutboxEntry(DEVICE_LIST_UPDATE, u, {"n": 8})], t0 + 7 * DAY_MS)
        job = {job.name: job for job in wiring.housekeeping(
            config=_Config(), store=self.store,
            c={"federation_device_messages": _DeviceMessages()}, clock=task.Clock(),
            now_ms=lambda: t0 + 7 * DAY_MS + 1)}["federation-outbox-expiry"]
        await job.run_once()
        self.assertEqual([e.content["n"] for e in await outbox.entries(0)],
                         [4, 5, 7, 8])   # u's newest device update is 8
        self.assertEqual([e.created_ts for e in await outbox.entries(0)][-1],
                         t0 + 7 * DAY_MS)


HousekeepingTestsSQLite, HousekeepingTestsPostgres = on_both_backends(HousekeepingTests)


class JobsTest(unittest.TestCase):
    def test_jobs_run_hourly_and_purge_message_ids(self):
        """Every job runs on the injected clock each PURGE_EVERY_S; the message-ID job
        asks the to-device handler to purge as of now."""
        clock, messages = task.Clock(), _DeviceMessages()
        jobs = {job.name: job for job in wiring.housekeeping(
            config=_Config(), store=None, c={"federation_device_messages": messages},
            clock=clock, now_ms=lambda: int(clock.seconds() * 1000))}
        job = jobs["federation-message-ids-purge"]
        job.startService()
        clock.advance(wiring.PURGE_EVERY_S)
        self.assertEqual(messages.purged, [int(wiring.PURGE_EVERY_S * 1000)])
        job.stopService()
