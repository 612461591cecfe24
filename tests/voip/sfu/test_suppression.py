"""voip/sfu/suppression.py: payloads denoised in order, off the loop, never lost."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from twisted.trial import unittest

from tests.e2e.harness import as_deferred
from voip.sfu.forwarding import ForwardedPacket
from voip.sfu.suppression import MAX_BACKLOG, DenoiseStage


class RecordingDenoiser:
    """Upper-cases payloads and notes the thread it ran on; fails on b'bad'."""

    def __init__(self):
        self.threads = set()

    def process(self, payload: bytes) -> bytes:
        self.threads.add(threading.get_ident())
        if payload == b"bad":
            raise ValueError("undecodable")
        return payload.upper()


class DenoiseStageTest(unittest.TestCase):
    def setUp(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(2)
        self.addCleanup(self.pool.shutdown)

    def run_stage(self, payloads):
        denoiser, delivered = RecordingDenoiser(), []
        stage = DenoiseStage(denoiser, delivered.append, self.pool)

        async def go():
            for i, payload in enumerate(payloads):
                stage.submit(ForwardedPacket(payload, i * 960, 30, 0.0))
                await asyncio.sleep(0)
            while stage._task is not None and not stage._task.done():
                await asyncio.sleep(0.01)
        return as_deferred(go()).addCallback(lambda _: (denoiser, delivered))

    def test_in_order_off_the_loop(self):
        """Each payload is processed once, in order, on a pool thread; timestamps and
        levels are kept."""
        def check(result):
            denoiser, delivered = result
            self.assertEqual([p.payload for p in delivered], [b"A", b"B", b"C"])
            self.assertEqual([p.timestamp for p in delivered], [0, 960, 1920])
            self.assertEqual({p.level for p in delivered}, {30})
            self.assertNotIn(threading.get_ident(), denoiser.threads)
        return self.run_stage([b"a", b"b", b"c"]).addCallback(check)

    def test_failure_forwards_the_original(self):
        """A payload the denoiser cannot process is forwarded as it came."""
        def check(result):
            self.assertEqual([p.payload for p in result[1]], [b"A", b"bad", b"C"])
        return self.run_stage([b"a", b"bad", b"c"]).addCallback(check)

    def test_backlog_is_bounded(self):
        """A burst larger than the backlog keeps the newest packets, never grows."""
        denoiser, delivered = RecordingDenoiser(), []
        stage = DenoiseStage(denoiser, delivered.append, self.pool)
        for i in range(50):  # no loop turn between: the worker has not started
            stage._backlog.append(ForwardedPacket(bytes([97 + i % 26]), i, None, 0.0))
        self.assertEqual(len(stage._backlog), MAX_BACKLOG)
        stage.close()
