"""Third-party invites across servers, against a real Synapse, with a fake identity
server (tests/fakes/identity_server.py, threaded: these tests block the reactor).

Our user invites an email address into our room: our server looks it up and stores
the invite on the identity server and sends ``m.room.third_party_invite``. A Synapse
user then binds the address: the identity server calls Synapse's ``/3pid/onbind``;
Synapse is not in the room, so it asks us (``PUT /exchange_third_party_invite``); we
write the signed invite through the room's actor and have Synapse co-sign it
(``/v2/invite``). The Synapse user sees the invite and joins. Between two instances
of ours the roles of Synapse are played by B, whose outbound exchange is then proven.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
import uuid

from twisted.trial import unittest

from tests.fakes.identity_server import FakeIdentityServer
from tests.interop.common import (
    ServerSteps, q, register, register_on_synapse)
from tests.interop.synapse import IDENTITY_PORT, Federation

V3 = "/_matrix/client/v3"


class InviteSteps(ServerSteps):
    """Invite an address into a room of ``host``; then, once the invitee's server was
    told of the binding, check the invite and have the invitee join."""

    def setUp(self) -> None:
        self.ids = FakeIdentityServer(port=IDENTITY_PORT, threaded=True)
        self.addCleanup(self.ids.stop)

    def invite_address(self, host, token: str, version: str) -> tuple[str, str]:
        """A new room of ``host`` with an address invited: ``(room_id, address)``."""
        room = self.call(host, "POST", f"{V3}/createRoom",
                         {"preset": "private_chat", "room_version": version},
                         token)["room_id"]
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        self.call(host, "POST", f"{V3}/rooms/{q(room)}/invite", {
            "id_server": self.ids.id_server, "id_access_token": "ist", "medium": "email",
            "address": email}, token)
        return room, email

    def member(self, host, token: str, room: str, user_id: str) -> dict:
        return self.call(host, "GET", f"{V3}/rooms/{q(room)}/state/m.room.member/"
                         f"{q(user_id)}", None, token)

    def accepted(self, host, host_name: str, token: str, room: str, invitee,
                 invitee_id: str, invitee_token: str) -> None:
        """The invite reached the invitee's /sync; the invitee joins; the host sees it."""
        member = self.member(host, token, room, invitee_id)
        self.assertEqual(member["membership"], "invite")
        self.assertEqual(member["third_party_invite"]["signed"]["mxid"], invitee_id)
        self.wait(lambda: room in (lambda r: r[1].get("rooms", {}).get("invite", {})
                                   if r[0] == 200 else {})(invitee.request(
                                       "GET", f"{V3}/sync?timeout=0", token=invitee_token)),
                  "the invite on the invitee's server")
        self.call(invitee, "POST", f"{V3}/join/{q(room)}?server_name={q(host_name)}", {},
                  invitee_token)
        self.wait(lambda: self.member(host, token, room, invitee_id).get("membership")
                  == "join", "the invitee's join on the room's server")


class ThirdPartyInvitesTest(InviteSteps, unittest.TestCase):
    timeout = 300

    def setUp(self) -> None:
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours
        super().setUp()

    def synapse_onbind(self, body: dict) -> int:
        """The identity server's call to Synapse's federation listener (TLS); POST,
        as Sydent sends it and Synapse serves it (the spec says PUT)."""
        context = ssl.create_default_context(cafile=self.fed.ca_path)
        request = urllib.request.Request(
            f"https://localhost:{self.syn.fed_port}/_matrix/federation/v1/3pid/onbind",
            data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60, context=context) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def test_synapse_user_binds_address_invited_to_our_room(self):
        """Invite by email here, bind on Synapse's side: Synapse exchanges the invite
        with us, its user is invited (sent by our user, third_party_invite kept) and
        joins."""
        _, token = register(self.ours, "tp")
        room, email = self.invite_address(self.ours, token, "10")
        [stored] = self.ids.stored[email]
        bob, bob_token = register_on_synapse(self.syn, "tp")
        self.assertEqual(self.synapse_onbind(self.ids.onbind_body(email, bob)), 200)
        self.assertEqual(self.member(self.ours, token, room, bob)["third_party_invite"]
                         ["signed"]["token"], stored["token"])
        self.accepted(self.ours, self.fed.our_name, token, room, self.syn, bob, bob_token)


class ThirdPartyInvitesTwoInstancesTest(InviteSteps, unittest.TestCase):
    """The same between two instances of ours (tests/interop/pair.py): B is not in
    A's room, so B forwards the bound invite to A (our outbound
    ``exchange_third_party_invite``), A writes it and has B co-sign it."""

    timeout = 300

    def setUp(self) -> None:
        from tests.interop.pair import OurPair

        pair = OurPair.get()
        self.a, self.b = pair.a, pair.b
        super().setUp()

    def test_b_user_binds_address_invited_to_a_room(self):
        """Invite by email on A, bind to a user of B, B's onbind exchanges with A:
        B's user is invited with the signed block and joins."""
        _, token = register(self.a, "tpa")
        room, email = self.invite_address(self.a, token, "12")
        bob, bob_token = register(self.b, "tpb")
        status, body = self.b.request("PUT", "/_matrix/federation/v1/3pid/onbind",
                                      self.ids.onbind_body(email, bob))
        self.assertEqual((status, body), (200, {}))
        self.accepted(self.a, self.a.server_name, token, room, self.b, bob, bob_token)
