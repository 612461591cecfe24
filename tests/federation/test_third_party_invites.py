"""Third-party invites end to end in process, with a fake identity server on a
loopback port (tests/fakes/identity_server.py): invite by email, the identity
server's /3pid/onbind turning into the bound user's signed invite, a forged signature
refused, the exchange endpoint, and the errors around them."""

from __future__ import annotations

from federation.client import RemoteHttpError
from homeserver.crypto.signing import SigningKey
from tests.client_api.harness import q
from tests.client_api.room_helpers import RoomsTestCase
from tests.fakes.federation_client import FakeFederationClient
from tests.fakes.identity_server import FakeIdentityServer
from tests.federation.signed import SignedRequests

V3 = "/_matrix/client/v3"
FED = "/_matrix/federation/v1"
EMAIL = "bob@example.com"


class ThirdPartyInviteTest(SignedRequests, RoomsTestCase):
    def setUp(self):
        self.ids = FakeIdentityServer()
        self.addCleanup(self.ids.stop)
        self.config_overrides = {
            **SignedRequests.config_overrides,
            "trusted_third_party_id_servers": [self.ids.base_url],
            # the fake identity server is on loopback: the SSRF filter must let it be
            "ip_range_whitelist": ["127.0.0.1/32"]}
        return super().setUp()

    async def invite_email(self, token: str, room_id: str, address: str = EMAIL,
                           **overrides) -> tuple[int, dict]:
        body = {"id_server": self.ids.id_server, "id_access_token": "ist",
                "medium": "email", "address": address, **overrides}
        return await self.request("POST", self.room(room_id, "/invite"), body, token=token)

    async def third_party_state(self, token: str, room_id: str) -> dict:
        status, state = await self.request("GET", self.room(room_id, "/state"), token=token)
        self.assertEqual(status, 200, state)
        return {e["state_key"]: e for e in state if e["type"] == "m.room.third_party_invite"}

    async def onbind(self, body: dict, method: str = "PUT") -> tuple[int, dict]:
        return await self.request(method, f"{FED}/3pid/onbind", body)

    async def test_invite_by_email_stores_and_emits_event(self):
        """An unbound address: the identity server stores the invite (told the room
        and the sender, with our user's token) and the room gets an
        m.room.third_party_invite keyed by the token with the public key."""
        alice, token = await self.register("alice")
        room = await self.create_room(token, name="Lounge")
        self.assertEqual(await self.invite_email(token, room), (200, {}))
        [stored] = self.ids.stored[EMAIL]
        self.assertEqual((stored["room_id"], stored["sender"], stored["room_name"]),
                         (room, alice, "Lounge"))
        self.assertEqual({r[2] for r in self.ids.requests}, {"Bearer ist"})
        event = (await self.third_party_state(token, room))[stored["token"]]
        self.assertEqual(event["sender"], alice)
        self.assertEqual(event["content"]["public_key"], self.ids.key.verify_key_base64)
        self.assertEqual(event["content"]["display_name"], "bob...")

    async def test_bound_address_invites_its_user(self):
        """An address the identity server knows: that user is invited directly."""
        _, token = await self.register("alice")
        bob, bob_token = await self.register("bob")
        self.ids.bindings[EMAIL] = bob
        room = await self.create_room(token)
        self.assertEqual(await self.invite_email(token, room), (200, {}))
        self.assertEqual(self.ids.stored, {})
        status, member = await self.get_state(token, room, "m.room.member", bob)
        self.assertEqual((status, member.get("membership")), (200, "invite"))

    async def test_onbind_turns_into_signed_invite(self):
        """After Bob binds the address, the identity server's onbind makes Bob's
        m.room.member invite, sent as Alice with the signed block; Bob can join."""
        alice, token = await self.register("alice")
        bob, bob_token = await self.register("bob")
        room = await self.create_room(token)
        await self.invite_email(token, room)
        # POST: as Sydent sends it (the spec says PUT; both are served)
        self.assertEqual(await self.onbind(self.ids.onbind_body(EMAIL, bob), "POST"),
                         (200, {}))
        status, state = await self.request("GET", self.room(room, "/state"), token=token)
        [member] = [e for e in state if e["type"] == "m.room.member"
                    and e["state_key"] == bob]
        self.assertEqual((member["sender"], member["content"]["membership"]),
                         (alice, "invite"))
        tpi = member["content"]["third_party_invite"]
        self.assertEqual(tpi["display_name"], "bob...")
        self.assertEqual(tpi["signed"]["mxid"], bob)
        self.assertIn("identity.test", tpi["signed"]["signatures"])
        sync = await self.sync(bob_token)
        self.assertIn(room, sync["rooms"]["invite"])
        await self.join(bob_token, room)

    async def test_onbind_with_bad_signature_refused(self):
        """A signed block made with another key than the one in the room's
        m.room.third_party_invite is 403, and Bob is not invited."""
        _, token = await self.register("alice")
        bob, _ = await self.register("bob")
        room = await self.create_room(token)
        await self.invite_email(token, room)
        forged = self.ids.onbind_body(EMAIL, bob, key=SigningKey.from_seed(
            "0", b"\x09" * 32))
        status, body = await self.onbind(forged)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        status, _ = await self.get_state(token, room, "m.room.member", bob)
        self.assertEqual(status, 404)

    async def test_onbind_checks_its_body(self):
        """onbind for another server's user, an unknown user, or a signed block for
        someone else is refused with the right error."""
        _, token = await self.register("alice")
        bob, _ = await self.register("bob")
        room = await self.create_room(token)
        await self.invite_email(token, room)
        status, body = await self.onbind(self.ids.onbind_body(EMAIL, "@bob:elsewhere.org"))
        self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"))
        status, body = await self.onbind(self.ids.onbind_body(EMAIL, "@nobody:test.local"))
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        other = self.ids.onbind_body(EMAIL, bob)
        other["invites"][0]["signed"]["mxid"] = "@carol:test.local"
        status, body = await self.onbind(other)
        self.assertEqual((status, body["errcode"]), (400, "M_BAD_JSON"))
        status, body = await self.onbind({"mxid": bob})
        self.assertEqual((status, body["errcode"]), (400, "M_BAD_JSON"))

    async def test_onbind_for_room_elsewhere_asks_its_servers(self):
        """An invite to a room we are not in is sent to the inviter's server as
        PUT /exchange_third_party_invite; its refusal is ours."""
        bob, _ = await self.register("bob")
        fed = FakeFederationClient()
        self.c["third_party_exchange"]._client = fed
        room = "!far:far.example"
        body = {"medium": "email", "address": EMAIL, "mxid": bob, "invites": [{
            "medium": "email", "address": EMAIL, "mxid": bob, "room_id": room,
            "sender": "@alice:far.example",
            "signed": {"mxid": bob, "token": "t", "signatures": {"x": {"ed25519:0": "s"}}}}]}
        path = f"{FED}/exchange_third_party_invite/{q(room)}"
        fed.answer("PUT", "far.example", path, {})
        self.assertEqual(await self.onbind(body), (200, {}))
        [(_, server, _, _, sent, _)] = fed.requests
        self.assertEqual((server, sent["sender"], sent["state_key"], sent["room_id"]),
                         ("far.example", "@alice:far.example", bob, room))
        self.assertEqual(sent["content"]["third_party_invite"]["signed"]["token"], "t")
        fed.answer("PUT", "far.example", path,
                   RemoteHttpError("far.example", 403, b'{"errcode":"M_FORBIDDEN"}'))
        status, answer = await self.onbind(body)
        self.assertEqual((status, answer["errcode"]), (403, "M_FORBIDDEN"))

    async def test_exchange_endpoint(self):
        """Another server asks us (signed) to exchange an invite in our room: the
        invite is written; unsigned it is 401, and for a room we are not in 404."""
        alice, token = await self.register("alice")
        bob, _ = await self.register("bob")
        room = await self.create_room(token)
        await self.invite_email(token, room)
        invite = self.ids.onbind_body(EMAIL, bob)["invites"][0]
        event = {"type": "m.room.member", "room_id": room, "sender": alice,
                 "state_key": bob, "content": {"membership": "invite", "third_party_invite": {
                     "display_name": "b", "signed": invite["signed"]}}}
        path = f"{FED}/exchange_third_party_invite/{q(room)}"
        status, body = await self.request("PUT", path, event)
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))
        self.assertEqual(await self.signed("PUT", path, event), (200, {}))
        status, member = await self.get_state(token, room, "m.room.member", bob)
        self.assertEqual((status, member["membership"]), (200, "invite"))
        elsewhere = {**event, "room_id": "!gone:test.local"}
        status, body = await self.signed(
            "PUT", f"{FED}/exchange_third_party_invite/{q('!gone:test.local')}", elsewhere)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    async def test_client_errors(self):
        """Untrusted id_server, missing id_access_token and a sender who is not in
        the room are refused before the identity server is asked."""
        _, token = await self.register("alice")
        _, other = await self.register("mallory")
        room = await self.create_room(token)
        status, body = await self.invite_email(token, room, id_server="evil.example")
        self.assertEqual((status, body["errcode"]), (400, "M_SERVER_NOT_TRUSTED"))
        status, body = await self.request("POST", self.room(room, "/invite"), {
            "id_server": self.ids.id_server, "medium": "email", "address": EMAIL},
            token=token)
        self.assertEqual((status, body["errcode"]), (400, "M_MISSING_PARAM"))
        status, body = await self.invite_email(other, room)
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        self.assertEqual(self.ids.requests, [])


class GuardedIdentityServerTest(RoomsTestCase):
    """The fake identity server trusted but on loopback without ip_range_whitelist:
    the SSRF filter keeps our server from reaching it."""

    def setUp(self):
        self.ids = FakeIdentityServer()
        self.addCleanup(self.ids.stop)
        self.config_overrides = {"trusted_third_party_id_servers": [self.ids.base_url]}
        return super().setUp()

    async def test_loopback_identity_server_not_reached(self):
        """The invite is 502 M_UNKNOWN, the identity server hears nothing and the
        room gets no m.room.third_party_invite."""
        _, token = await self.register("alice")
        room = await self.create_room(token)
        status, body = await self.request("POST", self.room(room, "/invite"), {
            "id_server": self.ids.id_server, "id_access_token": "ist", "medium": "email",
            "address": EMAIL}, token=token)
        self.assertEqual((status, body["errcode"]), (502, "M_UNKNOWN"))
        self.assertEqual(self.ids.requests, [])
        status, state = await self.request("GET", self.room(room, "/state"), token=token)
        self.assertEqual([e for e in state if e["type"] == "m.room.third_party_invite"], [])
