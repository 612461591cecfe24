"""MSC4140 delayed events over the client API (homeserver/client_api/delayed_events.py,
homeserver/delayed_events/): scheduling on send and state PUTs, the list and lookup,
cancel/restart/send in both URL forms, errors, and the MatrixRTC leave that fires by
itself when a client stops restarting it."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor, task

from tests.client_api.room_helpers import RoomsTestCase, q

U = "/_matrix/client/unstable/org.matrix.msc4140"
MEMBER = "org.matrix.msc3401.call.member"


class DelayedEventsTestCase(RoomsTestCase):
    config_overrides = {"rc_delayed_event_mgmt": {"per_second": 1000, "burst_count": 1000}}

    async def delayed_send(self, token: str, room_id: str, content: dict, delay: Any,
                           txn: str = "t1") -> tuple[int, Any]:
        return await self.request(
            "PUT", self.room(room_id, f"/send/m.room.message/{txn}"
                             f"?org.matrix.msc4140.delay={delay}"), content, token=token)

    async def delayed_state(self, token: str, room_id: str, event_type: str,
                            state_key: str, content: dict, delay: int) -> str:
        resp = await self.ok("PUT", self.room(
            room_id, f"/state/{event_type}/{q(state_key)}?org.matrix.msc4140.delay={delay}"),
            content, token=token)
        return resp["delay_id"]

    async def bodies(self, token: str, room_id: str) -> list[str]:
        _, resp = await self.messages(token, room_id, limit=50)
        return [e["content"].get("body") for e in resp["chunk"]
                if e["type"] == "m.room.message"]

    async def eventually(self, check, what: str) -> Any:
        """Poll ``check()`` until it returns something truthy (the delays here are
        short; no duration is asserted, only that it happens)."""
        for _ in range(400):
            result = await check()
            if result:
                return result
            await task.deferLater(reactor, 0.05, lambda: None)
        self.fail(f"never happened: {what}")


class ScheduleAndManage(DelayedEventsTestCase):
    async def test_delayed_message_is_listed_then_sent_on_demand(self):
        """A send with a delay answers a delay_id and sends nothing; the list shows it
        with the MSC's fields; the send action puts it in the room and the lookup then
        shows its event ID."""
        (_, tok), = await self.users("alice")
        room = await self.create_room(tok)
        status, resp = await self.delayed_send(tok, room, {"msgtype": "m.text",
                                                           "body": "later"}, 60_000)
        self.assertEqual(status, 200, resp)
        self.assertEqual(set(resp), {"delay_id"})
        delay_id = resp["delay_id"]
        self.assertNotIn("later", await self.bodies(tok, room))
        listed = (await self.ok("GET", U + "/delayed_events", token=tok))["delayed_events"]
        self.assertEqual([e["delay_id"] for e in listed], [delay_id])
        self.assertEqual(listed[0]["room_id"], room)
        self.assertEqual(listed[0]["type"], "m.room.message")
        self.assertEqual(listed[0]["delay_ms"], 60_000)
        self.assertEqual(listed[0]["content"]["body"], "later")
        self.assertNotIn("state_key", listed[0])
        await self.ok("POST", f"{U}/delayed_events/{delay_id}/send", {}, token=tok)
        self.assertIn("later", await self.bodies(tok, room))
        one = await self.ok("GET", f"{U}/delayed_events/{delay_id}", token=tok)
        self.assertTrue(one["event_id"].startswith("$"))
        self.assertIn("finalised_ts", one)
        self.assertEqual((await self.ok("GET", U + "/delayed_events",
                                        token=tok))["delayed_events"], [])
        # sending again is a harmless retry; cancelling what was sent is a conflict
        await self.ok("POST", f"{U}/delayed_events/{delay_id}", {"action": "send"}, token=tok)
        status, resp = await self.post(tok, f"{U}/delayed_events/{delay_id}/cancel")
        self.assertEqual((status, resp["errcode"]), (409, "M_UNKNOWN"))

    async def test_cancel_and_its_retries(self):
        """A cancelled event is never sent; cancelling again succeeds; sending or
        restarting it then is a 409."""
        (_, tok), = await self.users("alice")
        room = await self.create_room(tok)
        _, resp = await self.delayed_send(tok, room, {"msgtype": "m.text", "body": "no"}, 1)
        delay_id = resp["delay_id"]
        # a 1 ms delay may fire before the cancel arrives: then the cancel conflicts
        status, body = await self.post(tok, f"{U}/delayed_events/{delay_id}",
                                       {"action": "cancel"})
        if status == 409:
            self.assertIn("no", await self.bodies(tok, room))
            return
        self.assertEqual(status, 200, body)
        await self.ok("POST", f"{U}/delayed_events/{delay_id}/cancel", {}, token=tok)
        for action in ("send", "restart"):
            status, body = await self.post(tok, f"{U}/delayed_events/{delay_id}/{action}")
            self.assertEqual((status, body["errcode"]), (409, "M_UNKNOWN"))
        self.assertNotIn("no", await self.bodies(tok, room))
        one = await self.ok("GET", f"{U}/delayed_events/{delay_id}", token=tok)
        self.assertNotIn("event_id", one)
        self.assertNotIn("error", one)

    async def test_restart_moves_the_schedule(self):
        """Restarting starts the delay again from now: scheduled_at never goes back,
        and the event stays scheduled."""
        (_, tok), = await self.users("alice")
        room = await self.create_room(tok)
        _, resp = await self.delayed_send(tok, room, {"body": "x"}, 60_000)
        delay_id = resp["delay_id"]
        before = (await self.ok("GET", f"{U}/delayed_events/{delay_id}",
                                token=tok))["scheduled_at"]
        await task.deferLater(reactor, 0.01, lambda: None)
        await self.ok("POST", f"{U}/delayed_events/{delay_id}", {"action": "restart"},
                      token=tok)
        after = await self.ok("GET", f"{U}/delayed_events/{delay_id}", token=tok)
        self.assertGreater(after["scheduled_at"], before)
        self.assertNotIn("finalised_ts", after)

    async def test_transaction_retry_returns_the_same_delay(self):
        """Retrying a delayed send with the same transaction ID schedules nothing new."""
        (_, tok), = await self.users("alice")
        room = await self.create_room(tok)
        first = (await self.delayed_send(tok, room, {"body": "x"}, 60_000, txn="same"))[1]
        again = (await self.delayed_send(tok, room, {"body": "x"}, 60_000, txn="same"))[1]
        self.assertEqual(first, again)
        listed = (await self.ok("GET", U + "/delayed_events", token=tok))["delayed_events"]
        self.assertEqual(len(listed), 1)

    async def test_newest_msc_endpoint(self):
        """PUT …/rooms/{id}/delayed_event/{type}/{txnId} with delay_ms, state_key and
        content schedules a state event."""
        (_, tok), = await self.users("alice")
        room = await self.create_room(tok)
        resp = await self.ok("PUT", f"{U}/rooms/{q(room)}/delayed_event/m.room.topic/t9",
                             {"delay_ms": 60_000, "state_key": "",
                              "content": {"topic": "soon"}}, token=tok)
        await self.ok("POST", f"{U}/delayed_events/{resp['delay_id']}/send", {}, token=tok)
        _, topic = await self.get_state(tok, room, "m.room.topic")
        self.assertEqual(topic["topic"], "soon")

    async def test_other_users_events_are_not_found(self):
        """With a token only the owner's delayed events are found (404 for others);
        without one the delay ID itself is enough, as in Synapse 1.163."""
        (_, alice), (_, bob) = await self.users("alice", "bob")
        room = await self.create_room(alice)
        _, resp = await self.delayed_send(alice, room, {"body": "x"}, 60_000)
        delay_id = resp["delay_id"]
        self.assertError(await self.request("GET", f"{U}/delayed_events/{delay_id}",
                                            token=bob), 404, "M_NOT_FOUND")
        self.assertError(await self.post(bob, f"{U}/delayed_events/{delay_id}/cancel"),
                         404, "M_NOT_FOUND")
        self.assertError(await self.request("GET", f"{U}/delayed_events/nope", token=alice),
                         404, "M_NOT_FOUND")
        status, _ = await self.request("POST", f"{U}/delayed_events/{delay_id}/restart", {})
        self.assertEqual(status, 200)
        self.assertError(await self.request("GET", U + "/delayed_events"), 401,
                         "M_MISSING_TOKEN")


class BadRequests(DelayedEventsTestCase):
    async def test_bad_delays_and_actions(self):
        """A delay over the maximum is refused in the form matrix-js-sdk reads; a
        non-number delay, an unknown action and a missing one are 400s."""
        (_, tok), = await self.users("alice")
        room = await self.create_room(tok)
        status, resp = await self.delayed_send(tok, room, {}, 24 * 3600 * 1000 + 1)
        self.assertEqual((status, resp["errcode"]), (400, "M_UNKNOWN"))
        self.assertEqual(resp["org.matrix.msc4140.errcode"], "M_MAX_DELAY_EXCEEDED")
        self.assertEqual(resp["org.matrix.msc4140.max_delay"], 24 * 3600 * 1000)
        for delay in ("soon", "-5", "0"):
            self.assertError(await self.delayed_send(tok, room, {}, delay), 400,
                             "M_INVALID_PARAM")
        _, resp = await self.delayed_send(tok, room, {}, 60_000, txn="ok")
        path = f"{U}/delayed_events/{resp['delay_id']}"
        self.assertError(await self.post(tok, path, {"action": "explode"}), 400,
                         "M_INVALID_PARAM")
        self.assertError(await self.post(tok, path, {}), 400, "M_MISSING_PARAM")
        self.assertError(await self.request("PUT", f"{U}/rooms/{q(room)}/delayed_event/x/t",
                                            {"content": {}}, token=tok), 400,
                         "M_MISSING_PARAM")
        self.assertError(await self.request("GET", U + "/delayed_events?status=odd",
                                            token=tok), 400, "M_INVALID_PARAM")


class Limits(DelayedEventsTestCase):
    config_overrides = {**DelayedEventsTestCase.config_overrides,
                        "max_event_delay_duration": "1m",
                        "experimental_features": {"msc4140_max_delayed_events_per_user": 2}}

    async def test_limits_and_capability(self):
        """The configured maximum delay and per-user count are enforced (400 and 429
        with retry_after_ms) and advertised in /capabilities and /versions."""
        (_, tok), = await self.users("alice")
        room = await self.create_room(tok)
        status, resp = await self.delayed_send(tok, room, {}, 60_001)
        self.assertEqual(resp["org.matrix.msc4140.max_delay"], 60_000)
        for txn in ("a", "b"):
            self.assertEqual((await self.delayed_send(tok, room, {}, 60_000, txn=txn))[0], 200)
        status, resp = await self.delayed_send(tok, room, {}, 60_000, txn="c")
        self.assertEqual((status, resp["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertGreater(resp["retry_after_ms"], 0)
        caps = (await self.ok("GET", "/_matrix/client/v3/capabilities", token=tok))
        self.assertEqual(caps["capabilities"]["org.matrix.msc4140.delayed_events"],
                         {"max_delay_ms": 60_000, "max_scheduled": 2})
        versions = await self.ok("GET", "/_matrix/client/versions")
        self.assertIs(versions["unstable_features"]["org.matrix.msc4140"], True)


class Disabled(DelayedEventsTestCase):
    config_overrides = {**DelayedEventsTestCase.config_overrides,
                        "experimental_features": {"msc4140_max_delayed_events_per_user": 0}}

    async def test_off(self):
        """With a per-user limit of 0 scheduling is 403 M_FORBIDDEN, /versions says
        false and the capability is absent."""
        (_, tok), = await self.users("alice")
        room = await self.create_room(tok)
        self.assertError(await self.delayed_send(tok, room, {}, 1000), 403, "M_FORBIDDEN")
        versions = await self.ok("GET", "/_matrix/client/versions")
        self.assertIs(versions["unstable_features"]["org.matrix.msc4140"], False)
        caps = (await self.ok("GET", "/_matrix/client/v3/capabilities", token=tok))
        self.assertNotIn("org.matrix.msc4140.delayed_events", caps["capabilities"])


class SendTimeRules(DelayedEventsTestCase):
    async def test_power_is_checked_when_sent(self):
        """A state event the user may not send is scheduled fine; the send action
        answers the 403 and leaves it scheduled; when its time comes it fails and the
        error is recorded."""
        (alice_id, alice), (_, bob) = await self.users("alice", "bob")
        room = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room)
        delay_id = await self.delayed_state(bob, room, "m.room.topic", "",
                                            {"topic": "bob's"}, 60_000)
        self.assertError(await self.post(bob, f"{U}/delayed_events/{delay_id}/send"),
                         403, "M_FORBIDDEN")
        one = await self.ok("GET", f"{U}/delayed_events/{delay_id}", token=bob)
        self.assertNotIn("finalised_ts", one)
        short = await self.delayed_state(bob, room, "m.room.topic", "", {"topic": "b"}, 20)

        async def failed():
            got = await self.ok("GET", f"{U}/delayed_events/{short}", token=bob)
            return got if "finalised_ts" in got else None
        got = await self.eventually(failed, "the delayed topic fails")
        self.assertEqual(got["error"]["errcode"], "M_FORBIDDEN")
        self.assertNotIn("event_id", got)

    async def test_other_users_state_cancels_but_own_does_not(self):
        """Another user setting the same state drops a scheduled delayed state event
        (recorded as M_CANCELLED_BY_STATE_UPDATE); the owner's own update keeps it,
        as a MatrixRTC client posts its join after scheduling its leave."""
        (_, alice), (_, bob) = await self.users("alice", "bob")
        room = await self.create_room(alice)
        key = "shared"
        delay_id = await self.delayed_state(alice, room, "org.example.slot", key, {}, 60_000)
        await self.put_state(alice, room, "org.example.slot", {"v": 1}, key)
        await task.deferLater(reactor, 0.2, lambda: None)  # the observer runs after
        one = await self.ok("GET", f"{U}/delayed_events/{delay_id}", token=alice)
        self.assertNotIn("finalised_ts", one)
        await self.invite(alice, room, "@bob:test.local")
        await self.join(bob, room)
        # bob is not allowed to set it (state_default 50), so alice raises him first
        await self.put_state(alice, room, "m.room.power_levels", {
            **(await self.get_state(alice, room, "m.room.power_levels"))[1],
            "users": {"@bob:test.local": 50}})
        await self.put_state(bob, room, "org.example.slot", {"v": 2}, key)

        async def cancelled():
            got = await self.ok("GET", f"{U}/delayed_events/{delay_id}", token=alice)
            return got if "finalised_ts" in got else None
        got = await self.eventually(cancelled, "bob's state cancels alice's")
        self.assertEqual(got["error"]["errcode"], "M_CANCELLED_BY_STATE_UPDATE")
        finalised = await self.ok("GET", U + "/delayed_events?status=finalised", token=alice)
        self.assertEqual([e["delay_id"] for e in finalised["delayed_events"]], [delay_id])


class MatrixRtcMembership(DelayedEventsTestCase):
    async def test_crashed_client_membership_empties(self):
        """A MatrixRTC client of a member without power schedules its empty
        call.member leave, posts its join, restarts the leave a few times, then stops
        (a crash): after the delay the membership is empty for everyone in the room."""
        (_, alice), (bob_id, bob) = await self.users("alice", "bob")
        room = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room)
        key = f"_{bob_id}_DEVICE"
        delay_id = await self.delayed_state(bob, room, MEMBER, key, {}, 300)
        join = {"application": "m.call", "call_id": "", "scope": "m.room",
                "device_id": "DEVICE", "focus_active": {"type": "livekit"},
                "foci_preferred": [], "expires": 14400000}
        await self.put_state(bob, room, MEMBER, join, key)
        for _ in range(3):  # the keep-alive
            await self.ok("POST", f"{U}/delayed_events/{delay_id}",
                          {"action": "restart"}, token=bob)
        _, seen = await self.get_state(alice, room, MEMBER, key)
        self.assertEqual(seen["application"], "m.call")

        async def left():
            status, content = await self.get_state(alice, room, MEMBER, key)
            return status == 200 and content == {}
        await self.eventually(left, "the delayed leave empties the membership")

        async def recorded():  # the send is recorded just after the event is in the room
            got = await self.ok("GET", f"{U}/delayed_events/{delay_id}", token=bob)
            return got if "event_id" in got else None
        one = await self.eventually(recorded, "the delayed event's record")
        self.assertTrue(one["event_id"].startswith("$"))
