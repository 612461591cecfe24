"""The presence service on a Clock: explicit states, sync-driven online/offline,
idle → unavailable, activity, currently_active, and who gets woken."""

from __future__ import annotations

import dataclasses

from twisted.internet.task import Clock
from twisted.trial import unittest

from homeserver.errors import Forbidden, InvalidParam
from homeserver.sync.presence import (
    ACTIVE_WINDOW_MS, IDLE_AFTER_S, OFFLINE_AFTER_S, PresenceService, TRANSITIONS)


@dataclasses.dataclass
class _Row:
    user_id: str
    state: str
    last_active_ts: int | None
    status_msg: str | None
    currently_active: bool
    stream_pos: int


class FakePresenceStore:
    """Keeps the latest row per user and every write, like store.presence."""

    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        self.writes: list[_Row] = []

    async def set_presence(self, user_id, state, *, status_msg=None, last_active_ts=None,
                           currently_active=False):
        row = _Row(user_id, state, last_active_ts, status_msg, currently_active,
                   len(self.writes) + 1)
        self.rows[user_id] = row
        self.writes.append(row)
        return row.stream_pos

    async def get_presence(self, user_id):
        return self.rows.get(user_id)

    async def get_presence_changes(self, since, upto=None, *, user_ids=None):
        return [r for r in self.rows.values() if r.stream_pos > since]


class PresenceTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.store = FakePresenceStore()
        self.notified: list[set[str]] = []

        async def sharing(user_id):
            return {"@a:x", "@b:x"} if user_id in ("@a:x", "@b:x") else {user_id}

        self.presence = PresenceService(
            self.clock, self.store, users_sharing=sharing,
            notify_users=lambda users: self.notified.append(set(users)),
            server_name="x")

    def tearDown(self):
        self.presence.stop()

    async def state(self, user="@a:x") -> dict:
        return await self.presence.get_presence(user, user)

    async def test_put_presence(self):
        """Setting a state stores it with the status message and wakes whoever
        shares a room; only for oneself, only known states."""
        await self.presence.set_presence("@a:x", "@a:x", "online", "coding")
        self.assertEqual(await self.state(), {"presence": "online", "last_active_ago": 0,
                                              "currently_active": True,
                                              "status_msg": "coding"})
        self.assertEqual(self.notified, [{"@a:x", "@b:x"}])
        with self.assertRaises(Forbidden):
            await self.presence.set_presence("@b:x", "@a:x", "online")
        with self.assertRaises(InvalidParam):
            await self.presence.set_presence("@a:x", "@a:x", "busy")

    async def test_sync_brings_online_and_disconnect_takes_offline(self):
        """A sync makes an offline user online; 30s after the last one ends they go
        offline, but not while a sync is in flight."""
        await self.presence.connected("@a:x", None)
        self.assertEqual((await self.state())["presence"], "online")
        self.clock.advance(OFFLINE_AFTER_S * 3)
        self.assertEqual((await self.state())["presence"], "online")  # still syncing
        self.presence.disconnected("@a:x")
        self.clock.advance(OFFLINE_AFTER_S - 1)
        self.assertEqual((await self.state())["presence"], "online")
        self.clock.advance(1.5)
        self.assertEqual((await self.state())["presence"], "offline")

    async def test_set_presence_offline_and_unavailable_on_sync(self):
        """set_presence=offline does not bring the user online; unavailable makes
        them unavailable."""
        await self.presence.connected("@a:x", "offline")
        self.assertEqual((await self.state())["presence"], "offline")
        self.presence.disconnected("@a:x")
        await self.presence.connected("@a:x", "unavailable")
        self.assertEqual((await self.state())["presence"], "unavailable")
        self.presence.disconnected("@a:x")

    async def test_idle_goes_unavailable_and_activity_comes_back(self):
        """No activity for 5 minutes while connected: unavailable (seen by others);
        syncing does not change that, acting does."""
        await self.presence.connected("@a:x", None)
        self.clock.advance(ACTIVE_WINDOW_MS / 1000 + 1)
        self.assertFalse((await self.state())["currently_active"])
        self.clock.advance(IDLE_AFTER_S)
        self.assertEqual((await self.state())["presence"], "unavailable")
        self.assertEqual(await self.presence.get_presence("@b:x", "@a:x"),
                         await self.state())
        self.assertIn("@b:x", self.notified[-1])
        await self.presence.connected("@a:x", None)
        self.assertEqual((await self.state())["presence"], "unavailable")
        await self.presence.user_active("@a:x")
        body = await self.state()
        self.assertEqual((body["presence"], body["currently_active"]), ("online", True))
        self.presence.disconnected("@a:x")
        self.presence.disconnected("@a:x")

    async def test_activity_within_the_window_is_not_written(self):
        """Repeated activity while currently active costs no presence update."""
        await self.presence.connected("@a:x", None)
        await self.presence.user_active("@a:x")
        writes = len(self.store.writes)
        self.clock.advance(10)
        await self.presence.user_active("@a:x")
        self.assertEqual(len(self.store.writes), writes)
        self.presence.disconnected("@a:x")

    async def test_activity_leaves_an_offline_user_offline(self):
        """Sending an event with no client connected does not make a user online (as
        Synapse: others see them come online when they first sync)."""
        await self.presence.user_active("@a:x")
        self.assertEqual((await self.state())["presence"], "offline")
        self.assertEqual(self.store.writes, [])

    async def test_visibility(self):
        """Presence is visible to the user and those sharing a room; 403 otherwise."""
        await self.presence.set_presence("@a:x", "@a:x", "online")
        with self.assertRaises(Forbidden):
            await self.presence.get_presence("@z:x", "@a:x")

    async def test_never_seen_user_is_offline(self):
        """A user without presence is offline."""
        self.assertEqual(await self.state("@b:x"), {"presence": "offline"})

    async def test_restore_times_out_stale_online_users(self):
        """After a restart, users stored as online go offline unless they connect."""
        await self.store.set_presence("@a:x", "online", last_active_ts=1, currently_active=True)
        await self.presence.restore()
        self.clock.advance(OFFLINE_AFTER_S + 1)
        self.assertEqual((await self.state())["presence"], "offline")

    def test_transitions_table(self):
        """The machine: only listed triggers move a state."""
        self.assertEqual(TRANSITIONS[("online", "idle")], "unavailable")
        self.assertNotIn(("unavailable", "sync_online"), TRANSITIONS)
        self.assertNotIn(("offline", "idle"), TRANSITIONS)
