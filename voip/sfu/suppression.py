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

#: packets allowed to wait for a busy denoiser before the oldest is dropped (100 ms)
MAX_BACKLOG = 5


class PayloadDenoiser(Protocol):
    def process(self, payload: bytes) -> bytes: ...


class DenoiseStage:
    """Runs ``denoiser.process`` over packets in arrival order on ``executor``; each
    result goes to ``deliver``."""

    def __init__(self, denoiser: PayloadDenoiser, deliver: Callable[[ForwardedPacket], None],
                 executor: concurrent.futures.Executor) -> None:
        self._denoiser = denoiser
        self._deliver = deliver
        self._executor = executor
        self._backlog: collections.deque[ForwardedPacket] = collections.deque(
            maxlen=MAX_BACKLOG)
        self._task: asyncio.Task | None = None
        self._closed = False

    def submit(self, packet: ForwardedPacket) -> None:
        if self._closed:
            return
        self._backlog.append(packet)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._backlog and not self._closed:
            packet = self._backlog.popleft()
            try:
                payload = await loop.run_in_executor(self._executor, self._denoiser.process,
                                                     packet.payload)
            except Exception:  # never lose the speaker over a bad frame
                logger.exception("noise suppression failed; forwarding the original")
                payload = packet.payload
            if not self._closed:
                self._deliver(ForwardedPacket(payload, packet.timestamp, packet.level,
                                              packet.arrival))

    def close(self) -> None:
        self._closed = True
        self._backlog.clear()
