"""Send-to-device messaging and device keys across servers, against a real Synapse.

A message from a Synapse user to our user's device arrives in our /sync
``to_device`` (inbound ``m.direct_to_device``), and one from our user to the Synapse
user's device arrives in Synapse's /sync (outbound, through the federation outbox);
each side's ``/keys/query`` and ``/keys/claim`` reach the other server's keys. These
are the steps an Olm session and a Megolm room key take between two servers.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from typing import Any, Callable

from twisted.trial import unittest

from tests.client_api.e2e_helpers import device_keys, sign
from tests.interop.synapse import Federation


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def otk_values(claimed: dict, user_id: str, device_id: str) -> list[str]:
    return [k["key"] for k in claimed["one_time_keys"][user_id][device_id].values()]


class ToDeviceInteropTest(unittest.TestCase):
    timeout = 600

    def setUp(self) -> None:
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours
        name = uuid.uuid4().hex[:8]
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": f"alice{name}", "password": "pw-alice", "device_id": "ALICEDEV",
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        self.alice, self.token = body["user_id"], body["access_token"]
        self.syn.register(f"bob{name}", "pw-bob")
        status, body = self.syn.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "password": "pw-bob", "device_id": "BOBDEV",
            "identifier": {"type": "m.id.user", "user": f"bob{name}"}})
        self.assertEqual(status, 200, body)
        self.bob, self.bob_token = body["user_id"], body["access_token"]

    def ours_call(self, method: str, path: str, body: Any = None) -> Any:
        status, resp = self.ours.request(method, path, body, token=self.token)
        self.assertEqual(status, 200, resp)
        return resp

    def syn_call(self, method: str, path: str, body: Any = None) -> Any:
        status, resp = self.syn.request(method, path, body, token=self.bob_token)
        self.assertEqual(status, 200, resp)
        return resp

    def share_a_room(self) -> str:
        """Bob (Synapse) joins alice's room: the servers then know of each other's
        users, as clients expect before they exchange keys."""
        room_id = self.ours_call("POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": "12"})["room_id"]
        status, body = self.syn.request(
            "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
            f"{q(self.fed.our_name)}", {}, token=self.bob_token)
        self.assertEqual(status, 200, f"{body}; our log: {self.ours.logs()[-3000:]}")
        return room_id

    def wait_for(self, get: Callable[[], Any], seconds: float, what: str) -> Any:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = get()
            if found:
                return found
            time.sleep(0.5)
        self.fail(f"timed out after {seconds:g}s waiting for {what}; "
                  f"our log: {self.ours.logs()[-3000:]}")

    def test_to_device_both_ways(self) -> None:
        """Synapse → our device and ours → Synapse's device, through each /sync."""
        self.share_a_room()
        since = self.ours_call("GET", "/_matrix/client/v3/sync?timeout=0")["next_batch"]
        self.syn_call("PUT", f"/_matrix/client/v3/sendToDevice/m.test.ping/{uuid.uuid4().hex}",
                      {"messages": {self.alice: {"ALICEDEV": {"from": "synapse"}}}})

        def ours_got() -> list:
            body = self.ours_call("GET", f"/_matrix/client/v3/sync?timeout=1000"
                                  f"&since={q(since)}")
            return [e for e in body.get("to_device", {}).get("events", [])
                    if e["type"] == "m.test.ping"]

        [event] = self.wait_for(ours_got, 60, "Synapse's to-device message here")
        self.assertEqual(event, {"sender": self.bob, "type": "m.test.ping",
                                 "content": {"from": "synapse"}})

        # Synapse answers identical /syncs from a cache: poll with its since tokens
        syn_since = [self.syn_call("GET", "/_matrix/client/v3/sync?timeout=0")["next_batch"]]
        self.ours_call("PUT", f"/_matrix/client/v3/sendToDevice/m.test.pong/{uuid.uuid4().hex}",
                       {"messages": {self.bob: {"*": {"from": "roomserver"}}}})

        def synapse_got() -> list:
            body = self.syn_call("GET", "/_matrix/client/v3/sync?timeout=1000"
                                 f"&since={q(syn_since[0])}")
            syn_since[0] = body["next_batch"]
            return [e for e in body.get("to_device", {}).get("events", [])
                    if e["type"] == "m.test.pong"]

        [event] = self.wait_for(synapse_got, 60, "our to-device message in Synapse")
        self.assertEqual((event["sender"], event["content"]),
                         (self.alice, {"from": "roomserver"}))

    def upload_keys(self, call: Callable[..., Any], user_id: str, device_id: str) -> dict:
        keys, signing = device_keys(user_id, device_id)
        call("POST", "/_matrix/client/v3/keys/upload", {
            "device_keys": keys,
            "one_time_keys": {f"signed_curve25519:{device_id}1": sign(
                {"key": "otk1"}, user_id, signing)}})
        return keys

    def test_keys_query_and_claim_across_servers(self) -> None:
        """Each side's /keys/query returns the other server's device keys and
        /keys/claim a one-time key of it (what an Olm session starts from)."""
        self.share_a_room()
        alice_keys = self.upload_keys(self.ours_call, self.alice, "ALICEDEV")
        bob_keys = self.upload_keys(self.syn_call, self.bob, "BOBDEV")

        def ours_sees_bob() -> dict:
            body = self.ours_call("POST", "/_matrix/client/v3/keys/query",
                                  {"device_keys": {self.bob: []}})
            return body.get("device_keys", {}).get(self.bob, {}).get("BOBDEV")

        seen = self.wait_for(ours_sees_bob, 60, "Bob's device keys through our server")
        self.assertEqual((seen["keys"], seen["signatures"]),
                         (bob_keys["keys"], bob_keys["signatures"]))

        def synapse_sees_alice() -> dict:
            body = self.syn_call("POST", "/_matrix/client/v3/keys/query",
                                 {"device_keys": {self.alice: []}})
            return body.get("device_keys", {}).get(self.alice, {}).get("ALICEDEV")

        seen = self.wait_for(synapse_sees_alice, 60, "Alice's device keys through Synapse")
        self.assertEqual((seen["keys"], seen["signatures"]),
                         (alice_keys["keys"], alice_keys["signatures"]))

        claimed = self.ours_call("POST", "/_matrix/client/v3/keys/claim", {
            "one_time_keys": {self.bob: {"BOBDEV": "signed_curve25519"}}})
        self.assertEqual(otk_values(claimed, self.bob, "BOBDEV"), ["otk1"], claimed)
        claimed = self.syn_call("POST", "/_matrix/client/v3/keys/claim", {
            "one_time_keys": {self.alice: {"ALICEDEV": "signed_curve25519"}}})
        self.assertEqual(otk_values(claimed, self.alice, "ALICEDEV"), ["otk1"], claimed)
