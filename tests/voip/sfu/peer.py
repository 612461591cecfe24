"""A participant of an SFU call, as a client would be: aiortc, aiohttp, the
partytracks request sequence (sessions/new, tracks/new, renegotiate).

Used in-process by the tests and as a separate process (``python -m
tests.voip.sfu.peer BASE TOKEN ROOM AMPLITUDE LEAVE_DELAY_MS``) for the participant
that is killed: it posts its MatrixRTC call membership with a delayed leave (MSC4140)
and keeps the leave from firing for as long as it lives.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import sys
import time
from urllib.parse import quote

import aiohttp
import av
import numpy as np
from aiortc import (MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription,
                    VideoStreamTrack)

PREFIX = "/_matrix/client/unstable/org.roomserver.sfu/rooms/"
CALL_MEMBER = "org.matrix.msc3401.call.member"
DELAY = "org.matrix.msc4140.delay"
DELAYED_EVENTS = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events/"


def tone_frame(amplitude: float, pts: int) -> av.AudioFrame:
    """20 ms of a 440 Hz tone at ``amplitude`` of full scale, 48 kHz mono."""
    t = (np.arange(960) + pts) / 48000
    samples = (amplitude * 32767 * np.sin(2 * math.pi * 440 * t)).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 48000
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, 48000)
    return frame


class ToneTrack(MediaStreamTrack):
    """aiortc's stock sender encodes this to Opus and writes its RFC 6464 level."""

    kind = "audio"

    def __init__(self, amplitude: float) -> None:
        super().__init__()
        self.amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._pts / 48000 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = tone_frame(self.amplitude, self._pts)
        self._pts += 960
        return frame


class PatternTrack(VideoStreamTrack):
    """Generated camera frames (a moving gradient) at 30 fps, ``width`` × ``height``;
    aiortc's stock sender encodes them (VP8 or H.264)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        row = ((np.arange(self.width) + 4 * self._count) % 256).astype(np.uint8)
        image = np.broadcast_to(row[None, :, None], (self.height, self.width, 3))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        self._count += 1
        return frame


class ApiError(Exception):
    def __init__(self, status: int, body) -> None:
        super().__init__(f"{status} {body}")
        self.status, self.body = status, body


class Peer:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str,
                 room_id: str) -> None:
        self.http = http
        self.base_url, self.room_id = base_url, room_id
        self.url = base_url + PREFIX + quote(room_id, safe="")
        self.token = token
        self.pc = RTCPeerConnection()
        self.session_id: str | None = None
        #: mid → list of (sequence number, audio level, payload) received
        self.received: dict[str, list[tuple[int, int | None, bytes]]] = {}
        #: mid → the session id whose track it carries
        self.sources: dict[str, str] = {}
        #: mid → RTP timestamps received (video: one per packet)
        self.timestamps: dict[str, list[int]] = {}
        #: keyframe requests (PLI/FIR) received for our video
        self.pli = 0
        self._tasks: list[asyncio.Future] = []

    async def call(self, method: str, path: str, body=None):
        """An SFU API call (``path`` under the room's prefix)."""
        return await self._request(method, self.url + path, body)

    async def matrix(self, method: str, path: str, body=None):
        """A Client-Server API call with our token (``path`` from ``/_matrix``)."""
        return await self._request(method, self.base_url + path, body)

    async def _request(self, method: str, url: str, body=None):
        async with self.http.request(method, url, json=body,
                                     headers={"Authorization": f"Bearer {self.token}"}) as r:
            data = await r.json(content_type=None)
            if r.status != 200:
                raise ApiError(r.status, data)
            return data

    async def announce(self, delay_ms: int) -> tuple[str, str]:
        """Join the room's call as a MatrixRTC client does (Element Call's order):
        schedule the empty call membership (our leave) ``delay_ms`` ahead, then post our
        membership naming our SFU as the focus. Returns (state key, delay id); keep
        the leave from firing with :meth:`keep_alive`."""
        who = await self.matrix("GET", "/_matrix/client/v3/account/whoami")
        key = f"_{who['user_id']}_{who['device_id']}"
        state = (f"/_matrix/client/v3/rooms/{quote(self.room_id, safe='')}/state/"
                 f"{CALL_MEMBER}/{quote(key, safe='')}")
        delay_id = (await self.matrix("PUT", f"{state}?{DELAY}={delay_ms}", {}))["delay_id"]
        await self.matrix("PUT", state, {
            "application": "m.call", "call_id": "", "scope": "m.room",
            "device_id": who["device_id"], "expires": 14400000,
            "focus_active": {"type": "org.roomserver.sfu",
                             "sfu_url": self.base_url + PREFIX.rsplit("/rooms/", 1)[0]},
            "foci_preferred": []})
        return key, delay_id

    async def keep_alive(self, delay_id: str, every_s: float) -> None:
        """Restart the scheduled leave every ``every_s`` seconds, for as long as we live."""
        while True:
            await self.matrix("POST", DELAYED_EVENTS + delay_id, {"action": "restart"})
            await asyncio.sleep(every_s)

    async def join(self) -> None:
        self.session_id = (await self.call("POST", "/sessions/new"))["sessionId"]

    async def publish(self, amplitude: float, name: str = "mic") -> None:
        transceiver = self.pc.addTransceiver(ToneTrack(amplitude), direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.call("POST", f"/sessions/{self.session_id}/tracks/new", {
            "sessionDescription": {"type": "offer", "sdp": self.pc.localDescription.sdp},
            "tracks": [{"location": "local", "trackName": name, "mid": transceiver.mid}]})
        await self.pc.setRemoteDescription(RTCSessionDescription(**answer["sessionDescription"]))

    async def publish_video(self, codec: str = "video/VP8", name: str = "camera") -> None:
        """Publish a PatternTrack in ``codec`` only; ``pli`` counts the keyframe
        requests (PLI/FIR) the SFU sends us."""
        transceiver = self.pc.addTransceiver(PatternTrack(), direction="sendonly")
        transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs
             if c.mimeType.lower() == codec.lower()])
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.call("POST", f"/sessions/{self.session_id}/tracks/new", {
            "sessionDescription": {"type": "offer", "sdp": self.pc.localDescription.sdp},
            "tracks": [{"location": "local", "trackName": name, "mid": transceiver.mid}]})
        await self.pc.setRemoteDescription(RTCSessionDescription(**answer["sessionDescription"]))
        sender = transceiver.sender
        handle = sender._handle_rtcp_packet

        async def count(packet):
            if getattr(packet, "fmt", None) in (1, 4) and type(packet).__name__ == "RtcpPsfbPacket":
                self.pli += 1
            await handle(packet)
        sender._handle_rtcp_packet = count

    def watch(self, mid: str) -> list:
        """Decode what arrives on ``mid`` (aiortc's receiver decodes video): a list
        that fills with (width, height) of each decoded frame."""
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.mid == mid)
        frames: list[tuple[int, int]] = []

        async def drain():
            while True:
                frame = await receiver.track.recv()
                frames.append((frame.width, frame.height))
        self._tasks.append(asyncio.ensure_future(drain()))
        return frames

    async def pull(self, session_id: str, name: str = "mic", simulcast=None) -> str:
        entry = {"location": "remote", "sessionId": session_id, "trackName": name}
        if simulcast is not None:
            entry["simulcast"] = simulcast
        response = await self.call("POST", f"/sessions/{self.session_id}/tracks/new", {
            "tracks": [entry]})
        assert response["requiresImmediateRenegotiation"] is True
        await self.pc.setRemoteDescription(RTCSessionDescription(**response["sessionDescription"]))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.call("PUT", f"/sessions/{self.session_id}/renegotiate", {
            "sessionDescription": {"type": "answer", "sdp": self.pc.localDescription.sdp}})
        mid = response["tracks"][0]["mid"]
        self.sources[mid] = session_id
        self._tap(mid)
        return mid

    def _tap(self, mid: str) -> None:
        """Record every RTP packet arriving on ``mid`` before aiortc decodes it."""
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.mid == mid)
        log = self.received.setdefault(mid, [])
        stamps = self.timestamps.setdefault(mid, [])
        handle = receiver._handle_rtp_packet

        async def tap(packet, arrival_time_ms):
            level = packet.extensions.audio_level
            log.append((packet.sequence_number, None if level is None else level[1],
                        packet.payload))
            stamps.append(packet.timestamp)
            await handle(packet, arrival_time_ms)
        receiver._handle_rtp_packet = tap

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def _serve(base_url: str, token: str, room_id: str, amplitude: float,
                 leave_delay_ms: int) -> None:
    async with aiohttp.ClientSession() as http:
        peer = Peer(http, base_url, token, room_id)
        key, delay_id = await peer.announce(leave_delay_ms)
        await peer.join()
        await peer.publish(amplitude)
        print(json.dumps({"sessionId": peer.session_id, "member_key": key}), flush=True)
        await peer.keep_alive(delay_id, leave_delay_ms / 4000)  # until killed


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]),
                       int(sys.argv[5])))
