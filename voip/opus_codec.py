"""Opus packets to 48 kHz PCM and back, one RTP payload at a time, over PyAV's libopus.

aiortc's own ``aiortc.codecs.opus`` coders wrap the same libopus but fix the encoder at
20 ms stereo 96 kbit/s and take jitter-buffer frames; a denoiser has to give back a
packet of the *same* duration as each one it was given, so these take raw payloads and
let the caller pick the frame duration, channels, bitrate and complexity.

PCM is ``numpy.int16`` shaped ``(channels, samples)``. Both coders keep libopus's state
between calls: one of each per speaker, used from one thread at a time.

Facts about PyAV's libopus that these rely on (checked with PyAV 18 / libopus 1.5):
the encoder gives exactly one packet for each frame of exactly ``frame_samples``, at
once (its 6.5 ms lookahead shows only as a delay in the audio); the decoder gives the
packet's whole duration at once; an *empty* packet would put the decoder into its
end-of-stream state for good, so a lost packet is concealed with a TOC-only packet
instead (RFC 6716 §3.2.1: a frame of length zero is decoded as lost, by the decoder's
packet loss concealment).
"""

from __future__ import annotations

import fractions

import av
import numpy as np

SAMPLE_RATE = 48000
#: frame durations the libopus encoder takes, in samples at 48 kHz (2.5 ms … 120 ms)
ENCODER_FRAME_SAMPLES = (120, 240, 480, 960, 1920, 2880, 3840, 4800, 5760)
_LAYOUTS = {1: "mono", 2: "stereo"}


class OpusError(ValueError):
    """The payload is not an Opus packet libopus can decode."""


def _check_channels(channels: int) -> str:
    if channels not in _LAYOUTS:
        raise ValueError(f"Opus coders here take 1 or 2 channels, not {channels}")
    return _LAYOUTS[channels]


class OpusPacketDecoder:
    """Decodes one Opus RTP payload at a time to 48 kHz ``int16`` PCM.

    Packets are decoded to ``channels`` whatever their own stereo flag says (libopus
    downmixes a stereo packet for a mono decoder and duplicates a mono one for a stereo
    decoder).
    """

    def __init__(self, channels: int = 1) -> None:
        layout = _check_channels(channels)
        self.channels = channels
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.sample_rate = SAMPLE_RATE
        self._codec.layout = layout
        self._codec.format = "s16"

    def decode(self, payload: bytes) -> np.ndarray:
        """The PCM of one non-empty payload, ``(channels, samples)``; OpusError if bad."""
        if not payload:
            raise OpusError("an empty payload is a lost packet: use conceal()")
        try:
            frames = self._codec.decode(av.Packet(payload))
        except av.error.FFmpegError as e:
            raise OpusError(str(e)) from e
        if not frames:
            raise OpusError("libopus decoded no audio from this payload")
        # s16 is packed (interleaved): one row of samples * channels
        if len(frames) == 1:
            pcm = frames[0].to_ndarray()[0]
        else:
            pcm = np.concatenate([f.to_ndarray()[0] for f in frames])
        return pcm.reshape(-1, self.channels).T

    def conceal(self, like: bytes) -> np.ndarray:
        """Packet loss concealment for one lost packet shaped like ``like`` (the last
        packet received): libopus extrapolates from its state, so the next real packet
        joins on smoothly."""
        # the TOC byte with frame-count code 0 and no frame data: one lost frame of
        # that configuration's duration
        return self.decode(bytes([like[0] & 0xFC]))


class OpusPacketEncoder:
    """Encodes 48 kHz ``int16`` PCM to one Opus packet per frame of ``frame_samples``.

    ``complexity`` is libopus's 0–10 (10 its default); lower costs less CPU for a
    little quality. ``application="voip"`` tunes libopus for speech.
    """

    def __init__(self, channels: int, frame_samples: int, bitrate: int,
                 complexity: int = 5) -> None:
        layout = _check_channels(channels)
        if frame_samples not in ENCODER_FRAME_SAMPLES:
            raise ValueError(f"Opus cannot encode frames of {frame_samples} samples")
        self.channels = channels
        self.frame_samples = frame_samples
        self._layout = layout
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.sample_rate = SAMPLE_RATE
        self._codec.layout = layout
        self._codec.format = "s16"
        self._codec.bit_rate = bitrate
        self._codec.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._codec.options = {
            "application": "voip",
            # libopus's frame durations are in ms, 2.5 and 5 included
            "frame_duration": f"{frame_samples * 1000 / SAMPLE_RATE:g}",
            "compression_level": str(complexity),
        }
        self._codec.open()

    def encode(self, pcm: np.ndarray) -> bytes:
        """One packet for exactly one frame, ``(channels, frame_samples)``."""
        if pcm.shape != (self.channels, self.frame_samples):
            raise ValueError(f"expected PCM shaped {(self.channels, self.frame_samples)}, "
                             f"got {pcm.shape}")
        packed = np.ascontiguousarray(pcm.T, dtype=np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=self._layout)
        frame.sample_rate = SAMPLE_RATE
        packets = self._codec.encode(frame)
        if len(packets) != 1:
            raise RuntimeError(f"libopus gave {len(packets)} packets for one frame")
        return bytes(packets[0])
