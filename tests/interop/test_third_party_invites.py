"""Third-party invites across servers, against a real Synapse, with a fake identity
server (tests/fakes/identity_server.py, threaded: these tests block the reactor).

Our user invites an email address into our room: our server looks it up and stores
the invite on the identity server and sends ``m.room.third_party_invite``. A Synapse
user then binds the address: the identity server calls Synapse's ``/3pid/onbind``;
Synapse is not in the room, so it asks us (``PUT /exchange_third_party_invite``); we
write the signed invite through the room's actor and have Synapse co-sign it
(``/v2/invite``). The Synapse user sees the invite and joins.
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


class ThirdPartyInvitesTest(ServerSteps, unittest.TestCase):
    timeout = 300

    def setUp(self) -> None:
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours
        self.ids = FakeIdentityServer(port=IDENTITY_PORT, threaded=True)
        self.addCleanup(self.ids.stop)

    def our_user(self) -> tuple[str, str]:
        return register(self.ours, "tp")

    def synapse_user(self) -> tuple[str, str]:
        return register_on_synapse(self.syn, "tp")

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

    def synapse_invited(self, token: str, room_id: str) -> bool:
        status, body = self.syn.request("GET", f"{V3}/sync?timeout=0", token=token)
        return status == 200 and room_id in body.get("rooms", {}).get("invite", {})

    def test_synapse_user_binds_address_invited_to_our_room(self):
        """Invite by email here, bind on Synapse's side: Synapse exchanges the invite
        with us, its user is invited (sent by our user, third_party_invite kept) and
        joins."""
        _, token = self.our_user()
        room = self.call(self.ours, "POST", f"{V3}/createRoom",
                         {"preset": "private_chat", "room_version": "10"}, token)["room_id"]
        email = f"{uuid.uuid4().hex[:8]}@example.com"
        self.call(self.ours, "POST", f"{V3}/rooms/{q(room)}/invite", {
            "id_server": self.ids.id_server, "id_access_token": "ist", "medium": "email",
            "address": email}, token)
        [stored] = self.ids.stored[email]
        bob, bob_token = self.synapse_user()
        self.assertEqual(self.synapse_onbind(self.ids.onbind_body(email, bob)), 200)
        member = self.call(self.ours, "GET",
                           f"{V3}/rooms/{q(room)}/state/m.room.member/{q(bob)}", None, token)
        self.assertEqual(member["membership"], "invite")
        self.assertEqual(member["third_party_invite"]["signed"]["token"], stored["token"])
        self.wait(lambda: self.synapse_invited(bob_token, room), "the invite on Synapse")
        self.call(self.syn, "POST", f"{V3}/join/{q(room)}?server_name="
                  f"{q(self.fed.our_name)}", {}, bob_token)
        self.wait(lambda: self.call(self.ours, "GET", f"{V3}/rooms/{q(room)}/state/"
                                    f"m.room.member/{q(bob)}", None, token
                                    ).get("membership") == "join", "Bob's join here")
