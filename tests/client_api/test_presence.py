"""Presence over HTTP: PUT/GET status, who may see it, and how /sync shows it to
people sharing a room — including the automatic idle → unavailable move."""

from __future__ import annotations

from tests.client_api.sync_helpers import SyncTestCase, V3, q


def presence_of(body: dict, user_id: str) -> list[dict]:
    return [e["content"] for e in body["presence"]["events"] if e["sender"] == user_id]


class PresenceTests(SyncTestCase):
    async def _pair(self):
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        return (alice_id, alice), (bob_id, bob)

    async def test_put_and_get_status(self):
        """A user sets their presence and status message and reads it back."""
        (alice_id, alice), _ = await self._pair()
        path = f"{V3}/presence/{q(alice_id)}/status"
        await self.ok("PUT", path, {"presence": "unavailable", "status_msg": "lunch"},
                      token=alice)
        body = await self.ok("GET", path, token=alice)
        self.assertEqual(body["presence"], "unavailable")
        self.assertEqual(body["status_msg"], "lunch")
        self.assertIn("last_active_ago", body)

    async def test_errors(self):
        """Another user's status cannot be set (403) or, without a shared room, read
        (403); an unknown state is 400."""
        (alice_id, alice), (bob_id, bob) = await self._pair()
        _, carol = await self.register("carol")
        self.assertError(await self.request("PUT", f"{V3}/presence/{q(bob_id)}/status",
                                            {"presence": "online"}, token=alice),
                         403, "M_FORBIDDEN")
        self.assertError(await self.request("GET", f"{V3}/presence/{q(alice_id)}/status",
                                            token=carol), 403, "M_FORBIDDEN")
        self.assertError(await self.request("PUT", f"{V3}/presence/{q(alice_id)}/status",
                                            {"presence": "away"}, token=alice),
                         400, "M_INVALID_PARAM")
        self.assertError(await self.request("PUT", f"{V3}/presence/{q(alice_id)}/status",
                                            {}, token=alice), 400, "M_MISSING_PARAM")

    async def test_presence_in_sync_of_room_mates(self):
        """Someone sharing a room sees presence changes in their incremental sync."""
        (alice_id, alice), (bob_id, bob) = await self._pair()
        since = (await self.sync_ok(bob, set_presence="offline"))["next_batch"]
        await self.ok("PUT", f"{V3}/presence/{q(alice_id)}/status",
                      {"presence": "online", "status_msg": "here"}, token=alice)
        body = await self.sync_ok(bob, since=since, set_presence="offline")
        [content] = presence_of(body, alice_id)
        self.assertEqual((content["presence"], content["status_msg"],
                          content["currently_active"]), ("online", "here", True))

    async def test_syncing_makes_online_and_set_presence_offline_does_not(self):
        """/sync marks an offline user online unless set_presence=offline."""
        (alice_id, alice), (bob_id, bob) = await self._pair()
        path = f"{V3}/presence/{q(alice_id)}/status"
        await self.ok("PUT", path, {"presence": "offline"}, token=alice)
        await self.sync_ok(alice, set_presence="offline")
        self.assertEqual((await self.ok("GET", path, token=bob))["presence"], "offline")
        await self.sync_ok(alice)
        self.assertEqual((await self.ok("GET", path, token=bob))["presence"], "online")

    async def test_idle_becomes_unavailable_for_others(self):
        """A user who stays idle turns unavailable and a room mate's waiting sync is
        woken with it (the idle threshold is shortened for the test)."""
        (alice_id, alice), (bob_id, bob) = await self._pair()
        self.c["presence"].idle_after_s = 0.2
        since = (await self.sync_ok(bob, set_presence="offline"))["next_batch"]
        await self.ok("PUT", f"{V3}/presence/{q(alice_id)}/status",
                      {"presence": "online"}, token=alice)
        seen: list[str] = []
        while "unavailable" not in seen:
            body = await self.sync_ok(bob, since=since, timeout=600_000,
                                      set_presence="offline")
            seen += [c["presence"] for c in presence_of(body, alice_id)]
            since = body["next_batch"]
        self.assertEqual(seen, ["online", "unavailable"])
