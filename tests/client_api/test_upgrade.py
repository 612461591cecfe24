"""POST /rooms/{roomId}/upgrade (spec: room_upgrades.yaml, "Room Upgrades")."""

from __future__ import annotations

from tests.client_api.room_helpers import V3, RoomsTestCase, q


class _UpgradeCase(RoomsTestCase):
    async def state_map(self, token: str, room_id: str) -> dict:
        events = await self.ok("GET", self.room(room_id, "/state"), token=token)
        return {(e["type"], e["state_key"]): e["content"] for e in events}

    async def upgrade(self, token: str, room_id: str, body: dict) -> tuple:
        return await self.request("POST", self.room(room_id, "/upgrade"), body, token=token)


class UpgradeTests(_UpgradeCase):

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
        """Into a pre-v12 version the predecessor names the old room's last event (the
        tombstone, sent first), and the old room's creators (the upgrader too) get
        the highest level named."""
        alice, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        old = await self.create_room(alice_tok, preset="trusted_private_chat", invite=[bob])
        await self.join(bob_tok, old)
        await self.send(alice_tok, old, {"msgtype": "m.text", "body": "last"})
        status, resp = await self.upgrade(bob_tok, old, {"new_version": "10"})
        self.assertEqual(status, 200, resp)
        new_state = await self.state_map(bob_tok, resp["replacement_room"])
        create = new_state[("m.room.create", "")]
        self.assertEqual(create["predecessor"]["room_id"], old)
        self.assertEqual(create["creator"], bob)
        tombstone = await self.ok(
            "GET", self.room(old, "/state/m.room.tombstone/?format=event"), token=bob_tok)
        self.assertEqual(create["predecessor"]["event_id"], tombstone["event_id"])
        power = new_state[("m.room.power_levels", "")]
        # both v12 creators had unbounded power: in v10 they get the highest level
        # named (the v12 tombstone level, so that they can upgrade again)
        self.assertEqual(power["users"], {alice: 150, bob: 150})

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

    async def test_tags_follow_upgrade(self):
        """A member's tags on the old room are copied at the upgrade (and are there
        when they join the new one)."""
        _, alice_tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        old = await self.create_room(alice_tok, visibility="public")
        await self.join(bob_tok, old)
        await self.c["store"].account_data.add_tag(bob, old, "m.favourite", {"order": 0.5})
        _, resp = await self.upgrade(alice_tok, old, {"new_version": "12"})
        new = resp["replacement_room"]
        tags = await self.c["store"].account_data.get_tags_for_room(bob, new)
        self.assertEqual(tags, {"m.favourite": {"order": 0.5}})
        await self.join(bob_tok, new)
        tags = await self.c["store"].account_data.get_tags_for_room(bob, new)
        self.assertEqual(tags, {"m.favourite": {"order": 0.5}})


class SytestUpgradeTests(_UpgradeCase):
    """sytest tests/30rooms/60version_upgrade.pl, which upgrades default rooms to v2."""

    async def upgrade_ok(self, token: str, room_id: str) -> str:
        status, resp = await self.upgrade(token, room_id, {"new_version": "2"})
        self.assertEqual(status, 200, resp)
        return resp["replacement_room"]

    async def test_creates_new_room(self):
        """"/upgrade creates a new room": in the next incremental sync the new room
        starts with its v2 create event, whose predecessor names the tombstone that
        starts the old room's timeline."""
        _, tok = await self.register("alice")
        old = await self.create_room(tok)
        since = (await self.sync(tok))["next_batch"]
        new = await self.upgrade_ok(tok, old)
        sync = await self.sync(tok, since=since)
        create = sync["rooms"]["join"][new]["timeline"]["events"][0]
        self.assertEqual(create["type"], "m.room.create")
        self.assertEqual(create["content"]["room_version"], "2")
        tombstone = sync["rooms"]["join"][old]["timeline"]["events"][0]
        self.assertEqual(tombstone["type"], "m.room.tombstone")
        self.assertEqual(tombstone["content"]["replacement_room"], new)
        self.assertEqual(create["content"]["predecessor"],
                         {"room_id": old, "event_id": tombstone["event_id"]})

    async def test_preserves_visibility(self):
        """"/upgrade should preserve room visibility for public/private rooms"."""
        _, tok = await self.register("alice")
        for visibility in ("public", "private"):
            old = await self.create_room(tok)
            await self.ok("PUT", f"{V3}/directory/list/room/{q(old)}",
                          {"visibility": visibility}, token=tok)
            new = await self.upgrade_ok(tok, old)
            self.assertEqual(await self.ok("GET", f"{V3}/directory/list/room/{q(new)}"),
                             {"visibility": visibility})

    async def test_copies_large_power_levels(self):
        """"/upgrade copies >100 power levels to the new room" (from a v10 room: in
        sytest's default v12 room the creator may not be listed at all)."""
        alice, tok = await self.register("alice")
        old = await self.create_room(tok, room_version="10", power_level_content_override={
            "users": {alice: 500}})
        new = await self.upgrade_ok(tok, old)
        power = (await self.state_map(tok, new))[("m.room.power_levels", "")]
        self.assertEqual(power["users"], {alice: 500})

    async def test_copies_important_state(self):
        """"/upgrade copies important state to the new room"."""
        _, tok = await self.register("alice")
        old = await self.create_room(tok)
        wanted = {
            "m.room.topic": {"topic": "topic"},
            "m.room.name": {"name": "name"},
            "m.room.join_rules": {"join_rule": "public"},
            "m.room.guest_access": {"guest_access": "forbidden"},
            "m.room.history_visibility": {"history_visibility": "joined"},
            "m.room.avatar": {"url": "http://something"},
            "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
            "m.room.server_acl": {"allow": ["*"], "allow_ip_literals": "false",
                                  "deny": ["*.evil.com", "evil.com"]},
        }
        for event_type, content in wanted.items():
            await self.put_state(tok, old, event_type, content)
        since = (await self.sync(tok))["next_batch"]
        new = await self.upgrade_ok(tok, old)
        timeline = (await self.sync(tok, since=since))["rooms"]["join"][new]["timeline"]
        for event_type, content in wanted.items():
            event = next(e for e in timeline["events"]
                         if e["type"] == event_type and e["state_key"] == "")
            self.assertEqual(event["content"], content, event_type)

    async def test_copies_bans(self):
        """"/upgrade copies ban events to the new room"."""
        _, tok = await self.register("alice")
        old = await self.create_room(tok)
        await self.put_state(tok, old, "m.room.member", {"membership": "ban"},
                             "@bob:matrix.org")
        new = await self.upgrade_ok(tok, old)
        state = await self.state_map(tok, new)
        self.assertEqual(state[("m.room.member", "@bob:matrix.org")], {"membership": "ban"})

    async def test_moves_aliases(self):
        """"/upgrade moves aliases to the new room" (canonical alias with alt_aliases)."""
        _, tok = await self.register("alice")
        old = await self.create_room(tok)
        one, two = "#one:test.local", "#two:test.local"
        for alias in (one, two):
            await self.ok("PUT", f"{V3}/directory/room/{q(alias)}", {"room_id": old},
                          token=tok)
        await self.put_state(tok, old, "m.room.canonical_alias",
                             {"alias": one, "alt_aliases": [two]})
        new = await self.upgrade_ok(tok, old)
        self.assertEqual((await self.get_state(tok, old, "m.room.canonical_alias"))[1], {})
        self.assertEqual((await self.get_state(tok, new, "m.room.canonical_alias"))[1],
                         {"alias": one, "alt_aliases": [two]})
        for alias in (one, two):
            resolved = await self.ok("GET", f"{V3}/directory/room/{q(alias)}")
            self.assertEqual(resolved["room_id"], new)

    async def test_preserves_direct_and_federate(self):
        """"/upgrade preserves direct room state" (the upgrader's m.direct) and
        "preserves room federation ability" (m.federate in the create event)."""
        alice, tok = await self.register("alice")
        old = await self.create_room(tok, creation_content={"m.federate": False})
        await self.ok("PUT", f"{V3}/user/{q(alice)}/account_data/m.direct", {alice: [old]},
                      token=tok)
        new = await self.upgrade_ok(tok, old)
        direct = await self.ok("GET", f"{V3}/user/{q(alice)}/account_data/m.direct",
                               token=tok)
        self.assertIn(new, direct[alice])
        create = (await self.get_state(tok, new, "m.room.create"))[1]
        self.assertIs(create["m.federate"], False)

    async def test_restricts_old_power_levels(self):
        """"/upgrade restricts power levels in the old room" (to 50), "… when the old
        PLs are unusual" (users_default 80: to 81)."""
        _, tok = await self.register("alice")
        for users_default, expected in ((0, 50), (80, 81)):
            old = await self.create_room(tok)
            power = (await self.get_state(tok, old, "m.room.power_levels"))[1]
            await self.put_state(tok, old, "m.room.power_levels",
                                 {**power, "users_default": users_default})
            await self.upgrade_ok(tok, old)
            power = (await self.get_state(tok, old, "m.room.power_levels"))[1]
            self.assertEqual((power["events_default"], power["invite"]),
                             (expected, expected))

    async def test_rejections(self):
        """Unknown version 400, a joiner without power 403, "!fail:unknown" 404, and
        "Cannot send tombstone event that points to the same room" (400)."""
        _, tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(tok, preset="public_chat")
        await self.join(bob_tok, room_id)
        self.assertError(await self.upgrade(tok, room_id,
                                            {"new_version": "my_bad_version"}),
                         400, "M_UNSUPPORTED_ROOM_VERSION")
        self.assertError(await self.upgrade(bob_tok, room_id, {"new_version": "2"}),
                         403, "M_FORBIDDEN")
        self.assertError(await self.upgrade(tok, "!fail:unknown", {"new_version": "2"}),
                         404, "M_NOT_FOUND")
        status, resp = await self.request(
            "PUT", self.room(room_id, "/send/m.room.tombstone/t1"),
            {"replacement_room": room_id}, token=tok)
        self.assertEqual(status, 400, resp)
        status, resp = await self.request(
            "PUT", self.room(room_id, "/state/m.room.tombstone/"),
            {"replacement_room": room_id}, token=tok)
        self.assertEqual(status, 400, resp)

    async def test_copies_power_levels_from_pre_v12_room(self):
        """"/upgrade copies the power levels to the new room" and "… preserves the
        power level of the upgrading user in old and new rooms": exactly, from a v10
        room (sytest's rooms are the server default; from a v12 room the old
        creators are added as admins, or nobody could manage the replacement)."""
        alice, tok = await self.register("alice")
        mod, mod_tok = await self.register("mod")
        old = await self.create_room(tok, room_version="10", preset="public_chat")
        await self.join(mod_tok, old)
        power = (await self.get_state(tok, old, "m.room.power_levels"))[1]
        power["users"]["@test:xyz"] = 40
        power["users"][mod] = 50
        power["events"]["m.room.tombstone"] = 50
        await self.put_state(tok, old, "m.room.power_levels", power)
        new = await self.upgrade_ok(mod_tok, old)
        self.assertEqual((await self.get_state(mod_tok, new, "m.room.power_levels"))[1],
                         power)
        # the moderator could not restrict the old room (power levels need 100)
        self.assertEqual((await self.get_state(mod_tok, old, "m.room.power_levels"))[1],
                         power)

    async def test_settings_copiers(self):
        """Copiers added with ``add_settings_copier`` run at the upgrade for every
        joined local member (the upgrader first), as Synapse's
        transfer_room_state_on_room_upgrade, not again on joining; one that fails
        stops neither the others nor the upgrade."""
        alice, tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        old = await self.create_room(tok, preset="public_chat")
        await self.join(bob_tok, old)
        calls = []

        async def broken(user_id, old_room, new_room):
            raise RuntimeError("broken copier")

        async def record(user_id, old_room, new_room):
            calls.append((user_id, old_room, new_room))

        membership = self.c["room_service"].membership
        membership.add_settings_copier(broken)
        membership.add_settings_copier(record)
        new = await self.upgrade_ok(tok, old)
        self.assertEqual(calls, [(alice, old, new), (bob, old, new)])
        await self.join(bob_tok, new)
        self.assertEqual(len(calls), 2)
        self.flushLoggedErrors(RuntimeError)

    async def test_push_rules_follow_upgrade(self):
        """sytest "local user has push rules copied to upgraded room": each local
        member's enabled room rule and room_id override are copied for the new
        room (under its ID) at the upgrade, before they join it; disabled ones and
        non-members' are not."""
        _, tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        _, carol_tok = await self.register("carol")
        old = await self.create_room(tok, preset="public_chat")
        await self.join(bob_tok, old)
        rules = V3 + "/pushrules/global"
        override = {"conditions": [{"kind": "event_match", "key": "room_id",
                                    "pattern": old}], "actions": []}
        for token in (tok, bob_tok, carol_tok):
            await self.ok("PUT", f"{rules}/room/{q(old)}", {"actions": ["dont_notify"]},
                          token=token)
        await self.ok("PUT", f"{rules}/override/quiet", override, token=bob_tok)
        await self.ok("PUT", f"{rules}/room/{q(old)}/enabled", {"enabled": False},
                      token=bob_tok)
        new = await self.upgrade_ok(tok, old)

        self.assertEqual((await self.ok("GET", f"{rules}/room/{q(new)}", token=tok))
                         ["actions"], ["dont_notify"])
        copied = await self.ok("GET", f"{rules}/override/{q(new)}", token=bob_tok)
        self.assertEqual(copied["conditions"], [{"kind": "event_match", "key": "room_id",
                                                 "pattern": new}])
        self.assertError(await self.request("GET", f"{rules}/room/{q(new)}",
                                            token=bob_tok), 404, "M_NOT_FOUND")
        self.assertError(await self.request("GET", f"{rules}/room/{q(new)}",
                                            token=carol_tok), 404, "M_NOT_FOUND")

    async def test_uncopyable_state_writes_nothing(self):
        """A v5 room whose topic holds a float cannot become v10 (strict canonical
        JSON): 400 M_BAD_JSON before the tombstone (which goes first before v12) or
        any room is written."""
        _, tok = await self.register("alice")
        old = await self.create_room(tok, room_version="5")
        await self.put_state(tok, old, "m.room.topic", {"topic": "t", "weight": 1.5})
        joined_before = await self.ok("GET", V3 + "/joined_rooms", token=tok)
        for version in ("10", "12"):
            self.assertError(await self.upgrade(tok, old, {"new_version": version}), 400,
                             "M_BAD_JSON")
        self.assertEqual((await self.get_state(tok, old, "m.room.tombstone"))[0], 404)
        self.assertEqual(await self.ok("GET", V3 + "/joined_rooms", token=tok),
                         joined_before)
        # into a version that still takes floats it works
        await self.upgrade_ok(tok, old)

    async def test_between_event_formats(self):
        """v12 → v1 → v12: the predecessor of the v1 room names the old room's
        tombstone, the v12 one only the room; v1 events carry $random:server IDs."""
        alice, tok = await self.register("alice")
        first = await self.create_room(tok, name="Formats")
        status, resp = await self.upgrade(tok, first, {"new_version": "1"})
        self.assertEqual(status, 200, resp)
        v1 = resp["replacement_room"]
        create = (await self.get_state(tok, v1, "m.room.create"))[1]
        tombstone = await self.ok(
            "GET", self.room(first, "/state/m.room.tombstone/?format=event"), token=tok)
        self.assertEqual(create["predecessor"]["event_id"], tombstone["event_id"])
        self.assertEqual((await self.get_state(tok, v1, "m.room.name"))[1],
                         {"name": "Formats"})
        sent = await self.send(tok, v1, {"msgtype": "m.text", "body": "in v1"})
        self.assertTrue(sent.endswith(":test.local"))
        status, resp = await self.upgrade(tok, v1, {"new_version": "12"})
        self.assertEqual(status, 200, resp)
        create = (await self.get_state(tok, resp["replacement_room"], "m.room.create"))[1]
        self.assertEqual(create["predecessor"], {"room_id": v1})
