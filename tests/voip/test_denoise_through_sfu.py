"""Issue 15's proof of noise suppression, end to end: speech mixed with white noise at 5 dB
SNR, sent by an aiortc client through the SFU (voip/sfu/service.py, in-process) with
noise suppression on (the real voip/denoise.py ``SpeakerDenoiser``), is heard by another
aiortc client with a higher SNR than the same audio forwarded without suppression.

The SNR is measured as in test_denoise.py (magnitude spectra against the clean speech, so
that Opus's waveform changes do not count as noise), after finding by correlation where
in the looped sample the subscriber's audio begins.
"""

from __future__ import annotations

import fractions

import av
import numpy as np
from twisted.internet import task
from twisted.trial import unittest

from tests.e2e.harness import as_deferred
from tests.voip.sfu import peer, test_service
from tests.voip.sfu.call_case import wait_for
from tests.voip.speech_sample import clean_speech, mix
from tests.voip.test_denoise import spectral_snr
from voip.denoise import SpeakerDenoiser
from voip.opus_codec import OpusPacketDecoder
from voip.sfu.service import SfuService
from voip.sfu.sfu_config import SfuConfig

LOOP = 96000  # 2 s of speech, sent round and round
SKIP = 50  # 1 s
PACKETS = 200  # 4 s heard


def loop_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    """The 20 ms at ``pts`` of ``samples`` (48 kHz mono int16) played round and round."""
    at = pts % len(samples)
    frame = av.AudioFrame.from_ndarray(samples[at:at + 960].reshape(1, -1), format="s16",
                                       layout="mono")
    frame.sample_rate = 48000
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, 48000)
    return frame


def heard_snr(clean: np.ndarray, packets: list[tuple[int, bytes]]) -> tuple[float, float]:
    """Spectral SNR of the (RTP timestamp, payload) packets, each decoded and put at its
    timestamp (so a packet dropped on the way leaves a gap, not a shift), against the
    clean loop, aligned by correlation."""
    decoder = OpusPacketDecoder(1)
    first = packets[0][0]
    span = (packets[-1][0] - first) % 2 ** 32 + 960
    heard = np.zeros(span)
    for timestamp, payload in packets:
        pcm = decoder.decode(payload)[0]
        at = (timestamp - first) % 2 ** 32
        heard[at:at + len(pcm)] = pcm[:span - at]
    reference = np.tile(clean, len(heard) // LOOP + 3)
    n = len(reference) + len(heard)
    corr = np.fft.irfft(np.fft.rfft(reference, n) * np.conj(np.fft.rfft(heard, n)), n)
    lag = int(np.argmax(corr[:LOOP]))
    return spectral_snr(reference[lag:lag + len(heard)], heard)


class ThroughSfuTest(unittest.TestCase):
    """Suppression on versus off for the same noisy speaker, through the SFU.

    The aiortc publisher and subscriber are test_service.ServiceTest's (borrowed, not
    inherited, so its tests do not run twice), with the noisy speech in place of its
    tone."""

    publisher = test_service.ServiceTest.publisher
    subscriber = test_service.ServiceTest.subscriber
    _close_all = test_service.ServiceTest._close_all

    def setUp(self):
        self.pcs = []
        self.sfus = []
        self.addCleanup(self._stop)

    def _stop(self):
        d = as_deferred(self._close_all())
        for sfu in self.sfus:
            d.addCallback(lambda _, sfu=sfu: sfu.stop())
        return d

    async def heard(self, clean: np.ndarray, suppress: bool) -> tuple[float, float]:
        # aiortc's stock sender spends 96 kbit/s on stereo noise: above the SFU's
        # default per-track policing, which would drop much of it
        self.sfu = SfuService(SfuConfig(max_bitrate_per_track=256_000), gate=test_service.FakeGate(), clock=task.Clock(),
                              ice_servers_for=lambda user: [],
                              denoiser_factory=SpeakerDenoiser)
        self.sfus.append(self.sfu)
        # the publisher's ToneTrack (tests/voip/sfu/peer.py) sends our speech instead
        noisy = mix(clean, "white", 5).astype(np.int16)
        self.patch(peer, "tone_frame", lambda amplitude, pts: loop_frame(noisy, pts))
        sid, published = await self.publisher("@alice:x", {"noiseSuppression": suppress})
        self.assertEqual(published["noiseSuppression"], suppress)
        await self.subscriber("@bob:x", sid)
        # the subscriber's tap keeps payloads; keep their RTP timestamps too
        receiver = self.pcs[-1].getTransceivers()[0].receiver
        handle, received = receiver._handle_rtp_packet, []

        async def tap(packet, arrival_time_ms):
            received.append((packet.timestamp, packet.payload))
            await handle(packet, arrival_time_ms)
        receiver._handle_rtp_packet = tap
        await as_deferred(wait_for(lambda: len(received) >= SKIP + PACKETS, timeout=40))
        # RNNoise's first second learns the noise: measure after it
        return heard_snr(clean, received[SKIP:SKIP + PACKETS])

    async def test_suppressed_speaker_heard_cleaner(self):
        """The subscriber hears the suppressed speaker at least 3 dB cleaner."""
        clean = clean_speech()[:LOOP]
        before = await self.heard(clean, suppress=False)
        after = await self.heard(clean, suppress=True)
        print(f"\nthrough the SFU, white noise at 5 dB: spectral SNR {before[0]:.1f} -> "
              f"{after[0]:.1f} dB, segmental {before[1]:.1f} -> {after[1]:.1f} dB")
        self.assertGreater(after[0], before[0] + 3)
        self.assertGreater(after[1], before[1] + 3)
