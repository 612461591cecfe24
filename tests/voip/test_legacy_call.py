"""Legacy 1:1 VoIP (spec: Client-Server API, "Voice over IP"): two real aiortc peers
signal a call through the server with ``m.call.invite`` / ``answer`` /
``select_answer`` / ``hangup`` room events read from ``/sync``, then talk peer to peer
(media never touches the server; the SFU is off here to show it is not needed), and
``/voip/turnServer`` hands out time-limited TURN credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from urllib.parse import quote

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from tests.e2e.harness import as_deferred
from tests.voip.sfu.call_case import V3, SfuServerCase
from tests.voip.sfu.peer import ToneTrack

SECRET = "turn-secret-for-tests"


class Client:
    """A user's Client-Server calls and an incremental /sync over aiohttp."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.http, self.base_url, self.token = http, base_url, token
        self.since: str | None = None

    async def call(self, method: str, path: str, body=None):
        async with self.http.request(method, self.base_url + path, json=body,
                                     headers={"Authorization": f"Bearer {self.token}"}) as r:
            data = await r.json(content_type=None)
            assert r.status == 200, (r.status, data)
            return data

    async def send(self, room_id: str, event_type: str, content: dict) -> None:
        await self.call("PUT", f"{V3}/rooms/{quote(room_id)}/send/{event_type}/"
                               f"{uuid.uuid4().hex}", content)

    async def next_event(self, room_id: str, event_type: str, sender: str,
                         timeout: float = 30.0) -> dict:
        """The first ``event_type`` event from ``sender`` in the room's timeline from
        now on (long-polling /sync)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            query = "?timeout=5000" + (f"&since={self.since}" if self.since else "")
            body = await self.call("GET", f"{V3}/sync{query}")
            self.since = body["next_batch"]
            timeline = body["rooms"].get("join", {}).get(room_id, {}).get("timeline", {})
            for event in timeline.get("events", []):
                if event["type"] == event_type and event["sender"] == sender:
                    return event
        raise AssertionError(f"no {event_type} from {sender}")


class Listener:
    """Counts the audio frames a peer connection receives (aiortc decodes them)."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.frames = 0
        self._tasks: list[asyncio.Task] = []
        pc.on("track", self._on_track)

    def _on_track(self, track) -> None:
        async def drain():
            while True:
                await track.recv()
                self.frames += 1
        self._tasks.append(asyncio.ensure_future(drain()))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


class LegacyCallTest(SfuServerCase):
    overrides = {"voip": {"sfu": {"enabled": False}},
                 "turn_uris": ["turn:turn.example.org:3478?transport=udp"],
                 "turn_shared_secret": SECRET, "turn_user_lifetime": "1h"}

    def test_turn_credentials(self):
        """/voip/turnServer: the coturn REST scheme, username expiry:user, HMAC-SHA1."""
        token = self.register("alice")
        status, body = self.server.request("GET", f"{V3}/voip/turnServer", token=token)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["uris"], ["turn:turn.example.org:3478?transport=udp"])
        self.assertEqual(body["ttl"], 3600)
        expiry, user = body["username"].split(":", 1)
        self.assertEqual(user, "@alice:localhost")
        self.assertLess(abs(int(expiry) - (time.time() + 3600)), 60)
        mac = hmac.new(SECRET.encode(), body["username"].encode(), hashlib.sha1).digest()
        self.assertEqual(body["password"], base64.b64encode(mac).decode())
        self.assertEqual(self.server.request("GET", f"{V3}/voip/turnServer")[0], 401)

    def test_one_to_one_call_peer_to_peer(self):
        """Alice invites, Bob answers, both hear each other's audio over a direct
        WebRTC connection, Alice hangs up and Bob sees it."""
        alice, bob = self.register("alice"), self.register("bob")
        room_id = self.room_with(alice, bob)
        return as_deferred(self._call(alice, bob, room_id))

    async def _call(self, alice_token: str, bob_token: str, room_id: str) -> None:
        call_id = uuid.uuid4().hex
        async with aiohttp.ClientSession() as http:
            alice = Client(http, self.server.base_url, alice_token)
            bob = Client(http, self.server.base_url, bob_token)
            await bob.next_event(room_id, "m.room.member", "@bob:localhost")  # sync now
            alice_pc, bob_pc = RTCPeerConnection(), RTCPeerConnection()
            alice_ears, bob_ears = Listener(alice_pc), Listener(bob_pc)
            try:
                alice_pc.addTrack(ToneTrack(0.3))
                await alice_pc.setLocalDescription(await alice_pc.createOffer())
                await alice.send(room_id, "m.call.invite", {
                    "call_id": call_id, "party_id": "alice-1", "version": "1",
                    "lifetime": 60000,
                    "offer": {"type": "offer", "sdp": alice_pc.localDescription.sdp}})

                invite = await bob.next_event(room_id, "m.call.invite", "@alice:localhost")
                self.assertEqual(invite["content"]["call_id"], call_id)
                await bob_pc.setRemoteDescription(RTCSessionDescription(
                    **invite["content"]["offer"]))
                bob_pc.addTrack(ToneTrack(0.1))
                await bob_pc.setLocalDescription(await bob_pc.createAnswer())
                await bob.send(room_id, "m.call.answer", {
                    "call_id": call_id, "party_id": "bob-1", "version": "1",
                    "answer": {"type": "answer", "sdp": bob_pc.localDescription.sdp}})

                answer = await alice.next_event(room_id, "m.call.answer", "@bob:localhost")
                await alice_pc.setRemoteDescription(RTCSessionDescription(
                    **answer["content"]["answer"]))
                await alice.send(room_id, "m.call.select_answer", {
                    "call_id": call_id, "party_id": "alice-1", "version": "1",
                    "selected_party_id": "bob-1"})

                deadline = time.monotonic() + 30
                while min(alice_ears.frames, bob_ears.frames) < 25 \
                        and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                self.assertGreaterEqual(alice_ears.frames, 25, "alice hears bob")
                self.assertGreaterEqual(bob_ears.frames, 25, "bob hears alice")

                await alice.send(room_id, "m.call.hangup", {
                    "call_id": call_id, "party_id": "alice-1", "version": "1",
                    "reason": "user_hangup"})
                hangup = await bob.next_event(room_id, "m.call.hangup", "@alice:localhost")
                self.assertEqual(hangup["content"]["call_id"], call_id)
            finally:
                alice_ears.stop()
                bob_ears.stop()
                await alice_pc.close()
                await bob_pc.close()
