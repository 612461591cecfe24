"""Optional noise suppression of one speaker's payloads, in order, off the event loop.

The SFU never decodes for forwarding; a speaker who turns noise suppression on (in a
call that is not end-to-end encrypted: we would only see ciphertext) has each Opus
payload decoded, denoised and re-encoded *once* by a per-speaker ``PayloadDenoiser``
(voip/denoise.py ``SpeakerDenoiser``: ``process(payload: bytes) -> bytes``, stateful,
48 kHz, RNNoise on 10 ms frames) before the fan-out. The work runs on an executor, one
packet at a time per speaker (the denoiser is stateful), so neither the reactor nor
other speakers wait on RNNoise. A denoiser failure forwards the original payload.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
from typing import Callable, Protocol

from voip.sfu.fanout import ForwardedPacket

logger = logging.getLogger(__name__)

#: packets of one speaker allowed to wait for the denoiser (100 ms at 20 ms packets);
#: beyond that, new ones pass through unsuppressed, in order
MAX_BACKLOG = 5


class PayloadDenoiser(Protocol):
    def process(self, payload: bytes) -> bytes: ...


class DenoiseStage:
    """Runs ``denoiser.process`` over packets in arrival order on ``executor``; each
    result goes to ``deliver``.

    When ``MAX_BACKLOG`` packets already wait (the executor fell behind), a new packet
    is *passed through* unsuppressed, but still after the packets ahead of it:
    receivers play packets in sequence order, and one that overtook its predecessors
    would make their jitter buffers drop those as late, which is worse than a few
    noisy packets. So a speaker's added latency stays bounded and nothing is lost. A
    denoiser failure forwards the original payload too."""

    def __init__(self, denoiser: PayloadDenoiser, deliver: Callable[[ForwardedPacket], None],
                 executor: concurrent.futures.Executor) -> None:
        self._denoiser = denoiser
        self._deliver = deliver
        self._executor = executor
        #: (packet, denoise it?) in arrival order
        self._backlog: collections.deque[tuple[ForwardedPacket, bool]] = collections.deque()
        self._waiting = 0  # packets in the backlog to be denoised
        self._task: asyncio.Task | None = None
        self._closed = False
        #: packets forwarded unsuppressed because the backlog was full
        self.passed_through = 0

    def submit(self, packet: ForwardedPacket) -> None:
        if self._closed:
            return
        denoise = self._waiting < MAX_BACKLOG
        self._waiting += denoise
        self.passed_through += not denoise
        self._backlog.append((packet, denoise))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._backlog and not self._closed:
                packet, denoise = self._backlog.popleft()
                payload = packet.payload
                if denoise:
                    self._waiting -= 1
                    try:
                        payload = await loop.run_in_executor(
                            self._executor, self._denoiser.process, packet.payload)
                    except Exception:  # never lose the speaker over a bad frame
                        logger.exception("noise suppression failed; forwarding the original")
                        payload = packet.payload
                if not self._closed:
                    self._deliver(ForwardedPacket(payload, packet.timestamp, packet.level,
                                                  packet.arrival))
        finally:
            if self._closed:
                self._free()

    def close(self) -> None:
        """Stop: queued packets are dropped; the denoiser's state is freed once no
        worker thread is in it (now, or when the packet in flight returns)."""
        self._closed = True
        self._backlog.clear()
        self._waiting = 0
        if self._task is None or self._task.done():
            self._free()

    def _free(self) -> None:
        close = getattr(self._denoiser, "close", None)
        if close is not None:
            close()
