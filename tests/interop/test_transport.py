"""Federation transport and trust against a real Synapse on loopback (TLS both ways).

Shows that our client's discovery, TLS, signing and key checks work with Synapse, that
Synapse accepts our signatures (fetching our keys from our TLS listener), and that we
accept Synapse's (fetching its keys) and refuse unsigned or badly signed requests.
"""

from __future__ import annotations

import urllib.parse

from twisted.internet import reactor
from twisted.trial import unittest

from federation import xmatrix
from federation.client import RemoteHttpError, build_federation_client
from federation.keys import Keyring, keys_from_response
from homeserver.crypto.signing import generate_signing_key, read_signing_keys
from homeserver.http.outbound import AddressPolicy
from tests.fakes.server_keys import MemoryServerKeys
from tests.interop.synapse import LOOPBACK, Federation


class TransportTest(unittest.TestCase):
    timeout = 300

    def setUp(self):
        self.fed = Federation.get()
        self.syn = self.fed.synapse
        self.our_keys = read_signing_keys(self.fed.signing_keys_path())
        self.client = build_federation_client(
            reactor=reactor, server_name=self.fed.our_name, signing_keys=self.our_keys,
            verify_certificates=True, custom_ca_paths=[self.fed.ca_path],
            address_policy=AddressPolicy(whitelist=LOOPBACK))
        self.addCleanup(self.client.close)

    async def test_version_and_keys_of_synapse(self):
        """Our client reaches Synapse's /version and its keys verify (self-signed)."""
        version = await self.client.get_json(self.syn.server_name,
                                             "/_matrix/federation/v1/version")
        self.assertEqual(version["server"]["name"], "Synapse")
        body = await self.client.get_json(self.syn.server_name, "/_matrix/key/v2/server",
                                          sign=False)
        keys = keys_from_response(body, self.syn.server_name)
        self.assertTrue(any(k.expired_ts is None for k in keys))
        keyring = Keyring(server_name=self.fed.our_name, own_keys=self.our_keys,
                          store=MemoryServerKeys(), client=self.client,
                          now_ms=lambda: int(reactor.seconds() * 1000))
        [synapse_key] = read_signing_keys(self.syn.signing_key_path())
        got = await keyring.get_verify_key(self.syn.server_name, synapse_key.key_id)
        self.assertEqual(got, synapse_key.verify_key_bytes)

    async def test_synapse_accepts_our_signature(self):
        """A signed profile query to Synapse succeeds (it fetched our keys over TLS)."""
        self.syn.register("alice", "alice-password")
        user_id = f"@alice:{self.syn.server_name}"
        profile = await self.client.get_json(
            self.syn.server_name, "/_matrix/federation/v1/query/profile",
            {"user_id": user_id, "field": "displayname"})
        self.assertEqual(profile, {"displayname": "alice"})

    async def test_synapse_rejects_a_wrong_key(self):
        """Signed with a key we never published, the same query is refused with 401."""
        impostor = build_federation_client(
            reactor=reactor, server_name=self.fed.our_name,
            signing_keys=[generate_signing_key("a_fake")], verify_certificates=True,
            custom_ca_paths=[self.fed.ca_path], address_policy=AddressPolicy(whitelist=LOOPBACK))
        self.addCleanup(impostor.close)
        with self.assertRaises(RemoteHttpError) as caught:
            await impostor.get_json(self.syn.server_name, "/_matrix/federation/v1/query/profile",
                                    {"user_id": f"@alice:{self.syn.server_name}"})
        self.assertEqual(caught.exception.status, 401)

    def test_synapse_queries_our_profile(self):
        """A Synapse user reads our user's profile: Synapse signed, we verified."""
        ours = self.fed.ours
        status, body = ours.request("POST", "/_matrix/client/v3/register", {
            "username": "bob", "password": "bob-password",
            "auth": {"type": "m.login.dummy"}})
        if status == 400 and body.get("errcode") == "M_USER_IN_USE":
            status, body = ours.request("POST", "/_matrix/client/v3/login", {
                "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"},
                "password": "bob-password"})
        self.assertEqual(status, 200, body)
        bob = f"@bob:{self.fed.our_name}"
        status, _ = ours.request("PUT", f"/_matrix/client/v3/profile/{bob}/displayname",
                                 {"displayname": "Bob Builder"}, token=body["access_token"])
        self.assertEqual(status, 200)
        self.syn.register("carol", "carol-password")
        token = self.syn.login("carol", "carol-password")
        status, profile = self.syn.request(
            "GET", "/_matrix/client/v3/profile/" + urllib.parse.quote(bob), token=token)
        self.assertEqual(status, 200, profile)
        self.assertEqual(profile.get("displayname"), "Bob Builder")

    def _signed_as_synapse(self, method: str, path: str, key=None) -> dict[str, str]:
        [synapse_key] = read_signing_keys(self.syn.signing_key_path())
        [header] = xmatrix.sign_request([key or synapse_key], method=method, uri=path,
                                        origin=self.syn.server_name,
                                        destination=self.fed.our_name)
        return {"Authorization": header}

    def test_inbound_auth_failures(self):
        """Unsigned → 401; a signature by a key not Synapse's → 401; signed → 200."""
        ours = self.fed.ours
        path = ("/_matrix/federation/v1/query/profile?user_id="
                + urllib.parse.quote(f"@nobody:{self.fed.our_name}"))
        status, body = ours.request("GET", path)
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))
        [synapse_key] = read_signing_keys(self.syn.signing_key_path())
        forged = generate_signing_key(synapse_key.version)  # same key ID, other key
        status, body = ours.request("GET", path,
                                    headers=self._signed_as_synapse("GET", path, forged))
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))
        status, body = ours.request("GET", path, headers=self._signed_as_synapse("GET", path))
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    def test_unknown_federation_path(self):
        """An unknown federation path is 401 unsigned and 404 M_UNRECOGNIZED signed."""
        ours = self.fed.ours
        path = "/_matrix/federation/v1/no_such_thing"
        status, body = ours.request("GET", path)
        self.assertEqual((status, body["errcode"]), (401, "M_UNAUTHORIZED"))
        status, body = ours.request("GET", path, headers=self._signed_as_synapse("GET", path))
        self.assertEqual((status, body["errcode"]), (404, "M_UNRECOGNIZED"))
