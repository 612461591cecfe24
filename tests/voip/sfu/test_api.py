"""The SFU API against the real server process: bad input is a clear 4xx Matrix error
(never a 500 or a stuck call), limits hold, and track close/update work."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import aiohttp

from tests.e2e.harness import as_deferred
from tests.voip.sfu.call_case import SfuServerCase, continuous, wait_for
from tests.voip.sfu.peer import PREFIX, Peer


class BadInputTest(SfuServerCase):
    overrides = {"voip": {"sfu": {"max_participants_per_call": 2, "max_calls": 1}}}

    def setUp(self):
        super().setUp()
        self.alice, self.bob, self.eve = (self.register(n) for n in ("alice", "bob", "eve"))
        self.room_id = self.room_with(self.alice, self.bob)
        self.base = PREFIX + quote(self.room_id, safe="")

    def api(self, method, path, body=None, token=None, raw=None):
        return self.server.request(method, self.base + path, body, token=token, raw=raw)

    def assertError(self, result, status, errcode):
        self.assertEqual(result[0], status, result[1])
        self.assertEqual(result[1]["errcode"], errcode)
        if status != 401:  # the SFU's own errors also speak the Calls API's fields
            self.assertEqual(result[1]["errorCode"], errcode)

    def new_session(self, token=None):
        status, body = self.api("POST", "/sessions/new", token=token or self.alice)
        self.assertEqual(status, 200, body)
        return body["sessionId"]

    def test_noise_suppression_by_query_string(self):
        """A session may ask for noise suppression, as a partytracks page can (its
        apiExtraParams), with ?noiseSuppression=true; GET sessions/{id} says so."""
        plain = self.new_session()
        status, asked = self.api("POST", "/sessions/new?noiseSuppression=true", token=self.bob)
        self.assertEqual(status, 200, asked)
        for session_id, token, on in ((plain, self.alice, False),
                                      (asked["sessionId"], self.bob, True)):
            status, described = self.api("GET", f"/sessions/{session_id}", token=token)
            self.assertEqual((status, described["noiseSuppression"]), (200, on), described)

    def test_requires_a_token(self):
        """No access token: 401 M_MISSING_TOKEN."""
        self.assertError(self.api("POST", "/sessions/new"), 401, "M_MISSING_TOKEN")

    def test_non_member_is_forbidden(self):
        """A user not joined to the room may not create a session in its call."""
        self.assertError(self.api("POST", "/sessions/new", token=self.eve), 403, "M_FORBIDDEN")

    def test_others_session_is_forbidden(self):
        """A session can be driven only by the user who created it."""
        sid = self.new_session()
        self.assertError(self.api("GET", f"/sessions/{sid}", token=self.bob), 403,
                         "M_FORBIDDEN")

    def test_unknown_session(self):
        """An unknown session ID is 404 M_NOT_FOUND."""
        self.assertError(self.api("GET", "/sessions/0123abcd", token=self.alice), 404,
                         "M_NOT_FOUND")
        self.assertError(self.api("PUT", "/sessions/0123abcd/renegotiate", {
            "sessionDescription": {"type": "answer", "sdp": "v=0"}}, token=self.alice),
            404, "M_NOT_FOUND")

    def test_bad_sdp(self):
        """An unparsable offer is 400 M_BAD_JSON and leaves the session usable."""
        sid = self.new_session()
        self.assertError(self.api("POST", f"/sessions/{sid}/tracks/new", {
            "sessionDescription": {"type": "offer", "sdp": "this is not SDP"},
            "tracks": [{"location": "local", "trackName": "mic", "mid": "0"}]},
            token=self.alice), 400, "M_BAD_JSON")
        self.assertError(self.api("POST", "/sessions/new", {
            "sessionDescription": {"type": "offer", "sdp": "v=0\r\nm=audio x\r\n"}},
            token=self.bob), 400, "M_BAD_JSON")
        status, body = self.api("GET", f"/sessions/{sid}", token=self.alice)
        self.assertEqual((status, body["tracks"]), (200, []))

    def test_bad_bodies(self):
        """Malformed track lists and descriptions are 400, not 500."""
        sid = self.new_session()
        for body in ({}, {"tracks": []}, {"tracks": "mic"}, {"tracks": [{"location": "x"}]},
                     {"tracks": [{"location": "local", "trackName": "mic", "mid": "0"}]},
                     {"tracks": [{"location": "remote", "sessionId": sid}]},
                     {"tracks": [{"location": "local", "trackName": "a", "mid": "0"},
                                 {"location": "remote", "sessionId": sid,
                                  "trackName": "b"}]}):
            self.assertError(self.api("POST", f"/sessions/{sid}/tracks/new", body,
                                      token=self.alice), 400, "M_BAD_JSON")
        self.assertError(self.api("PUT", f"/sessions/{sid}/renegotiate",
                                  {"sessionDescription": {"type": "offer", "sdp": "v=0"}},
                                  token=self.alice), 400, "M_BAD_JSON")

    def test_renegotiate_without_offer(self):
        """An answer when we made no offer is 400."""
        sid = self.new_session()
        self.assertError(self.api("PUT", f"/sessions/{sid}/renegotiate", {
            "sessionDescription": {"type": "answer", "sdp": "v=0\r\n"}}, token=self.alice),
            400, "M_BAD_JSON")

    def test_unknown_tracks(self):
        """Pulling, closing or updating a track that does not exist is 404."""
        sid = self.new_session()
        self.assertError(self.api("POST", f"/sessions/{sid}/tracks/new", {
            "tracks": [{"location": "remote", "sessionId": sid, "trackName": "mic"}]},
            token=self.alice), 404, "M_NOT_FOUND")
        self.assertError(self.api("PUT", f"/sessions/{sid}/tracks/close",
                                  {"tracks": [{"mid": "7"}], "force": True},
                                  token=self.alice), 404, "M_NOT_FOUND")
        self.assertError(self.api("PUT", f"/sessions/{sid}/tracks/update", {
            "tracks": [{"location": "remote", "mid": "7", "sessionId": sid,
                        "trackName": "mic"}]}, token=self.alice), 404, "M_NOT_FOUND")

    def test_participant_limit(self):
        """The third session in a call limited to two is 429 M_LIMIT_EXCEEDED."""
        self.new_session()
        self.new_session(self.bob)
        self.assertError(self.api("POST", "/sessions/new", token=self.alice), 429,
                         "M_LIMIT_EXCEEDED")

    def test_call_limit(self):
        """A second call on a server limited to one is 429 M_LIMIT_EXCEEDED."""
        self.new_session()
        status, other = self.server.request("POST", "/_matrix/client/v3/createRoom", {},
                                            token=self.bob)
        self.assertEqual(status, 200)
        status, body = self.server.request(
            "POST", PREFIX + quote(other["room_id"], safe="") + "/sessions/new", {},
            token=self.bob)
        self.assertEqual((status, body["errcode"]), (429, "M_LIMIT_EXCEEDED"))


class IceServersTest(SfuServerCase):
    overrides = {"turn_uris": ["turn:turn.example.org:3478?transport=udp"],
                 "turn_shared_secret": "s3cret", "turn_user_lifetime": "1h"}

    def test_turn_credentials_need_a_token(self):
        """generate-ice-servers hands out the configured TURN server with time-limited
        credentials to a token holder, and nothing without a token (partytracks asks
        it without its headers)."""
        alice = self.register("alice")
        base = PREFIX + quote(self.room_with(alice), safe="")
        status, body = self.server.request("GET", base + "/generate-ice-servers", token=alice)
        self.assertEqual(status, 200)
        (server,) = body["iceServers"]
        self.assertEqual(server["urls"], ["turn:turn.example.org:3478?transport=udp"])
        self.assertTrue(server["username"].endswith(":@alice:localhost"))
        self.assertTrue(server["credential"])
        status, body = self.server.request("GET", base + "/generate-ice-servers")
        self.assertEqual((status, body), (200, {"iceServers": []}))


class TrackChangesTest(SfuServerCase):
    overrides = {"voip": {"sfu": {"media_timeout": "2s"}}}

    def test_update_switches_source_and_close_stops_it(self):
        """tracks/update points a pulled transceiver at another speaker with no
        renegotiation (the sequence stays continuous); tracks/close stops it."""
        tokens = [self.register(n) for n in ("alice", "bob", "carol")]
        room_id = self.room_with(*tokens)
        return as_deferred(self._scenario(tokens, room_id))

    async def _scenario(self, tokens, room_id):
        async with aiohttp.ClientSession() as http:
            alice, bob, carol = (Peer(http, self.server.base_url, t, room_id) for t in tokens)
            try:
                for peer, amplitude in ((alice, 0.5), (bob, 0.1)):
                    await peer.join()
                    await peer.publish(amplitude)
                await carol.join()
                mid = await carol.pull(alice.session_id)
                log = carol.received[mid]
                self.assertTrue(await wait_for(lambda: len(log) >= 25))
                response = await carol.call("PUT", f"/sessions/{carol.session_id}/tracks/update",
                                            {"tracks": [{"location": "remote", "mid": mid,
                                                         "sessionId": bob.session_id,
                                                         "trackName": "mic"}]})
                self.assertEqual(response["requiresImmediateRenegotiation"], False)
                switched_at = len(log)
                self.assertTrue(await wait_for(lambda: len(log) >= switched_at + 25))
                self.assertTrue(continuous([seq for seq, _, _ in log]))
                self.assertEqual(log[-1][1], 23)  # bob's level now, not alice's (9)
                state = await carol.call("GET", f"/sessions/{carol.session_id}")
                self.assertEqual([(t["location"], t["sessionId"]) for t in state["tracks"]],
                                 [("remote", bob.session_id)])

                closed = await carol.call("PUT", f"/sessions/{carol.session_id}/tracks/close",
                                          {"tracks": [{"mid": mid}], "force": True})
                self.assertEqual(closed["tracks"], [{"mid": mid}])
                await asyncio.sleep(0.5)  # packets already on the wire may still land
                stopped_at = len(log)
                # bob keeps publishing: anything still forwarded to carol would land here
                await asyncio.sleep(1.0)
                self.assertEqual(len(log), stopped_at)
                state = await carol.call("GET", f"/sessions/{carol.session_id}")
                self.assertEqual(state["tracks"], [])
            finally:
                for peer in (alice, bob, carol):
                    await peer.close()

    def test_speaking_and_muted(self):
        """GET …/call tells a speaking participant from a silent (muted) one by the
        audio levels their packets carry."""
        tokens = [self.register(n) for n in ("alice", "bob")]
        room_id = self.room_with(*tokens)
        return as_deferred(self._speaking(tokens, room_id))

    async def _speaking(self, tokens, room_id):
        async with aiohttp.ClientSession() as http:
            alice, bob = (Peer(http, self.server.base_url, t, room_id) for t in tokens)
            try:
                await alice.join()
                await alice.publish(0.5)
                await bob.join()
                await bob.publish(0.0)  # digital silence, as a disabled track sends
                states = {}

                async def poll():
                    body = await alice.call("GET", "/call")
                    for p in body["participants"]:
                        for track in p["tracks"]:
                            states[p["sessionId"]] = track
                    return body

                deadline = asyncio.get_running_loop().time() + 20
                while asyncio.get_running_loop().time() < deadline:
                    body = await poll()
                    if states.get(alice.session_id, {}).get("speaking") \
                            and states.get(bob.session_id, {}).get("audioLevel") == 127:
                        break
                    await asyncio.sleep(0.2)
                self.assertEqual(states[alice.session_id],
                                 {"trackName": "mic", "mid": "0", "audioLevel": 9,
                                  "speaking": True, "muted": False})
                self.assertEqual(states[bob.session_id],
                                 {"trackName": "mic", "mid": "0", "audioLevel": 127,
                                  "speaking": False, "muted": True})
                self.assertEqual({p["userId"] for p in body["participants"]},
                                 {"@alice:localhost", "@bob:localhost"})
            finally:
                for peer in (alice, bob):
                    await peer.close()
