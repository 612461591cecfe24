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

``DenoiserPool(reactor, threads=2)``
    The shared, bounded set of worker threads (a Twisted ``ThreadPool`` as an
    ``IService``: add it to the service tree so it starts and stops with the server).
    libopus (PyAV) and RNNoise (ctypes) release the GIL while they work, so the threads
    use the cores.

``ThreadedDenoiser(pool, denoiser, max_pending=3).process(payload) -> Deferred[bytes]``
    Runs ``denoiser.process`` off the reactor thread, one payload at a time per speaker
    (a serial queue), and fires the Deferreds in the order the payloads came. When
    ``max_pending`` of this speaker's payloads are already waiting for the pool, a new one
    is not queued for work: it is *passed through* (its Deferred fires with the payload
    itself) — but still in order, right after the packets ahead of it. Order is kept
    because receivers play packets in sequence order: one that overtook its
    predecessors would make them late, and a jitter buffer drops late packets as lost,
    which is worse than a few unsuppressed ones. So when the pool falls behind, a
    speaker's added latency stays bounded by ``max_pending`` packets (60 ms at 20 ms
    packets), and that speaker's backlog stops growing. A payload whose processing fails
    is passed through too (and logged). ``.passed_through`` counts the packets sent
    unsuppressed this way. ``.close() -> Deferred`` stops it: queued payloads finish,
    later ones pass through, and the denoiser's state is freed when the pool is done
    with it (never call ``SpeakerDenoiser.close`` while the pool may be running it).

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

import collections
import ctypes
import weakref
from typing import Any, Callable, Protocol

import numpy as np
from pyrnnoise import rnnoise
from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

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
_log = Logger()


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

    Not thread-safe: one call at a time (``ThreadedDenoiser`` sees to that).
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
        payloads pass through. Not while another thread is in ``process`` (through a
        ``ThreadedDenoiser``, close that instead)."""
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


class WorkerPool(Protocol):
    """What ``ThreadedDenoiser`` needs of a pool: run ``f(*args)`` on some other thread,
    the result (or failure) in a Deferred fired on the reactor thread."""

    def run(self, f: Callable[..., Any], *args: Any) -> defer.Deferred: ...


class DenoiserPool(service.Service):
    """A bounded pool of worker threads shared by every speaker's ``ThreadedDenoiser``.

    Its queue needs no bound of its own: each speaker has at most one payload in it.
    """

    name = "denoiser-pool"

    def __init__(self, reactor: Any, threads: int = 2) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=threads, name="denoise")

    def startService(self) -> None:
        super().startService()
        self._pool.start()

    def stopService(self) -> None:
        super().stopService()
        # joins the workers, each finishing the payload it holds (a millisecond or so);
        # work queued after this is never run
        self._pool.stop()

    def run(self, f: Callable[..., Any], *args: Any) -> defer.Deferred:
        if not self.running:
            # a stopped pool would hold the work for ever, and the speaker's queue with it
            return defer.fail(RuntimeError("the denoiser pool is not running"))
        return threads.deferToThreadPool(self._reactor, self._pool, f, *args)


class ThreadedDenoiser:
    """A ``SpeakerDenoiser`` run on a ``WorkerPool``, in order; see the module docstring."""

    def __init__(self, pool: WorkerPool, denoiser: SpeakerDenoiser,
                 max_pending: int = 3) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._pool = pool
        self._denoiser = denoiser
        self._max_pending = max_pending
        # (payload, whether to denoise it, its Deferred), oldest first; the head is
        # in the pool while _busy
        self._queue: collections.deque[tuple[bytes, bool, defer.Deferred]] = (
            collections.deque())
        self._busy = False
        self._pending_work = 0
        self._closing: list[defer.Deferred] | None = None
        self.passed_through = 0

    @property
    def vad_probability(self) -> float:
        return self._denoiser.vad_probability

    @property
    def audio_level(self) -> int:
        return self._denoiser.audio_level

    def process(self, payload: bytes) -> defer.Deferred:
        """A Deferred firing with the payload to forward, in the order of the calls."""
        result: defer.Deferred = defer.Deferred()
        work = self._closing is None and self._pending_work < self._max_pending
        if work:
            self._pending_work += 1
        else:
            self.passed_through += 1
        self._queue.append((payload, work, result))
        self._pump()
        return result

    def close(self) -> defer.Deferred:
        """Stop denoising (for a speaker who left or turned suppression off): payloads
        already queued are still denoised, later ones pass through, and the denoiser's
        state is freed once the pool is done with it; the Deferred fires then."""
        closed: defer.Deferred = defer.Deferred()
        if self._closing is None:
            self._closing = []
        self._closing.append(closed)
        self._pump()
        return closed

    def _pump(self) -> None:
        while self._queue and not self._busy:
            payload, work, result = self._queue.popleft()
            if not work:
                result.callback(payload)
                continue
            self._busy = True
            self._pool.run(self._denoiser.process, payload).addBoth(
                self._done, payload, result)
        if self._closing and not self._busy and not self._pending_work:
            self._denoiser.close()
            waiting, self._closing = self._closing, []
            for closed in waiting:
                closed.callback(None)

    def _done(self, outcome: bytes | Failure, payload: bytes,
              result: defer.Deferred) -> None:
        self._busy = False
        self._pending_work -= 1
        if isinstance(outcome, Failure):
            _log.failure("noise suppression failed; forwarding the payload as it came",
                         outcome)
            outcome = payload
        result.callback(outcome)
        self._pump()
