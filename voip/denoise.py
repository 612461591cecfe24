"""Server-side noise suppression for one speaker's Opus audio (issue 15, DESIGN §7).

The SFU forwards each speaker's Opus RTP payloads untouched, except for a speaker whose
noise suppression is on in an unencrypted call: each of that speaker's payloads goes once
through a ``SpeakerDenoiser`` (decode → RNNoise → encode) and the result is forwarded to
every subscriber in place of the original, under the same RTP header (same sequence
number, timestamp and duration).

API (what the SFU calls):

``SpeakerDenoiser(sample_rate=48000, channels=1, bitrate=None, complexity=5)``
    One per speaker; keeps that speaker's Opus decoder, RNNoise and Opus encoder state.
    ``channels=1`` (the default) decodes every packet to mono (libopus downmixes a stereo
    packet), denoises once and sends mono packets, which an ``opus/48000/2`` RTP stream
    may carry (each packet's TOC byte says whether it is stereo, RFC 6716 §3.1, and an
    Opus decoder takes either): voice gains nothing from two channels, and RNNoise is
    most of the cost. ``channels=2`` denoises each channel on
    its own and sends stereo. ``bitrate`` defaults to 32 kbit/s per channel.

``SpeakerDenoiser.process(payload: bytes) -> bytes``
    One Opus RTP payload in, one out, of the same duration. 10, 20, 40, 60 ms (any
    multiple of RNNoise's 10 ms frame that Opus can encode) are denoised; the rest are
    returned as they came:

    - ``b""`` means "a packet was lost here" (call it for a sequence gap if you like):
      the decoder conceals the gap so the next packet joins on smoothly, and ``b""`` comes
      back: forward nothing, the receivers conceal the loss themselves;
    - a DTX packet (≤ 2 bytes, RFC 7587 §3.1.3: the sender's silence) is decoded, to keep
      the decoder in step, and forwarded as it is;
    - a payload libopus cannot decode, or of 2.5 or 5 ms frames, is forwarded as it is.

``SpeakerDenoiser.vad_probability``
    RNNoise's speech probability (0–1) for the last denoised packet: the highest over its
    10 ms frames (and channels). 0.0 after a DTX packet or before any packet. Usable as a
    speaking indicator for speakers being denoised.

``SpeakerDenoiser.audio_level``
    The level of the last denoised packet as RFC 6464 puts it in the RTP audio-level
    header extension: 0–127, in -dBov (127 is silence), computed as WebRTC does (RMS
    against int16 full scale). The sender's own header measured the noise too; an SFU
    that rewrites the extension for a denoised speaker can use this.

Running it off the reactor, in order per speaker, is the SFU's
``voip/sfu/suppression.py`` ``DenoiseStage`` (one packet at a time per speaker on a
shared executor; past a small backlog new packets pass through unsuppressed, in order).
libopus (PyAV) and RNNoise (ctypes) release the GIL while they work, so worker threads
use the cores.

Cost (``python -m bench.voip_denoise``, a shared 2-vCPU AMD EPYC VM at load 13–25;
bench/results/voip_denoise-latest.md): 48–55 ms of CPU per speaker-second for decode +
RNNoise + encode, 18–21 speakers per core, one speaker alone or 20 taking turns on one
thread. RNNoise runs on the int8 copy of its weights (``voip/rnnoise_model.py``: 23–27 ms
per audio second alone, against 46–70 on the float copy pyrnnoise's plain-C build would
use); libopus encode at complexity 5 ~10 ms,
decode ~2 ms, Python a few. Latency: RNNoise delays the audio by 20 ms (960 samples,
measured by correlation) and the encoder's lookahead by 6.5 ms, so a suppressed speaker
is heard ~26.5 ms later than a forwarded one, plus the ~1 ms of CPU each 20 ms packet
takes.
"""

from __future__ import annotations

import ctypes
import weakref

import numpy as np
from pyrnnoise import rnnoise

from voip.opus_codec import (ENCODER_FRAME_SAMPLES, SAMPLE_RATE, OpusError,
                             OpusPacketDecoder, OpusPacketEncoder)
from voip.rnnoise_model import create_state

#: RNNoise works on 10 ms frames at 48 kHz
RNNOISE_FRAME = rnnoise.FRAME_SIZE
#: RFC 7587 §3.1.3: an Opus packet of 2 bytes or less carries no audio (DTX)
DTX_MAX_BYTES = 2
DEFAULT_BITRATE_PER_CHANNEL = 32000

#: RFC 6464's audio level of digital silence (-127 dBov)
SILENT_LEVEL = 127

_FLOAT_P = ctypes.POINTER(ctypes.c_float)


def _destroy_states(states: list) -> None:
    for state in states:
        rnnoise.destroy(state)


def rfc6464_level(pcm: np.ndarray) -> int:
    """The RFC 6464 audio level (0 loudest … 127 silent, in -dBov) of PCM on the int16
    scale (int16, or float samples in its range)."""
    samples = np.asarray(pcm, dtype=np.float32).ravel()
    power = float(np.dot(samples, samples)) / samples.size / 32768.0 ** 2
    if power <= 10.0 ** (-SILENT_LEVEL / 10):
        return SILENT_LEVEL
    return min(SILENT_LEVEL, max(0, round(-10 * np.log10(power))))


class SpeakerDenoiser:
    """One speaker's decode → RNNoise → encode pipeline; see the module docstring.

    Not thread-safe: one call at a time (``DenoiseStage`` sees to that).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, channels: int = 1,
                 bitrate: int | None = None, complexity: int = 5) -> None:
        if sample_rate != SAMPLE_RATE:
            # Opus over RTP is always clocked at 48 kHz, and RNNoise works at 48 kHz
            raise ValueError(f"RNNoise and Opus RTP run at 48000 Hz, not {sample_rate}")
        self.channels = channels
        self._bitrate = bitrate or DEFAULT_BITRATE_PER_CHANNEL * channels
        self._complexity = complexity
        self._decoder = OpusPacketDecoder(channels)
        self._encoder: OpusPacketEncoder | None = None
        self._last_payload = b""
        self._states = [create_state() for _ in range(channels)]
        self._buffer = np.zeros((channels, max(ENCODER_FRAME_SAMPLES)), dtype=np.float32)
        row = self._buffer.strides[0]
        self._frame_pointers = [
            [ctypes.cast(self._buffer.ctypes.data + c * row + i * self._buffer.itemsize,
                         _FLOAT_P)
             for i in range(0, self._buffer.shape[1], RNNOISE_FRAME)]
            for c in range(channels)]
        # RNNoise states are C allocations: free them with this object
        self._finalizer = weakref.finalize(self, _destroy_states, self._states)
        self.vad_probability = 0.0
        self.audio_level = SILENT_LEVEL

    def process(self, payload: bytes) -> bytes:
        """The denoised payload of the same duration (or as the module docstring says)."""
        if not self._finalizer.alive:
            return payload  # closed: RNNoise's state is gone
        if not payload:
            self._conceal_loss()
            return b""
        try:
            pcm = self._decoder.decode(payload)
        except OpusError:
            return payload
        self._last_payload = payload
        if len(payload) <= DTX_MAX_BYTES:
            self.vad_probability = 0.0
            self.audio_level = SILENT_LEVEL
            return payload
        samples = pcm.shape[1]
        if samples % RNNOISE_FRAME or samples not in ENCODER_FRAME_SAMPLES:
            return payload
        denoised, self.vad_probability = self._denoise(pcm)
        return self._encoder_for(samples).encode(denoised)

    def close(self) -> None:
        """Free RNNoise's state now rather than when this object is collected; later
        payloads pass through. Not while another thread is in ``process``
        (``DenoiseStage.close`` waits for that)."""
        self._finalizer()

    def _conceal_loss(self) -> None:
        if self._last_payload:
            try:
                self._decoder.conceal(self._last_payload)
            except OpusError:
                pass

    def _denoise(self, pcm: np.ndarray) -> tuple[np.ndarray, float]:
        # RNNoise takes float32 samples on the int16 scale, 480 at a time, and may work
        # in place: one buffer per speaker, with a C pointer to each 10 ms frame of each
        # channel made once. (pyrnnoise's own process_frame casts back to int16 without
        # clipping, which wraps a loud sample round; we clip.)
        samples = pcm.shape[1]
        audio = self._buffer[:, :samples]
        np.copyto(audio, pcm)
        speech = 0.0
        for state, frames in zip(self._states, self._frame_pointers):
            for frame in frames[:samples // RNNOISE_FRAME]:
                speech = max(speech, rnnoise.lib.rnnoise_process_frame(state, frame, frame))
        np.rint(audio, out=audio)
        np.clip(audio, -32768, 32767, out=audio)
        self.audio_level = rfc6464_level(audio)
        return audio.astype(np.int16), float(speech)

    def _encoder_for(self, samples: int) -> OpusPacketEncoder:
        # the speaker's encoder lives as long as their packet duration stays the same
        # (it always does in WebRTC); a change starts a fresh one
        if self._encoder is None or self._encoder.frame_samples != samples:
            self._encoder = OpusPacketEncoder(self.channels, samples, self._bitrate,
                                              self._complexity)
        return self._encoder
