"""One published video track's data path: whole frames per layer, keyframe gating,
per-subscriber layer choice (no aiortc import: packets come from forwarding.py's
receivers, keyframe requests go out through the ``request_keyframe`` callback).

A publication has one *layer* per RTP stream it receives: one for a plain track, one
per rid for simulcast (RFC 8853; the rid comes from the rtp-stream-id header
extension, which browsers send on a stream's first packets only, so it is remembered
per SSRC). Each subscriber output holds its own ``LayerChoice`` and
``SimulcastPreference``.
"""

from __future__ import annotations

import time
from typing import Callable

from voip.sfu.video import Frame, FrameAssembler, KeyframeThrottle


class ForwardedFrame:
    """A frame on its way to subscribers: its payloads and timestamp, where it came
    from (``source``: publication and layer, for timestamp continuity) and when it
    arrived (time.monotonic)."""

    __slots__ = ("payloads", "timestamp", "source", "arrival")

    def __init__(self, frame: Frame, source, arrival: float) -> None:
        self.payloads = list(frame.payloads)
        self.timestamp = frame.timestamp
        self.source = source
        self.arrival = arrival


class Layer:
    """One RTP stream of a publication (a simulcast rid, or the only one)."""

    def __init__(self, rid: str, ssrc: int, codec: str) -> None:
        self.rid = rid
        self.ssrc = ssrc
        self.assembler = FrameAssembler(codec)
        self.throttle = KeyframeThrottle()
        #: frames are held back until a keyframe after a loss (or at the start)
        self.needs_keyframe = True


class VideoPublication:
    """Police, gate and fan out one published video track (see module doc).

    ``outputs`` are subscribers' frame tracks (``forwarding.FrameTrack``), each with a
    ``choice`` (LayerChoice) and ``preference`` (SimulcastPreference);
    ``request_keyframe(ssrc)`` sends a PLI to the publisher.
    """

    kind = "video"

    def __init__(self, codec: str, activity, policer, now: Callable[[], float],
                 request_keyframe: Callable[[int], None]) -> None:
        self.codec = codec
        self.activity = activity
        self.policer = policer
        self.outputs: list = []
        self.layers: dict[str, Layer] = {}
        self.forwarded = 0
        self._rid_of: dict[int, str] = {}
        self._now = now
        self._request_keyframe = request_keyframe

    # -- publisher side -----------------------------------------------------------------
    def on_rtp(self, packet) -> None:
        """An aiortc ``RtpPacket`` of this track arrived (decrypted, parsed)."""
        now = self._now()
        self.activity.observe(now, None)
        rid = packet.extensions.rtp_stream_id
        if rid is not None:
            self._rid_of[packet.ssrc] = rid
        else:
            rid = self._rid_of.get(packet.ssrc, "")
        layer = self.layers.get(rid)
        if layer is None or layer.ssrc != packet.ssrc:  # new stream (or it restarted)
            layer = self.layers[rid] = Layer(rid, packet.ssrc, self.codec)
            self._retarget_all()
        frame = layer.assembler.push(packet.sequence_number, packet.timestamp,
                                     bool(packet.marker), packet.payload)
        if layer.assembler.lost:
            layer.assembler.lost = False
            layer.needs_keyframe = True
            self.request_keyframe(rid)
        if frame is None:
            return
        if not self.policer.allow(now, frame.size):
            layer.needs_keyframe = True  # what follows refers to the dropped frame
            return
        if layer.needs_keyframe:
            if not frame.keyframe:
                self.request_keyframe(rid)
                return
            layer.needs_keyframe = False
        self.fan_out(ForwardedFrame(frame, (id(self), rid), time.monotonic()), rid,
                     frame.keyframe)

    def fan_out(self, frame: ForwardedFrame, rid: str, keyframe: bool) -> None:
        self.forwarded += 1
        for output in self.outputs:
            if output.choice.admit(rid, keyframe):
                output.push(frame)

    def request_keyframe(self, rid: str | None) -> None:
        """Ask the publisher for a keyframe of layer ``rid`` (throttled)."""
        layer = self.layers.get(rid) if rid is not None else None
        if layer is not None and layer.throttle.allow(self._now()):
            self._request_keyframe(layer.ssrc)

    # -- subscriber side ----------------------------------------------------------------
    def rids(self) -> list[str]:
        return sorted(self.layers)

    def attach(self, output) -> None:
        """A subscriber starts pulling this track: it waits for a keyframe."""
        output.choice.restart()
        output.source = self
        self.outputs.append(output)
        self.retarget(output, force=True)

    def detach(self, output) -> None:
        if output in self.outputs:
            self.outputs.remove(output)

    def retarget(self, output, *, force: bool = False) -> None:
        """Apply ``output.preference`` to the layers being sent; ask for a keyframe
        of the target when the subscriber must switch (or start)."""
        needs = output.choice.retarget(output.preference.target(self.rids()))
        if needs or (force and output.choice.target is not None):
            self.request_keyframe(output.choice.target)

    def _retarget_all(self) -> None:
        for output in self.outputs:
            self.retarget(output)

    def keyframe_lost(self, output) -> None:
        """A subscriber's decoder lost its picture (PLI/FIR): it needs a keyframe."""
        current = output.choice.current
        self.request_keyframe(current if current is not None else output.choice.target)

    def close(self) -> None:
        self.outputs.clear()
