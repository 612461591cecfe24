"""A partition between Synapse and us, against a real Synapse (room versions 10, 12).

The link is cut by stopping our server: while it is down Synapse's admin changes the
topic and the power levels (Synapse queues them for us and backs off). Our server
comes back and, before Synapse's catch-up reaches it, our user changes the power
levels and the topic on top of what ours last knew: two forks of the room's DAG.
Once each side has the other's events, state resolution must give both servers the
same current state, and our next event must merge the forks (one forward extremity).
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.trial import unittest

from federation import xmatrix
from homeserver.crypto.signing import read_signing_keys
from tests.interop.common import ServerSteps, q
from tests.interop.synapse import Federation

CONVERGED = ("m.room.topic", "m.room.power_levels")


class PartitionTest(ServerSteps, unittest.TestCase):
    timeout = 900

    def setUp(self) -> None:
        self.fed = Federation.get()
        self.syn, self.ours = self.fed.synapse, self.fed.ours
        name = uuid.uuid4().hex[:8]
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": f"p{name}", "password": "pw-" + name,
            "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        self.user, self.token = body["user_id"], body["access_token"]
        self.syn.register(f"q{name}", "pw-" + name)
        self.syn_token = self.syn.login(f"q{name}", "pw-" + name)

    def current(self, server, room_id: str, token: str) -> dict[str, Any]:
        """Topic and power levels content, as ``server``'s client API has them now."""
        status, state = server.request("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/state",
                                       token=token)
        if status != 200:
            return {}
        return {e["type"]: e["content"] for e in state
                if e["type"] in CONVERGED and e.get("state_key") == ""}

    def pdu(self, room_id: str, event_id: str) -> dict[str, Any]:
        """Our copy of an event in federation form (for its prev_events), asked as
        Synapse would ask: ``/backfill`` from it, limit 1, names the room (``/event``
        does not; see test_event_of_synapse_room)."""
        path = f"/_matrix/federation/v1/backfill/{q(room_id)}?v={q(event_id)}&limit=1"
        status, body = self.as_synapse("GET", path)
        self.assertEqual(status, 200, body)
        [pdu] = body["pdus"]  # the event named by v itself
        return pdu

    def as_synapse(self, method: str, path: str) -> tuple[int, Any]:
        [key] = read_signing_keys(self.syn.signing_key_path())
        [header] = xmatrix.sign_request([key], method=method, uri=path,
                                        origin=self.syn.server_name,
                                        destination=self.fed.our_name, content=None)
        return self.ours.request(method, path, headers={"Authorization": header})

    def put_state(self, server, room_id: str, event_type: str, content: dict,
                  token: str) -> str:
        return self.call(server, "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/state/"
                         f"{event_type}/", content, token)["event_id"]

    def say(self, room_id: str, text: str) -> str:
        return self.call(self.ours, "PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/"
                         f"m.room.message/{uuid.uuid4().hex}",
                         {"msgtype": "m.text", "body": text}, self.token)["event_id"]

    def _partition(self, version: str, demote: bool = False) -> None:
        """``demote``: Synapse's power-level change also takes our user's power away,
        so our user's concurrent changes are authorised on our fork only."""
        room_id = self.call(self.syn, "POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": version}, self.syn_token)["room_id"]
        self.call(self.ours, "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
                  f"{q(self.syn.server_name)}", {}, self.token)
        levels = self.current(self.syn, room_id, self.syn_token)["m.room.power_levels"]
        levels = dict(levels, users=dict(levels.get("users", {}), **{self.user: 100}))
        self.put_state(self.syn, room_id, "m.room.power_levels", levels, self.syn_token)
        self.wait(lambda: self.current(self.ours, room_id, self.token)
                  .get("m.room.power_levels", {}).get("users", {}).get(self.user) == 100,
                  "our user's power on our side", 60)

        self.ours.stop()
        try:
            syn_topic = self.put_state(self.syn, room_id, "m.room.topic",
                                       {"topic": f"synapse's topic v{version}"},
                                       self.syn_token)
            theirs = dict(levels, events=dict(levels.get("events", {}),
                                              **{"m.room.topic": 75}))
            if demote:
                theirs["users"] = {u: p for u, p in theirs["users"].items()
                                   if u != self.user}
            syn_pl = self.put_state(self.syn, room_id, "m.room.power_levels", theirs,
                                    self.syn_token)
        finally:
            self.ours.start()
        # before Synapse's catch-up reaches us (it backs off from us for minutes and
        # wakes only once we call it): our user's changes on what ours last knew
        ours_pl = self.put_state(self.ours, room_id, "m.room.power_levels",
                                 dict(levels, kick=80), self.token)
        ours_topic = self.put_state(self.ours, room_id, "m.room.topic",
                                    {"topic": f"our topic v{version}"}, self.token)
        before = self.current(self.ours, room_id, self.token)
        self.assertEqual(before["m.room.topic"], {"topic": f"our topic v{version}"})
        self.assertNotIn("m.room.topic", before["m.room.power_levels"].get("events", {}))

        def we_have(event_id: str) -> bool:
            status, _ = self.ours.request(
                "GET", f"/_matrix/client/v3/rooms/{q(room_id)}/event/{q(event_id)}",
                token=self.token)
            return status == 200

        def same() -> bool:
            # which fork wins is state resolution's to say; both must say the same
            ours = self.current(self.ours, room_id, self.token)
            theirs = self.current(self.syn, room_id, self.syn_token)
            return bool(ours) and ours == theirs and we_have(syn_topic) and we_have(syn_pl)
        self.wait(same, lambda: f"the same topic and power levels on both (v{version}); "
                  f"ours {self.current(self.ours, room_id, self.token)}, Synapse's "
                  f"{self.current(self.syn, room_id, self.syn_token)}, we have Synapse's "
                  f"topic/PL: {we_have(syn_topic)}/{we_have(syn_pl)}", 240)

        # our next event has both forks as prev_events; the one after, only it
        first = self.say(room_id, "after the partition")
        merge = self.pdu(room_id, first)
        self.assertEqual(merge["content"]["body"], "after the partition")
        self.assertGreaterEqual(len(merge["prev_events"]), 2, (ours_pl, ours_topic, merge))
        second = self.say(room_id, "and again")
        self.assertEqual(self.pdu(room_id, second)["prev_events"], [first])
        # and Synapse still agrees after accepting both
        self.wait(same, "agreement after the merge", 60)

    def test_concurrent_changes_converge_v10(self):
        """Topic and power levels changed on both sides during a partition end the same
        on both servers (v10), and our next event merges the forks."""
        self._partition("10")

    def test_concurrent_changes_converge_v12(self):
        """The same in room version 12 (state resolution v2.1)."""
        self._partition("12")

    def test_concurrent_demotion_converges_v12(self):
        """Synapse's admin demotes our user while our user, cut off, changes topic and
        power levels: both servers still end with the same state (v12; in v10 a user
        cannot take away power equal to their own, so there is no such demotion)."""
        self._partition("12", demote=True)

    def test_event_of_synapse_room(self):
        """Synapse may GET /event/{id} of an event in a room it made that we joined (its
        creator came in our send_join state, which the memberships index never saw)."""
        room_id = self.call(self.syn, "POST", "/_matrix/client/v3/createRoom", {
            "preset": "public_chat", "room_version": "12"}, self.syn_token)["room_id"]
        self.call(self.ours, "POST", f"/_matrix/client/v3/join/{q(room_id)}?server_name="
                  f"{q(self.syn.server_name)}", {}, self.token)
        event_id = self.say(room_id, "find me")
        status, body = self.as_synapse("GET", f"/_matrix/federation/v1/event/{q(event_id)}")
        self.assertEqual(status, 200, body)
        [pdu] = body["pdus"]
        self.assertEqual((pdu["room_id"], pdu["content"].get("body")), (room_id, "find me"))
