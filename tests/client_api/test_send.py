"""Sending events and redactions (spec: room_send.yaml, redaction.yaml, "Transaction
identifiers")."""

from __future__ import annotations

import sqlalchemy as sa

from homeserver.store.transactions import client_txn_ids
from tests.client_api.room_helpers import V3, RoomsTestCase, q

TEXT = {"msgtype": "m.text", "body": "hello"}


class SendTests(RoomsTestCase):
    def send_path(self, room_id: str, txn: str, event_type: str = "m.room.message") -> str:
        return self.room(room_id, f"/send/{event_type}/{txn}")

    async def get_event(self, token: str, room_id: str, event_id: str):
        return await self.request("GET", self.room(room_id, f"/event/{q(event_id)}"),
                                  token=token)

    async def test_send_and_read_back(self):
        """A sent message gets an event ID and reads back with sender and content, in
        v10 and v12 rooms."""
        alice, tok = await self.register("alice")
        for version in ("10", "12"):
            room_id = await self.create_room(tok, room_version=version)
            event_id = await self.send(tok, room_id, TEXT)
            self.assertTrue(event_id.startswith("$"))
            status, event = await self.get_event(tok, room_id, event_id)
            self.assertEqual(status, 200, event)
            self.assertEqual((event["sender"], event["type"], event["content"],
                              event["room_id"]),
                             (alice, "m.room.message", TEXT, room_id))

    async def test_transaction_idempotency(self):
        """The same txn ID on the same path twice gives one event; another path or
        another device with the same txn ID is a new request."""
        alice, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        first = await self.ok("PUT", self.send_path(room_id, "t1"), TEXT, token=tok)
        again = await self.ok("PUT", self.send_path(room_id, "t1"), {"body": "changed"},
                              token=tok)
        self.assertEqual(first, again)
        other_type = await self.ok("PUT", self.send_path(room_id, "t1", "m.custom"), TEXT,
                                   token=tok)
        self.assertNotEqual(other_type["event_id"], first["event_id"])
        login = await self.ok("POST", V3 + "/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
            "password": "correct horse"})
        other_device = await self.ok("PUT", self.send_path(room_id, "t1"), TEXT,
                                     token=login["access_token"])
        self.assertNotEqual(other_device["event_id"], first["event_id"])
        status, page = await self.messages(tok, room_id, limit=50)
        bodies = [e["content"].get("body") for e in page["chunk"]
                  if e["type"] == "m.room.message"]
        self.assertEqual(bodies, ["hello", "hello"])  # the "changed" retry made nothing

    async def test_transaction_id_only_for_the_sending_device(self):
        """unsigned.transaction_id is shown to the sending device only, also through
        the domain API sync uses."""
        alice, tok = await self.register("alice")
        bob, bob_tok = await self.register("bob")
        room_id = await self.create_room(tok, visibility="public")
        await self.join(bob_tok, room_id)
        event_id = (await self.ok("PUT", self.send_path(room_id, "my-txn"), TEXT,
                                  token=tok))["event_id"]
        _, mine = await self.get_event(tok, room_id, event_id)
        self.assertEqual(mine["unsigned"]["transaction_id"], "my-txn")
        _, theirs = await self.get_event(bob_tok, room_id, event_id)
        self.assertNotIn("transaction_id", theirs["unsigned"])
        _, page = await self.messages(tok, room_id, limit=1)
        self.assertEqual(page["chunk"][0]["unsigned"]["transaction_id"], "my-txn")
        service = self.c["room_service"]
        whoami = await self.ok("GET", V3 + "/account/whoami", token=tok)
        ids = await service.transaction_ids(room_id, [event_id], alice,
                                            whoami["device_id"])
        self.assertEqual(ids, {event_id: "my-txn"})
        self.assertEqual(await service.transaction_ids(room_id, [event_id], alice, "OTHER"),
                         {})
        self.assertEqual(await service.transaction_ids(room_id, [event_id], bob,
                                                       whoami["device_id"]), {})

    async def test_send_needs_membership(self):
        """Sending into a room one has not joined is 403; into an unknown room 404."""
        _, alice_tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(alice_tok, visibility="public")
        self.assertError(await self.request("PUT", self.send_path(room_id, "x"), TEXT,
                                            token=bob_tok), 403, "M_FORBIDDEN")
        self.assertError(await self.request("PUT", self.send_path("!nope:test.local", "x"),
                                            TEXT, token=bob_tok), 404, "M_NOT_FOUND")

    async def test_power_levels_apply(self):
        """A type needing more power than the sender has is 403."""
        _, alice_tok = await self.register("alice")
        _, bob_tok = await self.register("bob")
        room_id = await self.create_room(
            alice_tok, visibility="public",
            power_level_content_override={"events": {"m.secret": 100}})
        await self.join(bob_tok, room_id)
        self.assertError(await self.request("PUT", self.send_path(room_id, "x", "m.secret"),
                                            {}, token=bob_tok), 403, "M_FORBIDDEN")
        await self.ok("PUT", self.send_path(room_id, "x", "m.secret"), {}, token=alice_tok)

    async def test_bad_bodies(self):
        """Not JSON: M_NOT_JSON; a JSON array: M_BAD_JSON; a float in a v6+ room:
        M_BAD_JSON; over 64 KiB: M_TOO_LARGE; m.room.create: 403."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        status, body = await self.request("PUT", self.send_path(room_id, "a"), raw=b"{x",
                                          token=tok)
        self.assertEqual((status, body["errcode"]), (400, "M_NOT_JSON"))
        self.assertError(await self.request("PUT", self.send_path(room_id, "b"), [1],
                                            token=tok), 400, "M_BAD_JSON")
        self.assertError(await self.request("PUT", self.send_path(room_id, "c"),
                                            {"n": 1.5}, token=tok), 400, "M_BAD_JSON")
        self.assertError(await self.request("PUT", self.send_path(room_id, "d"),
                                            {"body": "x" * 70000}, token=tok),
                         413, "M_TOO_LARGE")
        self.assertError(await self.request("PUT", self.send_path(room_id, "e",
                                                                  "m.room.create"),
                                            {}, token=tok), 403, "M_FORBIDDEN")


class RedactionTests(RoomsTestCase):
    def redact_path(self, room_id: str, event_id: str, txn: str) -> str:
        return self.room(room_id, f"/redact/{q(event_id)}/{txn}")

    async def test_redact_own_and_others(self):
        """Anyone may redact their own events; others' need the redact level (403
        without); redacted events lose their content and name the redaction."""
        for version in ("10", "12"):
            alice, alice_tok = await self.register(f"alice{version}")
            bob, bob_tok = await self.register(f"bob{version}")
            room_id = await self.create_room(alice_tok, visibility="public",
                                             room_version=version)
            await self.join(bob_tok, room_id)
            bobs = await self.send(bob_tok, room_id, TEXT)
            alices = await self.send(alice_tok, room_id, TEXT)
            self.assertError(await self.request("PUT", self.redact_path(room_id, alices, "r"),
                                                {}, token=bob_tok), 403, "M_FORBIDDEN")
            own = await self.ok("PUT", self.redact_path(room_id, bobs, "r1"),
                                {"reason": "oops"}, token=bob_tok)
            moderated = await self.ok("PUT", self.redact_path(room_id, alices, "r2"), {},
                                      token=alice_tok)
            for event_id, redaction in ((bobs, own), (alices, moderated)):
                event = await self.ok("GET", self.room(room_id, f"/event/{q(event_id)}"),
                                      token=alice_tok)
                self.assertEqual(event["content"], {})
                because = event["unsigned"]["redacted_because"]
                self.assertEqual(because["event_id"], redaction["event_id"])
                self.assertEqual(because["redacts"], event_id)
            redaction = await self.ok(
                "GET", self.room(room_id, f"/event/{q(own['event_id'])}"), token=alice_tok)
            self.assertEqual(redaction["content"]["reason"], "oops")

    async def test_redaction_txn_idempotent(self):
        """Retrying a redaction with the same txn ID returns the same redaction."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        event_id = await self.send(tok, room_id, TEXT)
        first = await self.ok("PUT", self.redact_path(room_id, event_id, "t"), {}, token=tok)
        again = await self.ok("PUT", self.redact_path(room_id, event_id, "t"), {}, token=tok)
        self.assertEqual(first, again)
        posted = await self.ok("POST", self.room(room_id, f"/redact/{q(event_id)}"), {},
                               token=tok)
        self.assertNotEqual(posted["event_id"], first["event_id"])

    async def test_redaction_through_send(self):
        """m.room.redaction sent with /send redacts in every room version (redacts
        moves to the top level before v11)."""
        _, tok = await self.register("alice")
        for version in ("10", "11", "12"):
            room_id = await self.create_room(tok, room_version=version)
            target = await self.send(tok, room_id, TEXT)
            redaction = await self.send(tok, room_id, {"redacts": target},
                                        event_type="m.room.redaction")
            event = await self.ok("GET", self.room(room_id, f"/event/{q(target)}"), token=tok)
            self.assertEqual(event["content"], {}, version)
            self.assertEqual(event["unsigned"]["redacted_because"]["event_id"], redaction)
        self.assertError(await self.request("PUT", self.room(room_id,
                                                             "/send/m.room.redaction/z"),
                                            {}, token=tok), 400, "M_BAD_JSON")

    async def test_redactions_refused(self):
        """An event of another room (or none) is 400 (sytest "PUT /redact disallows
        redaction of event in different room"); the create and server ACL events may
        not be redacted (403), as with Synapse."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        other = await self.create_room(tok)
        elsewhere = await self.send(tok, other, TEXT)
        for target in (elsewhere, "$nothing"):
            self.assertError(await self.request(
                "PUT", self.redact_path(room_id, target, "x" + target[1:4]), {}, token=tok),
                400, "M_INVALID_PARAM")
        await self.put_state(tok, room_id, "m.room.server_acl", {"allow": ["*"]})
        state = await self.ok("GET", self.room(room_id, "/state"), token=tok)
        for event_type in ("m.room.create", "m.room.server_acl"):
            event_id = next(e["event_id"] for e in state if e["type"] == event_type)
            self.assertError(await self.request(
                "PUT", self.redact_path(room_id, event_id, "y" + event_type), {},
                token=tok), 403, "M_FORBIDDEN")

    async def test_post_send_without_transaction_id(self):
        """POST /rooms/{id}/send/{type} (Synapse's, used by sytest "POST
        /rooms/:room_id/send/:event_type sends a message"): each call a new event."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        first = await self.ok("POST", self.room(room_id, "/send/m.room.message"), TEXT,
                              token=tok)
        second = await self.ok("POST", self.room(room_id, "/send/m.room.message"), TEXT,
                               token=tok)
        self.assertNotEqual(first["event_id"], second["event_id"])
        event = await self.ok("GET", self.room(room_id, f"/event/{q(first['event_id'])}"),
                              token=tok)
        self.assertEqual(event["content"], TEXT)


class MessageRateLimitTests(RoomsTestCase):
    config_overrides = {"rc_message": {"per_second": 0.0001, "burst_count": 3}}

    async def test_retry_to_a_sleeping_room_is_answered_by_the_room(self):
        """Past the burst, a retry reaching a room that went to sleep is answered from
        the room's own DB (nothing global is asked: the table of to-device keys is
        emptied here): the same event, not 429."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)
        first = await self.ok("PUT", self.room(room_id, "/send/m.room.message/1"), TEXT,
                              token=tok)
        await self.ok("PUT", self.room(room_id, "/send/m.room.message/2"), TEXT, token=tok)
        registry = self.c["rooms"]
        actor = await registry.get(room_id)
        await actor.drain()
        registry._hibernate(actor)
        self.assertFalse(registry.is_awake(room_id))
        await self.c["store"].db.run(lambda conn: conn.execute(sa.delete(client_txn_ids)))
        again = await self.ok("PUT", self.room(room_id, "/send/m.room.message/1"), TEXT,
                              token=tok)
        self.assertEqual(again["event_id"], first["event_id"])

    async def test_messages_are_rate_limited(self):
        """rc_message: past the burst, sends are 429 M_LIMIT_EXCEEDED; a retry of an
        already-sent transaction still answers."""
        _, tok = await self.register("alice")
        room_id = await self.create_room(tok)  # takes one token
        await self.ok("PUT", self.room(room_id, "/send/m.room.message/1"), TEXT, token=tok)
        await self.ok("PUT", self.room(room_id, "/send/m.room.message/2"), TEXT, token=tok)
        status, body = await self.request("PUT", self.room(room_id,
                                                           "/send/m.room.message/3"),
                                          TEXT, token=tok)
        self.assertEqual((status, body["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        await self.ok("PUT", self.room(room_id, "/send/m.room.message/2"), TEXT, token=tok)
