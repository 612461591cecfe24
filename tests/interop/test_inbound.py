"""Inbound federation against a real Synapse: what Synapse sends us arrives.

A Synapse user joins a room of ours (joins are lane fedjoin's), then Synapse's
``/send`` transactions bring us their messages, typing and receipts; Synapse
backfills our earlier history from ``/backfill``; a PDU signed with Synapse's real key
but with a tampered content hash is stored redacted, and one signed by a key that is
not Synapse's is refused. Room versions 10 and 12.
"""

from __future__ import annotations

import os
import time

from twisted.trial import unittest

from federation import xmatrix
from homeserver.crypto.signing import generate_signing_key, read_signing_keys
from homeserver.events.builder import finalize_event
from homeserver.events.room_versions import get_room_version
from tests.interop.common import q
from tests.interop.synapse import Federation

try:  # joins across servers are lane fedjoin's; without them nobody can join our rooms
    import federation.membership_server  # noqa: F401
except ImportError:
    _NO_JOINS = "needs remote joins (branch fedjoin, federation/membership_server.py)"
else:
    _NO_JOINS = None


class InboundTest(unittest.TestCase):
    timeout = 300
    skip = _NO_JOINS

    def setUp(self):
        self.fed = Federation.get()
        self.syn = self.fed.synapse
        self.ours = self.fed.ours
        suffix = os.urandom(4).hex()
        self.alice = f"alice{suffix}"
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": self.alice, "password": "pw-alice-123",
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        self.token = body["access_token"]
        self.carol = f"carol{suffix}"
        self.syn.register(self.carol, "pw-carol-123")
        self.carol_id = f"@{self.carol}:{self.syn.server_name}"
        self.carol_token = self.syn.login(self.carol, "pw-carol-123")

    # -- helpers ------------------------------------------------------------------------
    def ours_call(self, method, path, body=None):
        status, resp = self.ours.request(method, path, body, token=self.token)
        self.assertEqual(status, 200, (path, resp))
        return resp

    def syn_call(self, method, path, body=None):
        status, resp = self.syn.request(method, path, body, token=self.carol_token)
        self.assertEqual(status, 200, (path, resp))
        return resp

    def room_with_carol(self, version):
        room_id = self.ours_call("POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": version})["room_id"]
        self.before = self.ours_call(
            "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/b1",
            {"msgtype": "m.text", "body": "said before carol came"})["event_id"]
        self.syn_call("POST", f"/_matrix/client/v3/join/{q(room_id)}"
                      f"?server_name={q(self.fed.our_name)}", {})
        self.wait_for(room_id, lambda e: e["type"] == "m.room.member"
                      and e.get("state_key") == self.carol_id)
        return room_id

    def wait_for(self, room_id, predicate, section="timeline", deadline=60):
        """Poll alice's /sync until an event of ``room_id`` matches ``predicate``."""
        since, end = None, time.monotonic() + deadline
        seen = []
        while time.monotonic() < end:
            path = "/_matrix/client/v3/sync?timeout=5000" + (f"&since={q(since)}" if since
                                                              else "")
            body = self.ours_call("GET", path)
            since = body["next_batch"]
            room = body.get("rooms", {}).get("join", {}).get(room_id, {})
            events = room.get(section, {}).get("events", [])
            seen += events
            for event in events:
                if predicate(event):
                    return event
        self.fail(f"nothing matched in {section} of {room_id}; saw {seen}")

    def as_synapse(self, method, path, body=None, key=None):
        [synapse_key] = read_signing_keys(self.syn.signing_key_path())
        [header] = xmatrix.sign_request([key or synapse_key], method=method, uri=path,
                                        origin=self.syn.server_name,
                                        destination=self.fed.our_name, content=body)
        return self.ours.request(method, path, body, headers={"Authorization": header})

    def carol_event(self, room_id, version, body, key):
        """A message from carol on top of our latest event, signed as Synapse."""
        state = self.ours_call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state")
        by_key = {(e["type"], e["state_key"]): e["event_id"] for e in state}
        wanted = [("m.room.power_levels", ""), ("m.room.member", self.carol_id)]
        if not get_room_version(version).room_id_from_create_event:
            wanted.append(("m.room.create", ""))
        messages = self.ours_call(
            "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&limit=1")
        [last] = messages["chunk"]
        status, got = self.as_synapse("GET", f"/_matrix/federation/v1/event/"
                                             f"{q(last['event_id'])}")
        self.assertEqual(status, 200, got)
        partial = {"type": "m.room.message", "sender": self.carol_id, "room_id": room_id,
                   "content": {"msgtype": "m.text", "body": body},
                   "prev_events": [last["event_id"]],
                   "auth_events": sorted(by_key[k] for k in wanted),
                   "depth": got["pdus"][0]["depth"] + 1}
        return finalize_event(get_room_version(version), partial, self.syn.server_name, key,
                              int(time.time() * 1000))

    # -- tests --------------------------------------------------------------------------
    def check_messages_typing_receipts(self, version):
        room_id = self.room_with_carol(version)
        sent = self.syn_call("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/"
                                    f"m.room.message/t1",
                             {"msgtype": "m.text", "body": "hello from synapse"})["event_id"]
        got = self.wait_for(room_id, lambda e: e["event_id"] == sent)
        self.assertEqual(got["content"]["body"], "hello from synapse")
        self.syn_call("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/typing/"
                             f"{q(self.carol_id)}", {"typing": True, "timeout": 30000})
        self.wait_for(room_id, lambda e: e["type"] == "m.typing"
                      and self.carol_id in e["content"].get("user_ids", []), "ephemeral")
        self.syn_call("POST", f"/_matrix/client/v3/rooms/{q(room_id)}/receipt/m.read/"
                              f"{q(sent)}", {})
        self.wait_for(room_id, lambda e: e["type"] == "m.receipt"
                      and self.carol_id in e["content"].get(sent, {}).get("m.read", {}),
                      "ephemeral")

    def test_messages_typing_receipts_v10(self):
        """Room v10: Synapse's message, typing and receipt reach our user's /sync."""
        self.check_messages_typing_receipts("10")

    def test_messages_typing_receipts_v12(self):
        """Room v12: the same."""
        self.check_messages_typing_receipts("12")

    def test_synapse_backfills_our_history(self):
        """Carol paginating back sees what alice said before she joined: Synapse asked
        our /backfill for it."""
        room_id = self.room_with_carol("12")
        end = time.monotonic() + 60
        bodies = []
        while time.monotonic() < end:
            chunk = self.syn_call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages"
                                         "?dir=b&limit=50")["chunk"]
            bodies = [e["content"].get("body") for e in chunk]
            if "said before carol came" in bodies:
                self.assertIn(f"GET /_matrix/federation/v1/backfill/{q(room_id)}",
                              self.ours.logs())
                return
            time.sleep(1)
        self.fail(f"no earlier history on Synapse: {bodies}")

    def test_bad_hash_redacted_bad_signature_refused(self):
        """A PDU signed with Synapse's key whose content was changed afterwards is
        stored redacted; one signed by a key that is not Synapse's is refused."""
        room_id = self.room_with_carol("12")
        [synapse_key] = read_signing_keys(self.syn.signing_key_path())
        pdu = self.carol_event(room_id, "12", "original", synapse_key)
        tampered = dict(pdu.get_dict(), content={"msgtype": "m.text", "body": "tampered"})
        status, body = self.as_synapse("PUT", "/_matrix/federation/v1/send/bad-hash-"
                                       + os.urandom(4).hex(),
                                       {"origin": self.syn.server_name,
                                        "origin_server_ts": 1, "pdus": [tampered]})
        self.assertEqual((status, body), (200, {"pdus": {pdu.event_id: {}}}))
        got = self.wait_for(room_id, lambda e: e["event_id"] == pdu.event_id)
        self.assertEqual(got["content"], {})

        forged_key = generate_signing_key(synapse_key.version)  # same key ID
        forged = self.carol_event(room_id, "12", "forged", forged_key)
        status, body = self.as_synapse("PUT", "/_matrix/federation/v1/send/forged-"
                                       + os.urandom(4).hex(),
                                       {"origin": self.syn.server_name,
                                        "origin_server_ts": 1,
                                        "pdus": [dict(forged.get_dict())]})
        self.assertEqual(status, 200, body)
        self.assertIn("signature", body["pdus"][forged.event_id]["error"])
        status, _ = self.as_synapse("GET",
                                    f"/_matrix/federation/v1/event/{q(forged.event_id)}")
        self.assertEqual(status, 404)
