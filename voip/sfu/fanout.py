"""One published track's data path: police, observe, (denoise,) fan out (no aiortc
import: the packets come from voip/sfu/forwarding.py's receivers)."""

from __future__ import annotations

import time
from typing import Callable


class ForwardedPacket:
    """One Opus payload on its way to subscribers: payload, RTP timestamp, audio level
    (-dBov 0..127, None without the extension), when it arrived (time.monotonic) and
    the publication it came from (``source``: a subscriber's timestamps stay continuous
    when it is pointed at another one)."""

    __slots__ = ("payload", "timestamp", "level", "arrival", "source")

    def __init__(self, payload: bytes, timestamp: int, level: int | None,
                 arrival: float, source=None) -> None:
        self.payload = payload
        self.timestamp = timestamp
        self.level = level
        self.arrival = arrival
        self.source = source


class Publication:
    """The data path of one published track: police, observe, (denoise,) fan out.

    ``on_rtp`` is the publisher receiver's sink; ``outputs`` are the ``PacketTrack`` of
    every subscriber transceiver (kept in step with the call's Router by calls.Call).
    ``stage``, when set, is an ordered off-loop filter (noise suppression) that calls
    ``fan_out`` with each processed packet.
    """

    codec = "audio/opus"

    def __init__(self, activity, policer, now: Callable[[], float]) -> None:
        self.activity = activity
        self.policer = policer
        self.outputs: list[PacketTrack] = []
        self.stage = None
        self.forwarded = 0
        self._now = now

    def on_rtp(self, packet) -> None:
        """An aiortc ``RtpPacket`` of this track arrived (decrypted, parsed)."""
        now = self._now()
        ext = packet.extensions.audio_level  # (voice activity, -dBov) or None
        level = None if ext is None else ext[1]
        self.activity.observe(now, level)
        if not self.policer.allow(now, len(packet.payload)):
            return
        forwarded = ForwardedPacket(packet.payload, packet.timestamp, level, time.monotonic(),
                                    id(self))
        if self.stage is not None:
            self.stage.submit(forwarded)
        else:
            self.fan_out(forwarded)

    def attach(self, output) -> None:
        self.outputs.append(output)

    def detach(self, output) -> None:
        if output in self.outputs:
            self.outputs.remove(output)

    def fan_out(self, packet: ForwardedPacket) -> None:
        self.forwarded += 1
        for output in self.outputs:
            output.push(packet)

    def close(self) -> None:
        if self.stage is not None:
            self.stage.close()
            self.stage = None
        self.outputs.clear()
