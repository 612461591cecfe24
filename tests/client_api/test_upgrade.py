"""POST /rooms/{roomId}/upgrade (spec: room_upgrades.yaml, "Room Upgrades")."""

from __future__ import annotations

from tests.client_api.room_helpers import V3, RoomsTestCase, q


class UpgradeTests(RoomsTestCase):
    async def state_map(self, token: str, room_id: str) -> dict:
        events = await self.ok("GET", self.room(room_id, "/state"), token=token)
        return {(e["type"], e["state_key"]): e["content"] for e in events}

    async def upgrade(self, token: str, room_id: str, body: dict) -> tuple:
        return await self.request("POST", self.room(room_id, "/upgrade"), body, token=token)

    async def test_v10_to_v12(self):
        """Upgrading v10 → v12: tombstone, predecessor without event_id, copied state,
        levels kept (creators unlisted), aliases and publication moved, old room
        locked down."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        _, carol_tok = await self.register("carol")
        old = await self.create_room(
            alice_tok, room_version="10", visibility="public", name="Old name",
            topic="Old topic", room_alias_name="club",
            initial_state=[{"type": "m.room.encryption",
                            "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        await self.join(bob_tok, old)
        await self.join(carol_tok, old)
        await self.put_state(alice_tok, old, "m.room.power_levels", {
            **(await self.state_map(alice_tok, old))[("m.room.power_levels", "")],
            "users": {alice: 100, bob: 50}})
        await self.ok("PUT", f"{V3}/directory/room/{q('#extra:test.local')}",
                      {"room_id": old}, token=alice_tok)

        status, resp = await self.upgrade(alice_tok, old, {"new_version": "12"})
        self.assertEqual(status, 200, resp)
        new = resp["replacement_room"]
        self.assertNotIn(":", new)

        old_state = await self.state_map(alice_tok, old)
        self.assertEqual(old_state[("m.room.tombstone", "")]["replacement_room"], new)
        old_power = old_state[("m.room.power_levels", "")]
        self.assertEqual((old_power["events_default"], old_power["invite"]), (50, 50))
        self.assertEqual(old_state[("m.room.canonical_alias", "")], {})

        new_state = await self.state_map(alice_tok, new)
        create = new_state[("m.room.create", "")]
        self.assertEqual(create["predecessor"], {"room_id": old})
        self.assertEqual(create["room_version"], "12")
        for key in ("m.room.name", "m.room.topic", "m.room.join_rules",
                    "m.room.history_visibility", "m.room.guest_access", "m.room.encryption"):
            self.assertEqual(new_state[(key, "")], old_state[(key, "")], key)
        power = new_state[("m.room.power_levels", "")]
        self.assertEqual(power["users"], {bob: 50})
        self.assertGreater(power["events"]["m.room.tombstone"], power["state_default"])
        self.assertEqual(new_state[("m.room.canonical_alias", "")],
                         {"alias": "#club:test.local"})
        for alias in ("#club:test.local", "#extra:test.local"):
            self.assertEqual((await self.ok("GET", f"{V3}/directory/room/{q(alias)}"))
                             ["room_id"], new)
        self.assertEqual(await self.ok("GET", f"{V3}/directory/list/room/{q(new)}"),
                         {"visibility": "public"})
        self.assertEqual(await self.ok("GET", f"{V3}/directory/list/room/{q(old)}"),
                         {"visibility": "private"})
        # bob follows; members below the new levels cannot talk in the old room
        await self.join(bob_tok, new)
        self.assertError(await self.request(
            "PUT", self.room(old, "/send/m.room.message/t"), {"body": "x"}, token=carol_tok),
            403, "M_FORBIDDEN")

    async def test_v12_to_v10_keeps_event_id_and_admins(self):
        """Into a pre-v12 version the predecessor names the old room's last event, the
        upgrader keeps full power and the old room's other creators become admins."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        old = await self.create_room(alice_tok, preset="trusted_private_chat", invite=[bob])
        await self.join(bob_tok, old)
        last = await self.send(alice_tok, old, {"msgtype": "m.text", "body": "last"})
        status, resp = await self.upgrade(bob_tok, old, {"new_version": "10"})
        self.assertEqual(status, 200, resp)
        new_state = await self.state_map(bob_tok, resp["replacement_room"])
        create = new_state[("m.room.create", "")]
        self.assertEqual(create["predecessor"]["room_id"], old)
        self.assertEqual(create["creator"], bob)
        self.assertEqual(create["predecessor"]["event_id"], last)
        power = new_state[("m.room.power_levels", "")]
        # both v12 creators had unbounded power: in v10 they are admins
        self.assertEqual(power["users"], {alice: 100, bob: 100})

    async def test_v12_additional_creators(self):
        """additional_creators become creators of a v12 replacement."""
        _, alice_tok = await self.register("alice")
        bob, _ = await self.register("bob")
        old = await self.create_room(alice_tok)
        status, resp = await self.upgrade(alice_tok, old, {"new_version": "12",
                                                           "additional_creators": [bob]})
        self.assertEqual(status, 200, resp)
        create = (await self.state_map(alice_tok, resp["replacement_room"]))[
            ("m.room.create", "")]
        self.assertEqual(create["additional_creators"], [bob])
        self.assertError(await self.upgrade(alice_tok, resp["replacement_room"],
                                            {"new_version": "12",
                                             "additional_creators": ["bob"]}),
                         400, "M_INVALID_PARAM")

    async def test_errors(self):
        """Unknown version: 400 M_UNSUPPORTED_ROOM_VERSION; without the tombstone
        level: 403; unknown room: 404; no new_version: 400 M_MISSING_PARAM."""
        _, alice_tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, room_id)
        self.assertError(await self.upgrade(alice_tok, room_id, {"new_version": "99"}), 400,
                         "M_UNSUPPORTED_ROOM_VERSION")
        self.assertError(await self.upgrade(bob_tok, room_id, {"new_version": "12"}), 403,
                         "M_FORBIDDEN")
        self.assertError(await self.upgrade(alice_tok, "!nope:test.local",
                                            {"new_version": "12"}), 404, "M_NOT_FOUND")
        self.assertError(await self.upgrade(alice_tok, room_id, {}), 400, "M_MISSING_PARAM")
        self.assertError(await self.upgrade(alice_tok, room_id, {"new_version": 12}), 400,
                         "M_BAD_JSON")

    async def test_tags_follow_on_join(self):
        """A member's tags on the old room are copied when they join the new one."""
        _, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        old = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, old)
        await self.c["store"].account_data.add_tag(bob, old, "m.favourite", {"order": 0.5})
        _, resp = await self.upgrade(alice_tok, old, {"new_version": "12"})
        new = resp["replacement_room"]
        await self.join(bob_tok, new)
        tags = await self.c["store"].account_data.get_tags_for_room(bob, new)
        self.assertEqual(tags, {"m.favourite": {"order": 0.5}})
