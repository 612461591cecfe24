"""The inbound room endpoints over real HTTP with X-Matrix signed requests: /send and
the reads (/event, /state, /state_ids, /backfill, /event_auth, /get_missing_events),
with their access rules (joined servers only, ACLs)."""

import json
from urllib.parse import quote

import sqlalchemy as sa

from federation import xmatrix
from homeserver.crypto.signing import SigningKey, sign_json
from homeserver.store.server_keys import ServerKey
from homeserver.store.streams import room_memberships
from tests.client_api.harness import ServerTestCase
from tests.fakes.rooms import remote_event

REMOTE = SigningKey.from_seed("r1", b"\x05" * 32)
STRANGER = SigningKey.from_seed("s1", b"\x07" * 32)
FAR = 2 ** 50
V1 = "/_matrix/federation/v1"
BOB = "@bob:remote.example"


def _key_row(server, key):
    body = sign_json({"server_name": server, "valid_until_ts": FAR,
                      "verify_keys": {key.key_id: {"key": key.verify_key_base64}},
                      "old_verify_keys": {}}, server, key)
    return ServerKey(server, key.key_id, key.verify_key_base64, FAR, None,
                     json.dumps(body).encode())


def q(value):
    return quote(value, safe="")


class InboundServletTest(ServerTestCase):
    config_overrides = {"trusted_key_servers": []}

    async def setUp(self):
        super().setUp()
        await self.c["store"].server_keys.store_server_keys([
            _key_row("remote.example", REMOTE), _key_row("stranger.example", STRANGER)])
        self.alice, self.token = await self.register("alice")
        self.room_id = await self.create_room(self.token, preset="public_chat")
        self.actor = await self.c["rooms"].get(self.room_id)

    async def signed(self, method, path, body=None, *, key=REMOTE, origin="remote.example"):
        [header] = xmatrix.sign_request([key], method=method, uri=path, origin=origin,
                                        destination="test.local", content=body)
        return await self.request(method, path, body, headers={"Authorization": header})

    async def remote(self, partial, prev=None, ts=1):
        state = await self.actor.current_state()
        if prev is None:
            prev = list((await self.actor.get_events(
                await self.actor.forward_extremities())).values())
        return remote_event(self.room_id, self.actor.room_version.identifier, state, prev,
                            partial, REMOTE, server="remote.example", ts=ts)

    async def join_bob(self):
        join = await self.remote({"type": "m.room.member", "sender": BOB, "state_key": BOB,
                                  "content": {"membership": "join"}})
        status, body = await self.signed("PUT", f"{V1}/send/txn1", {
            "origin": "remote.example", "origin_server_ts": 1,
            "pdus": [dict(join.get_dict())], "edus": []})
        self.assertEqual((status, body), (200, {"pdus": {join.event_id: {}}}))
        return join

    async def test_send_reaches_clients(self):
        """A remote join then message sent by /send show up in the local user's /sync."""
        await self.join_bob()
        msg = await self.remote({"type": "m.room.message", "sender": BOB,
                                 "content": {"msgtype": "m.text", "body": "hi alice"}}, ts=2)
        status, body = await self.signed("PUT", f"{V1}/send/txn2", {
            "origin": "remote.example", "origin_server_ts": 2,
            "pdus": [dict(msg.get_dict())]})
        self.assertEqual((status, body), (200, {"pdus": {msg.event_id: {}}}))
        sync = await self.sync(self.token)
        timeline = sync["rooms"]["join"][self.room_id]["timeline"]["events"]
        self.assertIn("hi alice", [e["content"].get("body") for e in timeline])

    async def test_local_user_banned_by_a_resolved_fork_sees_the_room_left(self):
        """Bob (remote, given power) bans our Carol on his side; we get only his next
        message, placed on the state his server had (the ban an outlier, as gap
        filling brings it). State resolution bans Carol, and her /sync moves the room
        to ``leave`` (the memberships index learnt it from the message's announcement)."""
        carol, carol_token = await self.register("carol")
        await self.request("POST", f"/_matrix/client/v3/join/{q(self.room_id)}", {},
                           token=carol_token)
        await self.join_bob()
        levels = (await self.actor.current_state([("m.room.power_levels", "")]))[
            ("m.room.power_levels", "")].content
        await self.actor.create_event({
            "type": "m.room.power_levels", "sender": self.alice, "state_key": "",
            "content": {**levels, "users": {**levels["users"], BOB: 100}}})
        first = await self.sync(carol_token)
        self.assertIn(self.room_id, first["rooms"]["join"])
        ban = await self.remote({"type": "m.room.member", "sender": BOB,
                                 "state_key": carol, "content": {"membership": "ban"}}, ts=3)
        state = {**(await self.actor.current_state()), ban.state_pair: ban}
        msg = remote_event(self.room_id, self.actor.room_version.identifier, state, [ban],
                           {"type": "m.room.message", "sender": BOB,
                            "content": {"msgtype": "m.text", "body": "gone"}},
                           REMOTE, server="remote.example", ts=4)
        await self.actor.apply_remote_pdus([msg], outliers=[ban],
                                           state_before={msg.event_id: list(state.values())})
        self.assertEqual(await self.actor.membership(carol), "ban")
        rooms = await self.c["store"].streams.get_rooms_for_user(carol, ("join",))
        self.assertEqual(rooms, [])
        later = await self.sync(carol_token, since=first["next_batch"])
        self.assertIn(self.room_id, later["rooms"]["leave"])
        self.assertNotIn(self.room_id, later["rooms"].get("join", {}))

    async def test_send_errors(self):
        """/send unsigned is 401; a non-object body and too many PDUs are 400."""
        status, body = await self.request("PUT", f"{V1}/send/x", {"pdus": []})
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))
        status, body = await self.signed("PUT", f"{V1}/send/x", {"pdus": [{}] * 51})
        self.assertEqual((status, body["errcode"]), (400, "M_BAD_JSON"))

    async def test_reads(self):
        """Once its user joined, the origin reads the event, the state before it (full
        and as IDs), the auth chain, backfill and missing events, in the spec's shapes."""
        join = await self.join_bob()
        state_before = await self.actor.state_ids_at(join.event_id)

        status, body = await self.signed("GET", f"{V1}/event/{q(join.event_id)}")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["origin"], "test.local")
        self.assertIsInstance(body["origin_server_ts"], int)
        self.assertEqual(body["pdus"], [dict(join.get_dict())])

        status, body = await self.signed(
            "GET", f"{V1}/state_ids/{q(self.room_id)}?event_id={q(join.event_id)}")
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(body["pdu_ids"]), sorted(state_before.values()))
        self.assertIsInstance(body["auth_chain_ids"], list)

        status, body = await self.signed(
            "GET", f"{V1}/state/{q(self.room_id)}?event_id={q(join.event_id)}")
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["pdus"]), len(state_before))
        self.assertIn("auth_chain", body)

        status, body = await self.signed(
            "GET", f"{V1}/event_auth/{q(self.room_id)}/{q(join.event_id)}")
        self.assertEqual(status, 200, body)
        chain = (await self.actor.auth_chain([join.event_id]))
        self.assertEqual(len(body["auth_chain"]), len(chain))

        status, body = await self.signed(
            "GET", f"{V1}/backfill/{q(self.room_id)}?v={q(join.event_id)}&limit=3")
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["pdus"]), 3)
        self.assertEqual(body["pdus"][0], dict(join.get_dict()))
        depths = [p["depth"] for p in body["pdus"]]
        self.assertEqual(depths, sorted(depths, reverse=True))

        create_id = min((await self.actor.current_state()).values(),
                        key=lambda e: e.depth).event_id
        status, body = await self.signed(
            "POST", f"{V1}/get_missing_events/{q(self.room_id)}",
            {"earliest_events": [create_id], "latest_events": [join.event_id], "limit": 2})
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["events"]), 2)
        depths = [e["depth"] for e in body["events"]]
        self.assertEqual(depths, sorted(depths))
        self.assertLess(depths[-1], join.depth)

    async def test_timestamp_to_event(self):
        """/timestamp_to_event finds the event nearest a time in either direction, for
        a server with a user in the room; a bad dir or ts is 400, none found 404, a
        server with nobody in the room 403."""
        join = await self.join_bob()
        path = f"{V1}/timestamp_to_event/{q(self.room_id)}"
        status, body = await self.signed("GET", f"{path}?ts={join.origin_server_ts}&dir=b")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, {"event_id": join.event_id,
                                "origin_server_ts": join.origin_server_ts})
        status, body = await self.signed("GET", f"{path}?ts=0&dir=f")
        self.assertEqual(status, 200, body)
        self.assertLessEqual(body["origin_server_ts"], join.origin_server_ts)
        status, body = await self.signed("GET", f"{path}?ts=0&dir=b")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        for query, errcode in (("ts=1&dir=x", "M_INVALID_PARAM"),
                               ("ts=x&dir=f", "M_INVALID_PARAM"), ("dir=f", "M_MISSING_PARAM")):
            status, body = await self.signed("GET", f"{path}?{query}")
            self.assertEqual((status, body["errcode"]), (400, errcode), query)
        status, body = await self.signed("GET", f"{path}?ts=0&dir=f", key=STRANGER,
                                         origin="stranger.example")
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))

    async def test_read_errors(self):
        """Missing event_id 400, unknown room and event 404, bad limit 400."""
        join = await self.join_bob()
        status, body = await self.signed("GET", f"{V1}/state_ids/{q(self.room_id)}")
        self.assertEqual((status, body["errcode"]), (400, "M_MISSING_PARAM"))
        status, body = await self.signed(
            "GET", f"{V1}/state_ids/{q('!nope:test.local')}?event_id={q(join.event_id)}")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.signed("GET", f"{V1}/event/{q('$nope')}")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.signed(
            "GET", f"{V1}/backfill/{q(self.room_id)}?v={q(join.event_id)}&limit=x")
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))
        status, body = await self.signed(
            "POST", f"{V1}/get_missing_events/{q(self.room_id)}", {"latest_events": "x"})
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))

    async def test_event_found_when_memberships_index_lacks_origin(self):
        """/event finds the event's room by the event, not only through the memberships
        index: a room joined over federation never indexes the members that were in
        its send_join state (found against Synapse, tests/interop/test_partition.py)."""
        join = await self.join_bob()
        streams = self.c["store"].streams
        await streams._db.run(lambda conn: conn.execute(sa.delete(room_memberships).where(
            room_memberships.c.user_id == BOB)))
        self.assertEqual(await streams.rooms_joined_by_server("remote.example"), [])
        status, body = await self.signed("GET", f"{V1}/event/{q(join.event_id)}")
        self.assertEqual((status, body.get("pdus")), (200, [dict(join.get_dict())]))

    async def test_server_not_in_room_forbidden(self):
        """A server with no user in the room may not read it (403), nor see its events
        (404 from /event)."""
        join = await self.join_bob()
        path = f"{V1}/state_ids/{q(self.room_id)}?event_id={q(join.event_id)}"
        status, body = await self.signed("GET", path, key=STRANGER, origin="stranger.example")
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        status, body = await self.signed("GET", f"{V1}/event/{q(join.event_id)}",
                                         key=STRANGER, origin="stranger.example")
        self.assertEqual(status, 404)

    async def test_acl_denied_server_forbidden(self):
        """A server the room's ACL denies gets 403 even with a joined user."""
        join = await self.join_bob()
        status, _ = await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(self.room_id)}/state/m.room.server_acl/",
            {"allow": ["*"], "deny": ["remote.example"]}, token=self.token)
        self.assertEqual(status, 200)
        status, body = await self.signed(
            "GET", f"{V1}/state_ids/{q(self.room_id)}?event_id={q(join.event_id)}")
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))

    async def send_edus(self, txn_id, edus):
        status, body = await self.signed("PUT", f"{V1}/send/{txn_id}", {
            "origin": "remote.example", "origin_server_ts": 1, "pdus": [], "edus": edus})
        self.assertEqual((status, body), (200, {"pdus": {}}))

    def ephemeral(self, sync, edu_type):
        room = sync["rooms"]["join"].get(self.room_id, {})
        return [e["content"] for e in room.get("ephemeral", {}).get("events", [])
                if e["type"] == edu_type]

    async def test_typing_and_receipt_edus_reach_clients(self):
        """m.typing and m.receipt from the origin about its joined user reach /sync;
        the same about another server's user is ignored."""
        join = await self.join_bob()
        since = (await self.sync(self.token))["next_batch"]
        await self.send_edus("e1", [
            {"edu_type": "m.typing", "content": {"room_id": self.room_id, "user_id": BOB,
                                                 "typing": True}},
            {"edu_type": "m.typing", "content": {"room_id": self.room_id,
                                                 "user_id": "@eve:elsewhere.example",
                                                 "typing": True}},
            {"edu_type": "m.receipt", "content": {self.room_id: {"m.read": {
                BOB: {"event_ids": [join.event_id], "data": {"ts": 5}},
                "@eve:elsewhere.example": {"event_ids": [join.event_id],
                                           "data": {"ts": 5}}}}}}])
        sync = await self.sync(self.token, since)
        self.assertEqual(self.ephemeral(sync, "m.typing"), [{"user_ids": [BOB]}])
        [receipts] = self.ephemeral(sync, "m.receipt")
        self.assertEqual(receipts, {join.event_id: {"m.read": {BOB: {"ts": 5}}}})

    async def test_history_before_join_pruned_for_joined_visibility(self):
        """With history visibility "joined", events from before the origin's first user
        joined come back redacted from /backfill, and /event refuses them."""
        status, _ = await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(self.room_id)}/state/"
            "m.room.history_visibility/", {"history_visibility": "joined"}, token=self.token)
        self.assertEqual(status, 200)
        secret = await self.send(self.token, self.room_id,
                                 {"msgtype": "m.text", "body": "before bob"})
        join = await self.join_bob()
        status, body = await self.signed(
            "GET", f"{V1}/backfill/{q(self.room_id)}?v={q(join.event_id)}&limit=2")
        self.assertEqual(status, 200, body)
        [shown_join, shown_secret] = body["pdus"]
        self.assertEqual(shown_join, dict(join.get_dict()))
        self.assertEqual(shown_secret["content"], {})
        status, _ = await self.signed("GET", f"{V1}/event/{q(secret)}")
        self.assertEqual(status, 404)

    async def test_edus_ignored_when_acl_denies(self):
        """Typing from a server the room's ACL denies is ignored (spec: ACLs apply to
        EDUs local to a room)."""
        await self.join_bob()
        status, _ = await self.request(
            "PUT", f"/_matrix/client/v3/rooms/{q(self.room_id)}/state/m.room.server_acl/",
            {"allow": ["*"], "deny": ["remote.example"]}, token=self.token)
        self.assertEqual(status, 200)
        since = (await self.sync(self.token))["next_batch"]
        await self.send_edus("e1", [{"edu_type": "m.typing", "content": {
            "room_id": self.room_id, "user_id": BOB, "typing": True}}])
        self.assertEqual(self.c["typing"].typing_users(self.room_id), [])
        sync = await self.sync(self.token, since)
        self.assertEqual(self.ephemeral(sync, "m.typing"), [])

    def test_edu_types_registered(self):
        """The server's EDU registry handles the types other features registered."""
        edus = self.c["edu_handlers"]
        for edu_type in ("m.typing", "m.receipt", "m.device_list_update",
                         "m.signing_key_update"):
            self.assertTrue(edus.handles(edu_type), edu_type)
        self.assertFalse(edus.handles("m.no_such_edu"))
