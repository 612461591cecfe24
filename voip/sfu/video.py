"""Video forwarding decisions (pure; DESIGN.md §3): keyframes, frames, layers, clocks.

The SFU forwards encoded video as it forwards Opus: payloads untouched, one subscriber's
stream continuous in SSRC, sequence number and timestamp (aiortc's sender numbers the
packets; ``TimestampRewriter`` keeps the clock continuous across source switches). What
video adds is that a decoder needs a keyframe to start and after any loss, so:

- packets are gathered into whole frames (``FrameAssembler``); a frame with a missing
  packet is dropped and the layer waits for its next keyframe, which the SFU asks the
  publisher for (``KeyframeThrottle`` bounds how often);
- a subscriber starts, or moves to another track or simulcast layer, only at a
  keyframe of what it moves to (``LayerChoice``); until then it keeps what it had.

Keyframes are recognised without decoding: VP8 from the payload descriptor and the
first byte of the VP8 payload header (RFC 7741 §4.2–4.3), H.264 from the NAL unit type
(IDR 5, SPS 7, PPS 8; inside STAP-A and FU-A too; RFC 6184 §5.7–5.8).
No I/O, no aiortc, no twisted.
"""

from __future__ import annotations

import dataclasses
from typing import Hashable

VP8 = "video/vp8"
H264 = "video/h264"
VIDEO_CLOCK_RATE = 90000

_H264_KEY_NAL_TYPES = frozenset((5, 7, 8))
_STAP_A, _FU_A = 24, 28


def _vp8_payload_offset(payload: bytes) -> int | None:
    """Where the VP8 payload starts after the payload descriptor (RFC 7741 §4.2)."""
    if not payload:
        return None
    offset = 1
    if payload[0] & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            return None
        ext = payload[1]
        offset = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits (M)
            if len(payload) <= offset:
                return None
            offset += 2 if payload[offset] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            offset += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            offset += 1
    return offset if offset < len(payload) else None


def vp8_frame_start(payload: bytes) -> bool:
    """The packet begins a VP8 frame: S set and partition index 0."""
    return bool(payload) and payload[0] & 0x10 != 0 and payload[0] & 0x07 == 0


def is_vp8_keyframe(payload: bytes) -> bool:
    """The packet begins a VP8 key frame (P bit clear in the payload header)."""
    if not vp8_frame_start(payload):
        return False
    offset = _vp8_payload_offset(payload)
    return offset is not None and payload[offset] & 0x01 == 0


def _h264_nal_types(payload: bytes) -> list[int]:
    """NAL unit types a packet starts: one, those aggregated in a STAP-A, or the
    fragmented one of an FU-A's first fragment."""
    if not payload:
        return []
    nal_type = payload[0] & 0x1F
    if nal_type == _STAP_A:
        types, offset = [], 1
        while offset + 2 < len(payload):
            size = int.from_bytes(payload[offset:offset + 2], "big")
            if size == 0 or offset + 2 + size > len(payload):
                break
            types.append(payload[offset + 2] & 0x1F)
            offset += 2 + size
        return types
    if nal_type == _FU_A:
        if len(payload) < 2 or not payload[1] & 0x80:  # not the first fragment
            return []
        return [payload[1] & 0x1F]
    return [nal_type]


def is_h264_keyframe(payload: bytes) -> bool:
    """The packet carries an IDR slice or the SPS/PPS that precede one."""
    return any(t in _H264_KEY_NAL_TYPES for t in _h264_nal_types(payload))


def h264_frame_start(payload: bytes) -> bool:
    """The packet can begin an access unit (not a middle or last FU-A fragment)."""
    if not payload:
        return False
    if payload[0] & 0x1F == _FU_A:
        return len(payload) >= 2 and payload[1] & 0x80 != 0
    return True


def is_keyframe(codec: str, payload: bytes) -> bool:
    return is_vp8_keyframe(payload) if codec == VP8 else is_h264_keyframe(payload)


def frame_start(codec: str, payload: bytes) -> bool:
    return vp8_frame_start(payload) if codec == VP8 else h264_frame_start(payload)


@dataclasses.dataclass(frozen=True)
class Frame:
    """One whole encoded frame: its RTP payloads in order and its RTP timestamp."""

    payloads: tuple[bytes, ...]
    timestamp: int
    keyframe: bool

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.payloads)


class FrameAssembler:
    """Gathers one RTP stream's packets into whole frames.

    Packets of a frame share a timestamp and the last one has the marker bit. A frame is
    whole when its first packet starts a frame and no sequence number is missing; a
    frame that is not (a packet lost, reordered past its frame, or late) is dropped and
    ``lost`` is set so that the caller waits for a keyframe. No NACK round trip is
    waited for: a keyframe request costs one frame of latency less than a jitter buffer.
    """

    def __init__(self, codec: str) -> None:
        self.codec = codec
        self._payloads: list[bytes] = []
        self._timestamp: int | None = None
        self._last_seq: int | None = None
        self._broken = False
        self._keyframe = False
        #: a frame was dropped since the caller last cleared this
        self.lost = False

    def push(self, seq: int, timestamp: int, marker: bool, payload: bytes) -> Frame | None:
        """One packet in; the frame it completes, if any."""
        if self._last_seq is not None:
            delta = (seq - self._last_seq) % 65536
            if delta == 0 or delta > 32768:  # duplicate or older: already handled
                return None
            if delta != 1:  # something is missing: this frame or a whole one before
                self._broken = True
                self.lost = True
        self._last_seq = seq
        if timestamp != self._timestamp:
            if self._payloads:  # the previous frame never saw its marker
                self.lost = True
            self._payloads = []
            self._timestamp = timestamp
            self._broken = not frame_start(self.codec, payload)
            if self._broken:
                self.lost = True
            self._keyframe = False
        if self._broken:
            return None
        self._payloads.append(payload)
        self._keyframe = self._keyframe or is_keyframe(self.codec, payload)
        if not marker:
            return None
        frame = Frame(tuple(self._payloads), timestamp, self._keyframe)
        self._payloads = []
        self._broken = True  # anything more with this timestamp is a stray
        return frame


class KeyframeThrottle:
    """At most one keyframe request per ``interval`` seconds (per publisher stream):
    every new subscriber and every loss report would otherwise each cost a keyframe,
    the largest frames there are."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


class TimestampRewriter:
    """Maps the RTP timestamps of whichever source feeds a subscriber onto one
    continuous clock: while the source stays, the offset stays; when it changes, the
    new source continues from the last timestamp sent plus the wall time elapsed."""

    def __init__(self, clock_rate: int) -> None:
        self._rate = clock_rate
        self._source: Hashable = None
        self._offset = 0
        self._last_out: int | None = None
        self._last_at = 0.0

    def rewrite(self, source: Hashable, timestamp: int, now: float) -> int:
        if source != self._source:
            if self._last_out is None:
                self._offset = 0
            else:
                step = max(1, round((now - self._last_at) * self._rate))
                self._offset = (self._last_out + step - timestamp) % 2**32
            self._source = source
        out = (timestamp + self._offset) % 2**32
        if out != self._last_out:
            self._last_out, self._last_at = out, now
        return out


@dataclasses.dataclass(frozen=True)
class SimulcastPreference:
    """A subscriber's simulcast choice, in the Cloudflare Realtime shape
    (``simulcast: {preferredRid, priorityOrdering, ridNotAvailable}``): the layer it
    wants and, when that one is not being sent, whether to take the next available
    one in ASCII order ("asciibetical") or nothing ("none")."""

    preferred_rid: str | None = None
    fallback: bool = True

    def target(self, available: list[str]) -> str | None:
        """The layer to forward, of the ``available`` rids (sorted); None: none."""
        if not available:
            return None
        if available == [""]:  # not simulcast: the one stream, whatever was asked
            return ""
        if self.preferred_rid is None or self.preferred_rid in available:
            return self.preferred_rid if self.preferred_rid is not None else available[0]
        if not self.fallback:
            return None
        after = [rid for rid in available if rid > self.preferred_rid]
        return (after or available)[0]


class LayerChoice:
    """Which layer one subscriber is forwarded, switching only at keyframes.

    ``current`` is the layer whose frames go out (None: nothing yet, waiting for a
    keyframe); ``target`` the one wanted. Frames of ``target`` start flowing at its
    first keyframe; until then ``current`` keeps flowing, so a switch has no gap.
    """

    def __init__(self) -> None:
        self.current: Hashable = None
        self.target: Hashable = None

    def retarget(self, target: Hashable) -> bool:
        """Aim at ``target``; whether a keyframe of it is now needed."""
        self.target = target
        return target is not None and target != self.current

    def restart(self) -> None:
        """Forget what flows (a new source, or a decoder that lost its picture)."""
        self.current = None

    def admit(self, layer: Hashable, keyframe: bool) -> bool:
        """Whether a frame of ``layer`` goes to this subscriber."""
        if layer == self.target and layer is not None:
            if self.current != self.target:
                if not keyframe:
                    return False
                self.current = self.target
            return True
        return layer == self.current and layer is not None

    @property
    def waiting(self) -> bool:
        return self.target is not None and self.current != self.target
