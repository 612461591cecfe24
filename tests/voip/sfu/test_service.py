"""voip/sfu/service.py in-process, with aiortc clients and fakes for the rooms and the
denoiser: noise suppression only where allowed, sessions swept and stopped."""

from __future__ import annotations

import dataclasses

from aiortc import RTCPeerConnection, RTCSessionDescription
from twisted.internet import task
from twisted.trial import unittest

from homeserver.errors import MatrixError
from tests.e2e.harness import as_deferred
from tests.voip.sfu.call_case import wait_for
from tests.voip.sfu.peer import ToneTrack
from voip.sfu.service import SfuService
from voip.sfu.sfu_config import SfuConfig

ROOM = "!room:example.org"


@dataclasses.dataclass
class Requester:
    user_id: str
    device_id: str | None = "DEV"


class FakeGate:
    def __init__(self, members=("@alice:x", "@bob:x"), encrypted=False):
        self.members = set(members)
        self.encrypted = encrypted

    async def is_joined(self, room_id, user_id):
        return user_id in self.members

    async def is_encrypted(self, room_id):
        return self.encrypted


class FrozenDenoiser:
    """Answers every payload with the first one it saw: valid Opus, and easy to spot
    (a tone's payloads otherwise differ)."""

    instances: list["FrozenDenoiser"] = []

    def __init__(self):
        self.first: bytes | None = None
        self.calls = 0
        FrozenDenoiser.instances.append(self)

    def process(self, payload: bytes) -> bytes:
        self.calls += 1
        if self.first is None:
            self.first = payload
        return self.first


class ServiceTest(unittest.TestCase):
    def make(self, **gate):
        self.clock = task.Clock()
        self.gate = FakeGate(**gate)
        FrozenDenoiser.instances = []
        self.sfu = SfuService(SfuConfig(), gate=self.gate, clock=self.clock,
                              ice_servers_for=lambda user: [],
                              denoiser_factory=FrozenDenoiser)
        self.pcs: list[RTCPeerConnection] = []
        self.addCleanup(self._close)
        return self.sfu

    async def _close_all(self):
        for pc in self.pcs:
            await pc.close()

    def _close(self):
        return as_deferred(self._close_all()).addCallback(lambda _: self.sfu.stop())

    async def publisher(self, user, body):
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        requester = Requester(user)
        sid = (await self.sfu.create_session(requester, ROOM, {}))["sessionId"]
        transceiver = pc.addTransceiver(ToneTrack(0.1), direction="sendonly")
        await as_deferred(pc.setLocalDescription(await as_deferred(pc.createOffer())))
        response = await self.sfu.new_tracks(requester, ROOM, sid, {
            "sessionDescription": {"type": "offer", "sdp": pc.localDescription.sdp},
            "tracks": [{"location": "local", "trackName": "mic", "mid": transceiver.mid,
                        **body}]})
        await as_deferred(pc.setRemoteDescription(
            RTCSessionDescription(**response["sessionDescription"])))
        return sid, response["tracks"][0]

    async def subscriber(self, user, source):
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        requester = Requester(user)
        sid = (await self.sfu.create_session(requester, ROOM, {}))["sessionId"]
        response = await self.sfu.new_tracks(requester, ROOM, sid, {
            "tracks": [{"location": "remote", "sessionId": source, "trackName": "mic"}]})
        await as_deferred(pc.setRemoteDescription(
            RTCSessionDescription(**response["sessionDescription"])))
        await as_deferred(pc.setLocalDescription(await as_deferred(pc.createAnswer())))
        await self.sfu.renegotiate(requester, ROOM, sid, {
            "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
        received = []
        receiver = pc.getTransceivers()[0].receiver
        handle = receiver._handle_rtp_packet

        async def tap(packet, arrival_time_ms):
            received.append(packet.payload)
            await handle(packet, arrival_time_ms)
        receiver._handle_rtp_packet = tap
        return sid, received

    async def _heard(self, body, **gate):
        self.make(**gate)
        sid, track = await self.publisher("@alice:x", body)
        _, received = await self.subscriber("@bob:x", sid)
        await as_deferred(wait_for(lambda: len(received) >= 30))
        return track, received

    async def test_noise_suppression_when_asked_and_unencrypted(self):
        """A speaker who asks for noise suppression in an unencrypted call is heard
        through the denoiser, once per packet."""
        track, received = await self._heard({"noiseSuppression": True})
        self.assertTrue(track["noiseSuppression"])
        (denoiser,) = FrozenDenoiser.instances
        self.assertEqual(set(received[5:]), {denoiser.first})
        self.assertGreaterEqual(denoiser.calls, len(received))

    async def test_no_noise_suppression_in_encrypted_rooms(self):
        """In an encrypted room the flag is refused and payloads pass untouched."""
        track, received = await self._heard({"noiseSuppression": True}, encrypted=True)
        self.assertFalse(track["noiseSuppression"])
        self.assertEqual(FrozenDenoiser.instances, [])
        self.assertGreater(len(set(received)), 1)

    async def test_no_noise_suppression_unless_asked(self):
        """Without the flag nothing is denoised."""
        track, received = await self._heard({})
        self.assertFalse(track["noiseSuppression"])
        self.assertEqual(FrozenDenoiser.instances, [])

    async def test_stop_closes_every_peer_connection(self):
        """Stopping the service closes all sessions' peer connections."""
        self.make()
        await self.publisher("@alice:x", {})
        sessions = self.sfu.calls.sessions()
        await self.sfu.stop()
        self.assertEqual([s.pc.connectionState for s in sessions], ["closed"])
        self.assertEqual(self.sfu.calls.sessions(), [])

    async def test_unconnected_session_is_swept(self):
        """A session that never connects is closed after connect_timeout."""
        sfu = self.make()
        sfu.start()
        sid = (await sfu.create_session(Requester("@alice:x"), ROOM, {}))["sessionId"]
        self.clock.advance(SfuConfig().connect_timeout_s - 1)
        self.assertIsNotNone(sfu.calls.find(ROOM, sid))
        self.clock.advance(2)
        self.assertIsNone(sfu.calls.find(ROOM, sid))

    async def test_closed_connection_is_swept_at_once(self):
        """A session whose peer connection closed (or failed) goes at the next sweep,
        without waiting for any timeout."""
        sfu = self.make()
        sfu.start()
        sid = (await sfu.create_session(Requester("@alice:x"), ROOM, {}))["sessionId"]
        _call, session = sfu.calls.find(ROOM, sid)
        await as_deferred(session.pc.close())
        self.clock.advance(1)
        self.assertIsNone(sfu.calls.find(ROOM, sid))

    async def test_leaving_the_room_leaves_the_call(self):
        """A member event that is not a join closes that user's sessions in the room."""
        sfu = self.make()
        alice = (await sfu.create_session(Requester("@alice:x"), ROOM, {}))["sessionId"]
        bob = (await sfu.create_session(Requester("@bob:x"), ROOM, {}))["sessionId"]
        sfu.on_room_event({"type": "m.room.member", "room_id": ROOM, "state_key": "@bob:x",
                           "content": {"membership": "leave"}}, 1)
        sfu.on_room_event({"type": "m.room.member", "room_id": ROOM,
                           "state_key": "@alice:x", "content": {"membership": "join"}}, 2)
        self.assertIsNone(sfu.calls.find(ROOM, bob))
        self.assertIsNotNone(sfu.calls.find(ROOM, alice))

    async def test_non_member_cannot_pull(self):
        """Someone not joined to the room gets M_FORBIDDEN, even with a session ID."""
        sfu = self.make()
        sid = (await sfu.create_session(Requester("@alice:x"), ROOM, {}))["sessionId"]
        with self.assertRaises(MatrixError) as e:
            await sfu.describe_session(Requester("@eve:x"), ROOM, sid)
        self.assertEqual(e.exception.errcode, "M_FORBIDDEN")

    async def test_unanswered_offer_does_not_wedge_the_session(self):
        """A pull whose offer was never answered is folded into the next offer;
        answering that one makes both transceivers receive."""
        self.make()
        alice, _ = await self.publisher("@alice:x", {})
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        bob = Requester("@bob:x")
        sid = (await self.sfu.create_session(bob, ROOM, {}))["sessionId"]
        pull = {"tracks": [{"location": "remote", "sessionId": alice, "trackName": "mic"}]}
        await self.sfu.new_tracks(bob, ROOM, sid, pull)  # never answered
        response = await self.sfu.new_tracks(bob, ROOM, sid, pull)
        await as_deferred(pc.setRemoteDescription(
            RTCSessionDescription(**response["sessionDescription"])))
        await as_deferred(pc.setLocalDescription(await as_deferred(pc.createAnswer())))
        await self.sfu.renegotiate(bob, ROOM, sid, {
            "sessionDescription": {"type": "answer", "sdp": pc.localDescription.sdp}})
        counts = {}
        for transceiver in pc.getTransceivers():
            handle, mid = transceiver.receiver._handle_rtp_packet, transceiver.mid
            counts[mid] = 0

            async def tap(packet, arrival_time_ms, handle=handle, mid=mid):
                counts[mid] += 1
                await handle(packet, arrival_time_ms)
            transceiver.receiver._handle_rtp_packet = tap
        self.assertEqual(len(counts), 2)
        self.assertTrue(await as_deferred(wait_for(lambda: min(counts.values()) >= 20)),
                        counts)
