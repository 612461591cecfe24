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

    def test_burst_passes_through_in_order(self):
        """Past MAX_BACKLOG waiting packets, new ones pass through unsuppressed, still
        after the packets ahead of them; none is lost."""
        burst = [bytes([97 + i]) for i in range(MAX_BACKLOG + 3)]  # b"a", b"b", ...

        def check(result):
            denoiser, delivered = result
            self.assertEqual([p.payload for p in delivered],
                             [p.upper() for p in burst[:MAX_BACKLOG]] + burst[MAX_BACKLOG:])
        denoiser, delivered = RecordingDenoiser(), []
        stage = DenoiseStage(denoiser, delivered.append, self.pool)

        async def go():
            for i, payload in enumerate(burst):  # no loop turn between: all wait
                stage.submit(ForwardedPacket(payload, i * 960, 30, 0.0))
            self.assertEqual(stage.passed_through, 3)
            while not stage._task.done():
                await asyncio.sleep(0.01)
        return as_deferred(go()).addCallback(lambda _: check((denoiser, delivered)))

    def test_close_frees_the_denoiser_after_the_packet_in_flight(self):
        """close() drops what waits and frees the denoiser only once the worker thread
        has returned from it."""
        entered, release = threading.Event(), threading.Event()

        class Slow(RecordingDenoiser):
            closed_while_busy = None
            busy = False

            def process(self, payload):
                self.busy = True
                entered.set()
                release.wait(10)
                self.busy = False
                return payload

            def close(self):
                self.closed_while_busy = self.busy

        denoiser, delivered = Slow(), []
        stage = DenoiseStage(denoiser, delivered.append, self.pool)

        async def go():
            stage.submit(ForwardedPacket(b"a", 0, 30, 0.0))
            stage.submit(ForwardedPacket(b"b", 960, 30, 0.0))
            await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
            stage.close()
            self.assertIsNone(denoiser.closed_while_busy)  # not yet freed
            release.set()
            await stage._task
            self.assertIs(denoiser.closed_while_busy, False)
            self.assertEqual(delivered, [])
        return as_deferred(go())
