"""Federation queries against a real Synapse: profiles, aliases, keys, room
directories and OpenID, each asked in both directions where both sides can ask.

Synapse's clients ask us through Synapse (its client API → its federation client →
our federation listener), our clients ask Synapse through us. There is no Synapse
client API that checks an OpenID token of another server, so our ``/openid/userinfo``
is asked the way an integration manager would: plainly over our federation listener.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from twisted.internet import reactor
from twisted.trial import unittest

from federation.client import build_federation_client
from federation.device_lists import parse_user_devices
from homeserver.crypto.signing import read_signing_keys
from homeserver.http.outbound import AddressPolicy
from tests.client_api.e2e_helpers import cross_signing_key, device_keys
from tests.interop.common import q, wait_for
from tests.interop.synapse import LOOPBACK, Federation


class QueriesTest(unittest.TestCase):
    timeout = 300

    def setUp(self):
        self.fed = Federation.get()
        self.syn = self.fed.synapse
        self.ours = self.fed.ours

    # -- users on both sides ------------------------------------------------------------
    def our_user(self, name: str) -> tuple[str, str, str]:
        """(user_id, token, device_id) of a fresh user of ours."""
        name = f"{name}{uuid.uuid4().hex[:6]}"
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": name, "password": "pw-" + name, "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        return body["user_id"], body["access_token"], body["device_id"]

    def synapse_user(self, name: str) -> tuple[str, str, str]:
        """(user_id, token, device_id) of a fresh Synapse user."""
        name = f"{name}{uuid.uuid4().hex[:6]}"
        self.syn.register(name, "pw-" + name)
        status, body = self.syn.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name},
            "password": "pw-" + name})
        self.assertEqual(status, 200, body)
        return body["user_id"], body["access_token"], body["device_id"]

    # -- profiles -------------------------------------------------------------------------
    def test_we_ask_a_synapse_profile(self):
        """Our client reads a Synapse user's profile (and one field) through us."""
        syn_id, syn_token, _ = self.synapse_user("dave")
        status, _ = self.syn.request("PUT", f"/_matrix/client/v3/profile/{q(syn_id)}/displayname",
                                     {"displayname": "Dave Remote"}, token=syn_token)
        self.assertEqual(status, 200)
        _, token, _ = self.our_user("erin")
        status, body = self.ours.request("GET", f"/_matrix/client/v3/profile/{q(syn_id)}",
                                         token=token)
        self.assertEqual((status, body.get("displayname")), (200, "Dave Remote"), body)
        status, body = self.ours.request(
            "GET", f"/_matrix/client/v3/profile/{q(syn_id)}/displayname")
        self.assertEqual((status, body), (200, {"displayname": "Dave Remote"}))
        missing = f"@nobody{uuid.uuid4().hex[:6]}:{self.syn.server_name}"
        status, body = self.ours.request("GET", f"/_matrix/client/v3/profile/{q(missing)}")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    # -- aliases --------------------------------------------------------------------------
    def test_synapse_resolves_our_alias(self):
        """A Synapse client resolves ``#x:<us>``: Synapse asked our /query/directory."""
        _, token, _ = self.our_user("frank")
        local = f"x{uuid.uuid4().hex[:6]}"
        status, body = self.ours.request("POST", "/_matrix/client/v3/createRoom",
                                         {"room_alias_name": local}, token=token)
        self.assertEqual(status, 200, body)
        room_id = body["room_id"]
        _, syn_token, _ = self.synapse_user("gina")
        alias = f"#{local}:{self.fed.our_name}"
        status, body = self.syn.request("GET", f"/_matrix/client/v3/directory/room/{q(alias)}",
                                        token=syn_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["room_id"], room_id)
        self.assertIn(self.fed.our_name, body["servers"])
        status, body = self.syn.request(
            "GET", f"/_matrix/client/v3/directory/room/{q('#nope:' + self.fed.our_name)}",
            token=syn_token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    def test_we_resolve_a_synapse_alias(self):
        """Our client resolves ``#y:<synapse>``: we asked Synapse's /query/directory."""
        _, syn_token, _ = self.synapse_user("hank")
        local = f"y{uuid.uuid4().hex[:6]}"
        status, body = self.syn.request("POST", "/_matrix/client/v3/createRoom",
                                        {"room_alias_name": local}, token=syn_token)
        self.assertEqual(status, 200, body)
        room_id = body["room_id"]
        _, token, _ = self.our_user("ivy")
        alias = f"#{local}:{self.syn.server_name}"
        status, body = self.ours.request("GET", f"/_matrix/client/v3/directory/room/{q(alias)}",
                                         token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["room_id"], room_id)
        self.assertIn(self.syn.server_name, body["servers"])
        status, body = self.ours.request(
            "GET", f"/_matrix/client/v3/directory/room/{q('#nope:' + self.syn.server_name)}",
            token=token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    # -- keys -----------------------------------------------------------------------------
    def test_we_query_and_claim_synapse_keys(self):
        """Keys a Synapse user uploaded come back from our /keys/query; a one-time key
        of theirs from our /keys/claim."""
        syn_id, syn_token, syn_device = self.synapse_user("jack")
        keys, _ = device_keys(syn_id, syn_device)
        status, body = self.syn.request("POST", "/_matrix/client/v3/keys/upload", {
            "device_keys": keys,
            "one_time_keys": {"signed_curve25519:AAAA": {"key": "otk", "signatures": {}}},
        }, token=syn_token)
        self.assertEqual(status, 200, body)
        _, token, _ = self.our_user("kate")
        status, body = self.ours.request("POST", "/_matrix/client/v3/keys/query", {
            "device_keys": {syn_id: []}, "timeout": 10000}, token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["failures"], {})
        got = body["device_keys"][syn_id][syn_device]
        self.assertEqual((got["keys"], got["signatures"][syn_id]),
                         (keys["keys"], keys["signatures"][syn_id]))
        status, body = self.ours.request("POST", "/_matrix/client/v3/keys/claim", {
            "one_time_keys": {syn_id: {syn_device: "signed_curve25519"}}}, token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(list(body["one_time_keys"][syn_id][syn_device]),
                         ["signed_curve25519:AAAA"])

    def test_synapse_queries_and_claims_our_keys(self):
        """A Synapse client's /keys/query returns our user's keys and /keys/claim one
        of our user's one-time keys (Synapse asked our /user/keys/*)."""
        our_id, token, device = self.our_user("liam")
        keys, _ = device_keys(our_id, device)
        status, body = self.ours.request("POST", "/_matrix/client/v3/keys/upload", {
            "device_keys": keys,
            "one_time_keys": {"signed_curve25519:BBBB": {"key": "otk", "signatures": {}}},
        }, token=token)
        self.assertEqual(status, 200, body)
        _, syn_token, _ = self.synapse_user("mona")
        status, body = self.syn.request("POST", "/_matrix/client/v3/keys/query",
                                        {"device_keys": {our_id: []}}, token=syn_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body.get("failures"), {}, body)
        got = body["device_keys"][our_id][device]
        self.assertEqual(got["keys"], keys["keys"])
        status, body = self.syn.request("POST", "/_matrix/client/v3/keys/claim", {
            "one_time_keys": {our_id: {device: "signed_curve25519"}}}, token=syn_token)
        self.assertEqual(status, 200, body)
        self.assertEqual(list(body["one_time_keys"][our_id][device]),
                         ["signed_curve25519:BBBB"])

    async def test_synapse_device_list_parses(self):
        """Synapse's /user/devices answer (what a resync reads) becomes a cache entry
        with the device's keys and the master key."""
        syn_id, syn_token, syn_device = self.synapse_user("nora")
        keys, _ = device_keys(syn_id, syn_device)
        master, _ = cross_signing_key(syn_id, "master")
        status, body = self.syn.request("POST", "/_matrix/client/v3/keys/upload",
                                        {"device_keys": keys}, token=syn_token)
        self.assertEqual(status, 200, body)
        status, body = self.syn.request("POST",
                                        "/_matrix/client/v3/keys/device_signing/upload",
                                        {"master_key": master}, token=syn_token)
        self.assertEqual(status, 200, body)
        client = build_federation_client(
            reactor=reactor, server_name=self.fed.our_name,
            signing_keys=read_signing_keys(self.fed.signing_keys_path()),
            verify_certificates=True, custom_ca_paths=[self.fed.ca_path],
            address_policy=AddressPolicy(whitelist=LOOPBACK))
        self.addCleanup(client.close)
        answer = await client.get_json(self.syn.server_name,
                                       "/_matrix/federation/v1/user/devices/" + q(syn_id))
        entry = parse_user_devices(answer, syn_id)
        self.assertEqual(entry.devices[syn_device]["keys"]["keys"], keys["keys"])
        self.assertEqual(entry.master_key["keys"], master["keys"])
        self.assertIsInstance(entry.stream_id, int)

    # -- room directories -----------------------------------------------------------------
    def test_public_rooms_both_ways(self):
        """Synapse lists our published rooms and we list Synapse's."""
        _, token, _ = self.our_user("nina")
        name = f"ours-{uuid.uuid4().hex[:6]}"
        status, body = self.ours.request("POST", "/_matrix/client/v3/createRoom", {
            "visibility": "public", "preset": "public_chat", "name": name}, token=token)
        self.assertEqual(status, 200, body)
        our_room = body["room_id"]
        _, syn_token, _ = self.synapse_user("omar")
        syn_name = f"theirs-{uuid.uuid4().hex[:6]}"
        status, body = self.syn.request("POST", "/_matrix/client/v3/createRoom", {
            "visibility": "public", "preset": "public_chat", "name": syn_name},
            token=syn_token)
        self.assertEqual(status, 200, body)
        syn_room = body["room_id"]

        def listed(server: Any, request: Callable, room_id: str, search: str):
            def check():
                # a search term per try: Synapse caches a remote answer per request
                status, body = request("POST", "/_matrix/client/v3/publicRooms?server="
                                       + q(server), {"filter": {
                                           "generic_search_term": search}, "limit": 50})
                self.assertEqual(status, 200, body)
                return [r for r in body["chunk"] if r["room_id"] == room_id]
            return check

        [theirs_seen_by_us] = wait_for(listed(
            self.syn.server_name, lambda *a: self.ours.request(*a, token=token),
            syn_room, syn_name), "our client listing Synapse's room")
        self.assertEqual(theirs_seen_by_us["name"], syn_name)
        [ours_seen_by_synapse] = wait_for(listed(
            self.fed.our_name, lambda *a: self.syn.request(*a, token=syn_token),
            our_room, name), "Synapse listing our room")
        self.assertEqual(ours_seen_by_synapse["name"], name)

    # -- OpenID ---------------------------------------------------------------------------
    def test_openid_userinfo(self):
        """Our request_token's token names our user at /openid/userinfo on our
        federation port; another token does not."""
        our_id, token, _ = self.our_user("pia")
        status, body = self.ours.request(
            "POST", f"/_matrix/client/v3/user/{q(our_id)}/openid/request_token", {},
            token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["matrix_server_name"], self.fed.our_name)
        path = "/_matrix/federation/v1/openid/userinfo?access_token="
        status, info = self.ours.request("GET", path + q(body["access_token"]))
        self.assertEqual((status, info), (200, {"sub": our_id}))
        status, info = self.ours.request("GET", path + "not-a-token")
        self.assertEqual((status, info["errcode"]), (401, "M_UNKNOWN_TOKEN"))
