"""Speaking and muted, from the RFC 6464 audio level each packet carries (pure).

The client-to-mixer audio level header extension (RFC 6464 §3) holds the level of the
packet's audio in -dBov, 0 (loudest) to 127 (silence), and a voice-activity bit. We
never decode, so this is all the SFU knows about the sound. A track is *speaking* while
recent packets are louder than ``SPEAKING_LEVEL``; it is *muted* when nothing arrived for
``MUTE_AFTER_S`` (a muted browser track stops sending, or sends DTX frames every 400 ms)
or when every packet of the last ``MUTE_AFTER_S`` was digital silence (level 127, what a
disabled WebRTC track sends).

The policer keeps a publisher to the bitrate it was allowed: a token bucket holding one
second's worth of bytes; packets beyond it are dropped, not queued.
"""

from __future__ import annotations

#: -dBov; louder than this (a smaller number) counts as speech
SPEAKING_LEVEL = 50
#: how long speech keeps ``speaking`` set after the last loud packet
SPEAKING_HOLD_S = 0.5
SILENT = 127
MUTE_AFTER_S = 1.0


class TrackActivity:
    """The speaking/muted state of one published audio track."""

    __slots__ = ("level", "last_packet_at", "last_loud_at", "last_sound_at", "packets")

    def __init__(self) -> None:
        self.level: int = SILENT
        self.last_packet_at: float | None = None
        self.last_loud_at: float | None = None
        self.last_sound_at: float | None = None
        self.packets = 0

    def observe(self, now: float, level: int | None) -> None:
        """One packet arrived at ``now`` with audio level ``level`` (None: no extension)."""
        self.packets += 1
        self.last_packet_at = now
        if level is None:
            self.last_sound_at = now  # without levels we cannot tell silence from sound
            return
        self.level = level
        if level < SILENT:
            self.last_sound_at = now
        if level < SPEAKING_LEVEL:
            self.last_loud_at = now

    def speaking(self, now: float) -> bool:
        return (not self.muted(now) and self.last_loud_at is not None
                and now - self.last_loud_at <= SPEAKING_HOLD_S)

    def muted(self, now: float) -> bool:
        if self.last_packet_at is None or now - self.last_packet_at > MUTE_AFTER_S:
            return True
        return self.last_sound_at is None or now - self.last_sound_at > MUTE_AFTER_S

    def describe(self, now: float) -> dict:
        return {"audioLevel": self.level, "speaking": self.speaking(now),
                "muted": self.muted(now)}


class BitratePolicer:
    """A token bucket of ``bits_per_s``; ``allow`` says whether a packet may pass."""

    __slots__ = ("_rate", "_tokens", "_at", "dropped")

    def __init__(self, bits_per_s: int) -> None:
        self._rate = bits_per_s / 8.0  # bytes per second
        self._tokens = self._rate  # one second of burst
        self._at: float | None = None
        self.dropped = 0

    def allow(self, now: float, size: int) -> bool:
        if self._at is not None:
            self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if size > self._tokens:
            self.dropped += 1
            return False
        self._tokens -= size
        return True


class DelayHistogram:
    """How long forwarded packets waited inside the SFU: 0.1 ms buckets up to 100 ms,
    then one overflow bucket. Cheap enough to record every packet."""

    BUCKET_S = 0.0001
    BUCKETS = 1000

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (self.BUCKETS + 1)
        self.total = 0

    def record(self, seconds: float) -> None:
        index = int(seconds / self.BUCKET_S) if seconds > 0 else 0
        self.counts[index if index < self.BUCKETS else self.BUCKETS] += 1
        self.total += 1

    def percentile_ms(self, q: float) -> float | None:
        """The upper edge of the bucket holding the ``q`` quantile (None: no packets;
        ``inf``: beyond 100 ms)."""
        if not self.total:
            return None
        rank = q * self.total
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return float("inf") if index == self.BUCKETS else (index + 1) * 0.1
        return float("inf")

    def describe(self) -> dict:
        p50, p99 = self.percentile_ms(0.5), self.percentile_ms(0.99)
        return {"packets": self.total,
                "delayP50Ms": p50 if p50 != float("inf") else None,
                "delayP99Ms": p99 if p99 != float("inf") else None}
