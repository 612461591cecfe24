"""One participant session: one aiortc RTCPeerConnection, negotiated over HTTP.

The client drives negotiation as in the Cloudflare Calls "Connection API": it offers
to publish (we answer), and when it pulls tracks we offer and it answers through
``renegotiate``. Operations on one session run one at a time (``serial``): an SDP
exchange spans several awaits and the peer connection's signalling state must not
interleave. Everything here runs on the asyncio loop (aiortc); nothing imports twisted.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from aiortc import RTCConfiguration, RTCIceServer, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy

from voip.sfu.forwarding import (FORWARDED, ForwardingReceiver, FrameTrack, PacketTrack,
                                 SfuPeerConnection)
from voip.sfu.sdp_text import (SdpError, accept_simulcast, announce, mask_rejected,
                               parse_offer_mids, rejected_mids)
from voip.sfu.sfu_config import SfuConfig


class Session:
    """A participant's peer connection and its liveness."""

    def __init__(self, session_id: str, *, user_id: str, device_id: str | None,
                 room_id: str, config: SfuConfig, ice_servers: list[dict],
                 now: Callable[[], float]) -> None:
        self.id = session_id
        #: where this session's senders record how long packets waited (its call's)
        self.delays = None
        self.user_id = user_id
        self.device_id = device_id
        self.room_id = room_id
        self.noise_suppression = False
        self._config = config
        self._now = now
        self.created_at = now()
        self.last_inbound: float | None = None
        self.connected_at: float | None = None
        self.closed = False
        self.serial = asyncio.Lock()
        #: mid → the PacketTrack its sender forwards (pulled tracks)
        self.outputs: dict[str, PacketTrack] = {}
        #: mid → the codec (lower-case MIME type) each pulled transceiver was offered
        self.output_codecs: dict[str, str] = {}
        #: transceivers closed for good (either side), rejected in every SDP we send
        self.rejected: set[str] = set()
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"),
                                credential=s.get("credential")) for s in ice_servers]
        self.pc = SfuPeerConnection(
            RTCConfiguration(iceServers=servers or None,
                             bundlePolicy=RTCBundlePolicy.MAX_BUNDLE),
            host_addresses=config.bind_addresses, on_inbound=self._touch)
        self.pc.on("connectionstatechange", self._on_state)

    def _touch(self) -> None:
        self.last_inbound = self._now()

    def _on_state(self) -> None:
        if self.pc.connectionState == "connected" and self.connected_at is None:
            self.connected_at = self.last_inbound = self._now()

    # -- negotiation ------------------------------------------------------------------
    async def answer_offer(self, offer: str) -> str:
        """Apply the client's offer and return our answer (as sent to the client)."""
        self.rejected |= rejected_mids(offer)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except SdpError:
            raise
        except Exception as e:  # InvalidStateError, InvalidAccessError, ValueError…
            raise SdpError(f"cannot apply the offer: {e or type(e).__name__}") from None
        return accept_simulcast(offer, self._local_sdp())

    async def offer_outputs(self, codecs: list[str]) -> tuple[list[str], str]:
        """Add one send-only transceiver per entry of ``codecs`` (the source's codec,
        a lower-case MIME type), each fed by a fresh PacketTrack (FrameTrack for
        video) and offering only that codec; return their mids and our offer."""
        # An offer of ours still unanswered is replaced by this one, which includes its
        # transceivers too: a client that never answered cannot wedge the session.
        if self.pc.signalingState not in ("stable", "have-local-offer"):
            raise SdpError("answer our offer before pulling more tracks")
        transceivers = []
        for codec in codecs:
            kind = codec.split("/", 1)[0]
            transceiver = self.pc.addTransceiver(kind, direction="sendonly")
            track = PacketTrack() if kind == "audio" else FrameTrack()
            if kind == "video":  # the subscriber must take the publisher's codec as is
                transceiver.forward_codec = codec  # SfuPeerConnection.createOffer reads it
            transceiver.sender.replaceTrack(track)
            transceiver.sender.delays = self.delays
            transceivers.append((transceiver, track))
        try:
            await self.pc.setLocalDescription(await self.pc.createOffer())
        except Exception as e:  # no payload type left, a codec aiortc cannot offer…
            raise SdpError(f"cannot offer the tracks: {e or type(e).__name__}") from None
        mids = []
        for (transceiver, track), codec in zip(transceivers, codecs):
            self.outputs[transceiver.mid] = track
            self.output_codecs[transceiver.mid] = codec
            mids.append(transceiver.mid)
        return mids, self._local_sdp()

    async def accept_answer(self, answer: str) -> None:
        if self.pc.signalingState != "have-local-offer":
            raise SdpError("there is no offer of ours to answer")
        parse_offer_mids(answer)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        except Exception as e:
            raise SdpError(f"cannot apply the answer: {e or type(e).__name__}") from None

    def _local_sdp(self) -> str:
        return mask_rejected(announce(self.pc.localDescription.sdp,
                                      public_ip=self._config.public_ip,
                                      max_bitrate=self._config.max_bitrate_per_track,
                                      max_video_bitrate=self._config.max_video_bitrate),
                             self.rejected)

    # -- tracks -----------------------------------------------------------------------
    def receiver(self, mid: str) -> ForwardingReceiver | None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == mid and isinstance(transceiver.receiver,
                                                     ForwardingReceiver):
                return transceiver.receiver
        return None

    def input_codec(self, mid: str) -> str | None:
        """The forwarded codec negotiated on received transceiver ``mid`` (lower-case
        MIME type: the first of Opus, VP8, H.264 the answer kept), if any."""
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == mid:
                for codec in transceiver._codecs:
                    if codec.mimeType.lower() in FORWARDED:
                        return codec.mimeType.lower()
        return None

    def stop_input(self, mid: str) -> None:
        """Stop forwarding what arrives on ``mid``; it is closed for good."""
        self.rejected.add(mid)
        receiver = self.receiver(mid)
        if receiver is not None:
            receiver.sink = None

    def stop_output(self, mid: str) -> None:
        """Stop sending on ``mid``; it is closed for good."""
        self.rejected.add(mid)
        self.output_codecs.pop(mid, None)
        track = self.outputs.pop(mid, None)
        if track is not None:
            track.stop()

    # -- liveness ---------------------------------------------------------------------
    def death(self, now: float, *, has_media: bool) -> str | None:
        """Why this session is dead at ``now``, or None while it lives: its connection
        failed, it never connected in time, or it went silent (no RTP or RTCP at all)
        while it had tracks."""
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            return f"connection {state}"
        if self.connected_at is None:
            if now - self.created_at > self._config.connect_timeout_s:
                return "never connected"
            return None
        if has_media and self.last_inbound is not None \
                and now - self.last_inbound > self._config.media_timeout_s:
            return "no packets"
        return None

    async def close(self) -> None:
        self.closed = True
        for mid in list(self.outputs):
            self.stop_output(mid)
        for transceiver in self.pc.getTransceivers():
            if isinstance(transceiver.receiver, ForwardingReceiver):
                transceiver.receiver.sink = None
        await self.pc.close()
