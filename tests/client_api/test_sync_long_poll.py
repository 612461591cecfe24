"""Long-polling /sync: a waiting request is woken by what concerns it (never by a poll
interval), answers with the current token when nothing happens, and is dropped when
its client goes away."""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.web._newclient import ResponseNeverReceived

from homeserver.sync.tokens import FIELDS, StreamToken
from tests.client_api.sync_helpers import SyncTestCase, V3, bodies, q, timeline

#: far longer than any test runs: an answer to such a sync can only be a wake-up
_LONG = 600_000


class LongPollTests(SyncTestCase):
    async def _waiting(self, count: int = 1) -> None:
        """Until ``count`` long-polls wait in the notifier."""
        while self.c["notifier"].listener_count < count:
            await task.deferLater(self.reactor, 0.005, lambda: None)

    @property
    def reactor(self):
        return self.c["reactor"]

    def _poll(self, token: str, since: str, **params) -> defer.Deferred:
        return defer.ensureDeferred(self.sync_ok(token, since=since, timeout=_LONG,
                                                 **params))

    async def test_long_poll_wakes_on_send(self):
        """A waiting sync answers with the event sent while it waits."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        since = (await self.sync_ok(token))["next_batch"]
        pending = self._poll(token, since)
        await self._waiting()
        self.assertFalse(pending.called)
        event_id = await self.send(token, room_id, {"msgtype": "m.text", "body": "wake"})
        body = await pending
        self.assertEqual([e["event_id"] for e in timeline(body, room_id)], [event_id])
        self.assertEqual(self.c["notifier"].listener_count, 0)

    async def test_other_users_send_wakes_member(self):
        """Another member's message wakes a user's long-poll; an unrelated room's
        does not."""
        _, alice = await self.register("alice")
        _, bob = await self.register("bob")
        shared = await self.create_room(alice, preset="public_chat")
        await self.join(bob, shared)
        elsewhere = await self.create_room(alice)
        since = (await self.sync_ok(bob))["next_batch"]
        pending = self._poll(bob, since)
        await self._waiting()
        await self.send(alice, elsewhere, {"msgtype": "m.text", "body": "not for bob"})
        self.assertFalse(pending.called)
        await self.send(alice, shared, {"msgtype": "m.text", "body": "for bob"})
        body = await pending
        self.assertEqual(list(body["rooms"]["join"]), [shared])
        self.assertEqual(bodies(timeline(body, shared)), ["for bob"])

    async def test_invite_wakes_invitee(self):
        """An invite wakes the invitee, who is not watching the room yet."""
        _, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice)
        since = (await self.sync_ok(bob))["next_batch"]
        pending = self._poll(bob, since)
        await self._waiting()
        await self.ok("POST", self.room(room_id, "/invite"), {"user_id": bob_id},
                      token=alice)
        body = await pending
        self.assertIn(room_id, body["rooms"]["invite"])

    async def test_account_data_wakes(self):
        """Setting account data wakes the user's long-poll with the new data."""
        user_id, token = await self.register("alice")
        since = (await self.sync_ok(token))["next_batch"]
        pending = self._poll(token, since)
        await self._waiting()
        await self.ok("PUT", f"{V3}/user/{q(user_id)}/account_data/org.example.x",
                      {"a": 1}, token=token)
        body = await pending
        self.assertEqual(body["account_data"]["events"],
                         [{"type": "org.example.x", "content": {"a": 1}}])

    async def test_timeout_returns_current_token(self):
        """With nothing to report, the sync answers after its timeout with a token no
        stream of which is behind ``since``, and no rooms."""
        _, token = await self.register("alice")
        await self.create_room(token)
        since = (await self.sync_ok(token))["next_batch"]
        body = await self.sync_ok(token, since=since, timeout=50)
        self.assertEqual(body["rooms"]["join"], {})
        before, after = StreamToken.parse(since), StreamToken.parse(body["next_batch"])
        for name in FIELDS:
            self.assertGreaterEqual(getattr(after, name), getattr(before, name), name)

    async def test_client_disconnect_drops_the_wait(self):
        """A client that hangs up during a long-poll leaves no waiter behind."""
        _, token = await self.register("alice")
        since = (await self.sync_ok(token))["next_batch"]
        pending = self.http.request(
            "GET", f"{self.base}{V3}/sync?timeout={_LONG}&since={q(since)}",
            headers={"Authorization": [f"Bearer {token}"]})
        await self._waiting()
        pending.cancel()
        with self.assertRaises(ResponseNeverReceived):
            await pending
        while self.c["notifier"].listener_count:
            await task.deferLater(self.reactor, 0.005, lambda: None)
        self.assertEqual(self.c["notifier"].listener_count, 0)

    async def test_device_changes_wake_room_mates(self):
        """A room mate's new login, device rename and logout (device deletion) each
        wake a waiting sync, which lists them in device_lists.changed (spec:
        "Tracking the device list for a user"); a stranger's syncs stay asleep."""
        _, alice = await self.register("alice")
        bob_id, bob = await self.register("bob", device_id="B1")
        _, carol = await self.register("carol")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        carol_pending = self._poll(carol, (await self.sync_ok(carol))["next_batch"])
        await self._waiting()
        login = {"type": "m.login.password", "password": "correct horse",
                 "identifier": {"type": "m.id.user", "user": "bob"}, "device_id": "B2"}

        tokens = {}

        async def new_login():
            tokens["B2"] = (await self.ok("POST", V3 + "/login", login))["access_token"]

        actions = [
            new_login,
            lambda: self.ok("PUT", V3 + "/devices/B2", {"display_name": "tablet"},
                            token=bob),
            lambda: self.ok("POST", V3 + "/logout", {}, token=tokens["B2"]),
        ]
        since = (await self.sync_ok(alice))["next_batch"]
        for action in actions:
            pending = self._poll(alice, since)
            await self._waiting(2)
            await action()
            body = await pending
            self.assertEqual(body["device_lists"]["changed"], [bob_id])
            since = body["next_batch"]
        self.assertFalse(carol_pending.called)
        carol_pending.cancel()
        with self.assertRaises(ResponseNeverReceived):
            await carol_pending

    async def test_wait_from_the_current_token_builds_no_empty_answer(self):
        """A long-poll whose token is every stream's current position waits at once:
        no empty answer is built first (the usual case: a client comes back with the
        token just given). One that still has to acknowledge to-device messages builds
        it (they are deleted as received), and a woken one answers as always."""
        builder = self.c["sync_builder"]
        built = []
        real_build = builder.build

        async def counting(req):
            built.append(req.since)
            return await real_build(req)

        builder.build = counting
        self.addCleanup(setattr, builder, "build", real_build)
        alice_id, alice = await self.register("alice", device_id="A")
        _, bob = await self.register("bob")
        room_id = await self.create_room(alice)
        since = (await self.sync_ok(alice))["next_batch"]
        del built[:]
        pending = self._poll(alice, since)
        await self._waiting()
        self.assertEqual(built, [])   # waiting without an empty answer built
        await self.send(alice, room_id, {"msgtype": "m.text", "body": "wake"})
        body = await pending
        self.assertEqual(bodies(timeline(body, room_id)), ["wake"])
        self.assertEqual(len(built), 1)

        # a to-device message: the sync after the one that delivered it must build
        # (its token acknowledges the message, which is then deleted)
        await self.ok("PUT", f"{V3}/sendToDevice/m.test/t1",
                      {"messages": {alice_id: {"A": {"n": 1}}}}, token=bob)
        delivered = await self.sync_ok(alice, since=body["next_batch"])
        self.assertEqual(len(delivered["to_device"]["events"]), 1)
        del built[:]
        pending = self._poll(alice, delivered["next_batch"])
        await self._waiting()
        self.assertEqual(len(built), 1)
        again = await self.sync_ok(alice, since=body["next_batch"])  # the old token
        self.assertEqual(again["to_device"]["events"], [])  # deleted as received
        pending.cancel()
        with self.assertRaises(Exception):
            await pending
