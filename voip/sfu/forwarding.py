"""RTP passthrough on aiortc 1.16 (Opus, VP8, H.264): encoded packets in, the same
payloads out.

aiortc's media path decodes every received packet in a thread (after a jitter buffer)
and re-encodes every sent frame. An SFU wants neither: DESIGN.md §7 measured ~13 relayed
streams per core that way against ~300 when the payload is forwarded untouched. aiortc
has no public switch for this, so we hook it at the narrowest points we found, all
pinned to aiortc 1.16 (pyproject pins it; tests/voip exercise every hook):

- **Receive**: ``ForwardingReceiver._handle_rtp_packet`` (what the DTLS transport calls
  for each SRTP-decrypted packet) hands each Opus ``RtpPacket`` to a sink and, of
  aiortc's own handling, keeps only the per-SSRC statistics its RTCP receiver reports
  read (``__remote_streams``): no jitter buffer, no depacketizing. ``receive()`` stops
  the decoder thread it starts, so no packet is ever decoded and no frames pile up.
- **Send**: ``ForwardingSender._next_encoded_frame`` (the documented seam between a
  sender's track and its RTP loop; aiortc itself uses it for pre-encoded ``av.Packet``
  data) returns the forwarded payload as an ``RTCEncodedFrame`` with its RFC 6464 audio
  level. aiortc's loop then does the rest per subscriber: its own SSRC, a continuous
  sequence number, the timestamp offset, the mid and audio-level extensions, the RTX
  history for NACKs, and sender reports. aiortc's sender writes the level with the
  voice-activity bit clear: the level is carried, the V bit is not.
- **Re-offers**: ``SfuPeerConnection.createOffer`` keeps the payload types and header
  extension IDs a browser negotiated (aiortc would renumber them; see there).
- **Recycled m-lines**: ``SfuPeerConnection.setRemoteDescription`` drops a stopped
  transceiver whose m-line a browser's offer reuses (aiortc would let it shadow the
  new one; see there). It reaches aiortc's private transceiver list.
- **Which classes**: ``RTCPeerConnection`` builds its senders and receivers in the
  private ``__createTransceiver``; ``SfuPeerConnection`` overrides that one method (by
  its mangled name) and re-classes the fresh objects to the subclasses above. They add
  behaviour only, no state of their own before ``_attach``, so the swap is safe.

Video (VP8, H.264 packetization-mode 1) takes the same two hooks: the receiver hands
video packets to a ``video_fanout.VideoPublication`` (whole frames, keyframe gating,
simulcast layers told apart by SSRC and the rtp-stream-id extension, which we add to
aiortc's video extensions so it is negotiated and parsed), and a subscriber's
``FrameTrack`` gives the sender whole frames: one ``RTCEncodedFrame`` of several
payloads, so aiortc sets the marker bit on a frame's last packet only. Keyframe
requests go upstream as PLI through the receiver's own RTCP path
(``_send_rtcp_pli``); a subscriber's PLI or FIR reaches its sender's
``_handle_rtcp_packet`` and is passed on to the publication (NACKs stay with aiortc,
which retransmits from the sender's history). The receiver's REMB (aiortc sends one
when goog-remb is negotiated) is capped at the track's maximum bitrate.

Packets wait in a subscriber's ``PacketTrack`` only until its sender task runs (the same
loop turn or the next): no jitter buffer is held in the server. A slow subscriber loses
its oldest packets (bounded deque) rather than growing memory or delaying others.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from typing import Callable, Optional

from aiortc import RTCPeerConnection
from aiortc import rtcpeerconnection as _aiortc_pc
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCEncodedFrame, RTCRtpSender
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import (RTCP_PSFB_APP, RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket,
                        RtpPacket, pack_remb_fci)

from voip.sfu.fanout import ForwardedPacket
from voip.sfu.video import H264, VIDEO_CLOCK_RATE, VP8, LayerChoice, SimulcastPreference, \
    TimestampRewriter
from voip.sfu.video_fanout import ForwardedFrame

# The hooks below name aiortc internals; refuse to start on a version without them
# rather than forward nothing (setup.cfg pins aiortc 1.16.x).
for _owner, _name in ((RTCPeerConnection, "_RTCPeerConnection__createTransceiver"),
                      (RTCPeerConnection, "_RTCPeerConnection__createDtlsTransport"),
                      (_aiortc_pc, "CODECS"), (_aiortc_pc, "HEADER_EXTENSIONS"),
                      (RTCRtpSender, "_next_encoded_frame"),
                      (RTCRtpTransceiver, "_get_mline_index"),
                      (RTCRtpReceiver, "_RTCRtpReceiver__stop_decoder"),
                      (RTCRtpReceiver, "_run_rtcp"),
                      (RTCRtpReceiver, "_handle_rtp_packet"),
                      (RTCRtpReceiver, "_send_rtcp_pli")):
    if not hasattr(_owner, _name):
        raise ImportError(f"aiortc {_owner.__name__} has no {_name}: the SFU's forwarding "
                          "hooks need aiortc 1.16")


OPUS_CLOCK_RATE = 48000
#: the codecs forwarded, by lower-case MIME type (H.264 only in packetization-mode 1:
#: aiortc offers no other)
FORWARDED = {"audio/opus": OPUS_CLOCK_RATE, VP8: VIDEO_CLOCK_RATE, H264: VIDEO_CLOCK_RATE}

# Simulcast streams are told apart by the rtp-stream-id extension (RFC 8852): make
# aiortc negotiate and parse it on video (an ID no aiortc default uses).
RID_EXTENSION = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
if not any(e.uri == RID_EXTENSION for e in _aiortc_pc.HEADER_EXTENSIONS["video"]):
    _aiortc_pc.HEADER_EXTENSIONS["video"].append(
        RTCRtpHeaderExtensionParameters(id=10, uri=RID_EXTENSION))


class PacketTrack(MediaStreamTrack):
    """What a subscriber's sender reads: forwarded packets of one publication, in order."""

    kind = "audio"

    def __init__(self, capacity: int = 25) -> None:
        super().__init__()
        self._queue: collections.deque = collections.deque(maxlen=capacity)
        self._waiter: asyncio.Future | None = None
        #: one continuous RTP clock for this subscriber across source switches
        self.rewriter = TimestampRewriter(OPUS_CLOCK_RATE)

    def push(self, packet: ForwardedPacket) -> None:
        self._queue.append(packet)  # a full deque drops its oldest packet
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> ForwardedPacket:  # type: ignore[override]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class FrameTrack(PacketTrack):
    """What a subscriber's video sender reads: whole frames of the layer its
    ``choice`` admits (set by the publication it is attached to, ``source``)."""

    kind = "video"

    def __init__(self, capacity: int = 30) -> None:
        super().__init__(capacity)
        self.rewriter = TimestampRewriter(VIDEO_CLOCK_RATE)
        self.choice = LayerChoice()
        self.preference = SimulcastPreference()
        self.source = None  # the VideoPublication feeding it

    def push(self, frame: ForwardedFrame) -> None:  # type: ignore[override]
        if len(self._queue) == self._queue.maxlen:
            # a subscriber this far behind would decode garbage from here: start over
            # at a keyframe rather than drop a frame others refer to
            self._queue.clear()
            self.choice.restart()
            if self.source is not None:
                self.source.keyframe_lost(self)
            return
        super().push(frame)

    def keyframe_lost(self) -> None:
        if self.source is not None:
            self.source.keyframe_lost(self)


class ForwardingSender(RTCRtpSender):
    """An RTCRtpSender whose frames are forwarded payloads (see module doc)."""

    on_rtcp: Optional[Callable[[], None]] = None
    #: where the time each packet waited in the SFU is recorded (activity.DelayHistogram)
    delays = None

    async def _next_encoded_frame(self, codec) -> Optional[RTCEncodedFrame]:
        packet = await self.track.recv()
        if not self._enabled:
            return None
        if self.delays is not None:
            self.delays.record(time.monotonic() - packet.arrival)
        timestamp = self.track.rewriter.rewrite(packet.source, packet.timestamp,
                                                packet.arrival)
        if isinstance(packet, ForwardedFrame):
            return RTCEncodedFrame(packet.payloads, timestamp, None)
        # aiortc writes the extension as -audio_level (it expects dBov <= 0)
        level = None if packet.level is None else -packet.level
        return RTCEncodedFrame([packet.payload], timestamp, level)

    async def _handle_rtcp_packet(self, packet) -> None:
        if self.on_rtcp is not None:
            self.on_rtcp()
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR) \
                and isinstance(self.track, FrameTrack):
            self.track.keyframe_lost()
        await super()._handle_rtcp_packet(packet)


class ForwardingReceiver(RTCRtpReceiver):
    """An RTCRtpReceiver that hands Opus, VP8 and H.264 packets to ``sink`` and never
    decodes."""

    sink: Optional[Callable[[RtpPacket], None]] = None
    on_inbound: Optional[Callable[[], None]] = None
    #: the REMB we send the publisher is capped at this (bits/s; None: aiortc's)
    max_bitrate: Optional[int] = None
    #: payload type → clock rate, of the payload types forwarded
    _forward_types: dict = {}

    @property
    def codec(self) -> Optional[str]:
        """The forwarded codec negotiated here (lower-case MIME type), if any."""
        return getattr(self, "_forward_codec", None)

    async def receive(self, parameters) -> None:
        forwarded = [c for c in parameters.codecs if c.mimeType.lower() in FORWARDED]
        self._forward_types = {c.payloadType: FORWARDED[c.mimeType.lower()]
                               for c in forwarded}
        self._forward_codec = forwarded[0].mimeType.lower() if forwarded else None
        await super().receive(parameters)
        # receive() started a decoder thread; nothing is decoded in an SFU
        self._RTCRtpReceiver__stop_decoder()

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if self.on_inbound is not None:
            self.on_inbound()
        clock_rate = self._forward_types.get(packet.payload_type)
        if clock_rate is None:
            # RTX, padding probes and unknown types: nothing to forward (aiortc's path
            # feeds a decoder that is stopped)
            await super()._handle_rtp_packet(packet, arrival_time_ms)
            return
        if clock_rate == VIDEO_CLOCK_RATE:
            await self._estimate_bitrate(packet, arrival_time_ms)
        sink = self.sink
        if sink is not None and packet.payload and self._enabled:
            sink(packet)
        # Of aiortc's own handling keep only the statistics its RTCP receiver reports
        # are made of: its jitter buffer cost ~40 µs a packet (profiled) for frames
        # nobody decodes.
        streams = self._RTCRtpReceiver__remote_streams
        stats = streams.get(packet.ssrc)
        if stats is None:
            stats = streams[packet.ssrc] = StreamStatistics(clock_rate)
        stats.add(packet)

    async def _estimate_bitrate(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """aiortc's REMB feedback to the publisher, capped at ``max_bitrate``."""
        # instance attributes of aiortc 1.16's receiver (set in its __init__)
        estimator = getattr(self, "_RTCRtpReceiver__remote_bitrate_estimator", None)
        rtcp_ssrc = getattr(self, "_RTCRtpReceiver__rtcp_ssrc", None)
        if estimator is None or packet.extensions.abs_send_time is None:
            return
        remb = estimator.add(abs_send_time=packet.extensions.abs_send_time,
                             arrival_time_ms=arrival_time_ms,
                             payload_size=len(packet.payload) + packet.padding_size,
                             ssrc=packet.ssrc)
        if rtcp_ssrc is not None and remb is not None:
            bitrate, ssrcs = remb
            if self.max_bitrate is not None:
                bitrate = min(bitrate, self.max_bitrate)
            await self._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc,
                                                 media_ssrc=0,
                                                 fci=pack_remb_fci(bitrate, ssrcs)))

    def request_keyframe(self, ssrc: int) -> None:
        """Send the publisher a PLI for stream ``ssrc`` (RFC 4585 §6.3.1)."""
        asyncio.ensure_future(self._send_rtcp_pli(ssrc))

    async def _handle_rtcp_packet(self, packet) -> None:
        if self.on_inbound is not None:
            self.on_inbound()
        await super()._handle_rtcp_packet(packet)


class SfuPeerConnection(RTCPeerConnection):
    """An RTCPeerConnection whose transceivers forward instead of transcoding, and whose
    host candidates are limited to ``host_addresses`` (all interfaces when empty)."""

    def __init__(self, configuration=None, *, host_addresses: tuple[str, ...] = (),
                 on_inbound: Optional[Callable[[], None]] = None) -> None:
        super().__init__(configuration)
        self._host_addresses = host_addresses
        self._on_inbound = on_inbound

    def _RTCPeerConnection__createTransceiver(self, direction, kind, sender_track=None):
        transceiver = super()._RTCPeerConnection__createTransceiver(
            direction, kind, sender_track)
        transceiver.sender.__class__ = ForwardingSender
        transceiver.receiver.__class__ = ForwardingReceiver
        transceiver.sender.on_rtcp = self._on_inbound
        transceiver.receiver.on_inbound = self._on_inbound
        return transceiver

    async def setRemoteDescription(self, sessionDescription):
        """Apply a remote description, retiring transceivers whose m-line it recycles.

        A browser that stopped a transceiver (partytracks closing a track) reuses that
        rejected m-line for its next new transceiver, under a new mid (JSEP §5.2.2).
        aiortc finds transceivers by m-line index in setLocalDescription, so the dead
        transceiver would shadow the new one: it takes the new mid and the new track's
        packets go nowhere. Stop the dead one and drop it first, as JSEP does.
        """
        if sessionDescription.type == "offer":
            offered = aiortc_sdp.SessionDescription.parse(sessionDescription.sdp).media
            transceivers = self._RTCPeerConnection__transceivers
            for transceiver in list(transceivers):
                index = transceiver._get_mline_index()
                if transceiver.mid is not None and index is not None \
                        and index < len(offered) \
                        and offered[index].rtp.muxId != transceiver.mid:
                    await transceiver.stop()
                    transceivers.remove(transceiver)
        return await super().setRemoteDescription(sessionDescription)

    async def createOffer(self):
        """An offer that keeps the numbering already negotiated.

        aiortc's createOffer resets every transceiver to its own defaults (Opus as
        payload type 96, header extension IDs 1 and 2). A browser that offered first
        negotiated its own numbers (Opus 111, audio level as ID 1, mid as 4…) and rejects
        a re-offer that renumbers a negotiated m-line or collides within the BUNDLE
        group, so pulling a track would fail. Offer every transceiver of a kind with
        what the first negotiated one of that kind uses: aiortc reads these tables
        only in createOffer, which never awaits, so swapping them around the call
        affects this offer alone. Codecs of other types a pulled transceiver needs are
        added in free payload types (``_with_defaults``).
        """
        negotiated: dict[str, tuple[list, list]] = {}
        for transceiver in self.getTransceivers():
            if transceiver.currentDirection is not None and transceiver._codecs:
                negotiated.setdefault(transceiver.kind, (list(transceiver._codecs),
                                                         list(transceiver._headerExtensions)))
        saved = _aiortc_pc.CODECS, _aiortc_pc.HEADER_EXTENSIONS
        codecs, extensions = dict(saved[0]), dict(saved[1])
        taken = {c.payloadType for kind_codecs, _ in negotiated.values() for c in kind_codecs}
        wanted = {getattr(t, "forward_codec", None) for t in self.getTransceivers()}
        for kind, (kind_codecs, kind_extensions) in negotiated.items():
            codecs[kind], extensions[kind] = kind_codecs, kind_extensions
            if {w for w in wanted if w and w.startswith(kind + "/")} \
                    - {c.mimeType.lower() for c in kind_codecs}:
                codecs[kind] = _with_defaults(kind_codecs, saved[0][kind], taken)
        # a pulled video transceiver offers its source's codec only, as numbered here
        for transceiver in self.getTransceivers():
            wanted = getattr(transceiver, "forward_codec", None)
            if wanted is not None:
                transceiver._preferred_codecs = _capabilities(codecs[transceiver.kind], wanted)
        _aiortc_pc.CODECS, _aiortc_pc.HEADER_EXTENSIONS = codecs, extensions
        try:
            return await super().createOffer()
        finally:
            _aiortc_pc.CODECS, _aiortc_pc.HEADER_EXTENSIONS = saved

    def _RTCPeerConnection__createDtlsTransport(self):
        dtls = super()._RTCPeerConnection__createDtlsTransport()
        if self._host_addresses:
            _only_addresses(dtls.transport.iceGatherer._connection, self._host_addresses)
        return dtls


def _with_defaults(negotiated: list, defaults: list, taken: set[int]) -> list:
    """``negotiated`` codecs plus aiortc's ``defaults`` of other MIME types (and their
    RTX), renumbered into dynamic payload types not ``taken`` in the BUNDLE group: a
    session that negotiated VP8 can still be offered H.264 for a pulled track."""
    mimes = {c.mimeType.lower() for c in negotiated}
    free = iter(sorted(set(range(96, 128)) - taken))
    added, renumbered = [], {}
    for codec in defaults:
        if is_rtx(codec) or codec.mimeType.lower() in mimes:
            continue
        pt = next(free, None)
        if pt is None:
            break
        renumbered[codec.payloadType] = pt
        added.append(dataclasses.replace(codec, payloadType=pt))
    for codec in defaults:
        apt = codec.parameters.get("apt") if is_rtx(codec) else None
        if apt in renumbered:
            pt = next(free, None)
            if pt is None:
                break
            added.append(dataclasses.replace(
                codec, payloadType=pt, parameters={**codec.parameters, "apt": renumbered[apt]}))
    return negotiated + added


def _capabilities(table: list, mime: str) -> list[RTCRtpCodecCapability]:
    """Codec preferences naming the ``mime`` entries of ``table`` (and RTX)."""
    chosen = [RTCRtpCodecCapability(mimeType=c.mimeType, clockRate=c.clockRate,
                                    channels=c.channels, parameters=c.parameters)
              for c in table if c.mimeType.lower() == mime]
    if any(is_rtx(c) for c in table):
        chosen.append(RTCRtpCodecCapability(mimeType=mime.split("/")[0] + "/rtx",
                                            clockRate=chosen[0].clockRate if chosen else 90000))
    return chosen


def _only_addresses(connection, configured: tuple[str, ...]) -> None:
    """Make an aioice Connection gather host candidates on ``configured`` addresses only
    (aioice takes every interface's address and has no option for this)."""
    gather = connection.get_component_candidates

    async def on_configured(component, addresses=None, timeout=5):
        return await gather(component=component, addresses=list(configured), timeout=timeout)

    connection.get_component_candidates = on_configured
