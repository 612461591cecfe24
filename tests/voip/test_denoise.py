"""Noise suppression (voip/denoise.py): speech mixed with noise at a known SNR, sent as
Opus packets through a SpeakerDenoiser, comes back closer to the clean speech than it went
in; packets keep their durations; odd packets pass; run on worker threads by the SFU's stage, the output is the same.

The measure is the SNR of magnitude spectra (960-sample Hann frames, hop 480) against the
clean speech, over the whole sample and per frame (segmental). A waveform SNR says little
here: Opus is a perceptual codec that does not keep the waveform (clean speech through one
plain 64 kbit/s encode and decode already measures only ~11 dB waveform SNR), so the
second encode alone would cost the waveform measure more than the noise does.
"""

from __future__ import annotations

import numpy as np
from twisted.trial import unittest

from tests.voip.speech_sample import clean_speech, decode, encode, mix, noise
from voip.denoise import SpeakerDenoiser, rfc6464_level
from voip.opus_codec import OpusPacketDecoder


def aligned(reference: np.ndarray, signal: np.ndarray, max_lag: int = 4800) -> np.ndarray:
    """``signal`` shifted back by the codec and RNNoise delay (found by correlation)."""
    n = len(reference) + len(signal)
    corr = np.fft.irfft(np.fft.rfft(signal, n) * np.conj(np.fft.rfft(reference, n)), n)
    lag = int(np.argmax(corr[:max_lag]))
    return signal[lag:lag + len(reference)]


def magnitudes(x: np.ndarray, size: int = 960, hop: int = 480) -> np.ndarray:
    window = np.hanning(size)
    frames = np.stack([x[i:i + size] * window for i in range(0, len(x) - size, hop)])
    return np.abs(np.fft.rfft(frames, axis=1))


def spectral_snr(reference: np.ndarray, signal: np.ndarray) -> tuple[float, float]:
    """(overall, segmental) SNR in dB of ``signal``'s magnitude spectra against the
    reference's; segmental over frames holding speech, each clamped to [-10, 35] dB.
    ``signal`` is first scaled by the one gain that fits it best to the reference: a
    level change (aiortc's sender upmixes mono to stereo at -3 dB) is not noise."""
    n = min(len(reference), len(signal))
    s, y = magnitudes(reference[:n]), magnitudes(signal[:n])
    y = y * (np.sum(s * y) / np.sum(y * y))
    overall = 10 * np.log10(np.sum(s ** 2) / np.sum((y - s) ** 2))
    energy = np.sum(s ** 2, axis=1)
    speech = energy > 1e-3 * energy.mean()
    per_frame = 10 * np.log10(energy[speech]
                              / np.maximum(np.sum((y - s) ** 2, axis=1)[speech], 1e-9))
    return float(overall), float(np.mean(np.clip(per_frame, -10, 35)))


class SuppressionTests(unittest.SynchronousTestCase):
    """The behavioural proof: suppression raises the SNR."""

    def measure(self, kind: str, snr_db: float) -> tuple[tuple[float, float],
                                                         tuple[float, float]]:
        speech = clean_speech()
        packets = encode(mix(speech, kind, snr_db))
        denoiser = SpeakerDenoiser(sample_rate=48000, channels=1)
        out_packets = [denoiser.process(p) for p in packets]
        self.assertEqual(len(out_packets), len(packets))
        before = spectral_snr(speech, aligned(speech, decode(packets)[0]))
        after = spectral_snr(speech, aligned(speech, decode(out_packets)[0]))
        print(f"\n{kind} noise at {snr_db} dB: spectral SNR {before[0]:.1f} -> "
              f"{after[0]:.1f} dB, segmental {before[1]:.1f} -> {after[1]:.1f} dB")
        return before, after

    def test_white_noise_snr_rises(self):
        """Speech in white noise at 5 dB SNR comes out at least 3 dB cleaner."""
        before, after = self.measure("white", 5)
        self.assertGreater(after[0], before[0] + 3)
        self.assertGreater(after[1], before[1] + 3)

    def test_pink_noise_snr_rises(self):
        """Speech in pink noise at 0 dB SNR comes out at least 3 dB cleaner."""
        before, after = self.measure("pink", 0)
        self.assertGreater(after[0], before[0] + 3)
        self.assertGreater(after[1], before[1] + 3)

    def test_vad_tells_speech_from_noise(self):
        """RNNoise's speech probability is high on speech and low on noise alone."""
        speech_vad, noise_vad = speech_then_noise("vad_probability")
        self.assertGreater(max(speech_vad), 0.9)
        self.assertLess(float(np.median(noise_vad[10:])), 0.2)


def speech_then_noise(attribute: str) -> tuple[list, list]:
    """A denoiser's ``attribute`` after each packet of clean speech, then after each of
    noise alone (the same speaker going on)."""
    denoiser = SpeakerDenoiser()
    values: tuple[list, list] = ([], [])
    for pcm, seen in ((clean_speech()[:96000], values[0]),
                      (1000 * noise("white", 96000), values[1])):
        for packet in encode(pcm):
            denoiser.process(packet)
            seen.append(getattr(denoiser, attribute))
    return values


class AudioLevelTests(unittest.SynchronousTestCase):
    """The RFC 6464 level of the denoised audio, for the RTP audio-level extension."""

    def test_levels(self):
        """Full scale is 0, a tenth of it -20 dBov, silence 127."""
        square = np.array([[32767, -32767] * 480], dtype=np.int16)
        self.assertEqual(rfc6464_level(square), 0)
        self.assertEqual(rfc6464_level((square // 10).astype(np.int16)), 20)
        self.assertEqual(rfc6464_level(np.zeros((1, 960), np.int16)), 127)

    def test_suppressed_noise_is_quieter(self):
        """Noise alone comes out at a lower level (a higher number) than speech does."""
        speech_levels, noise_levels = speech_then_noise("audio_level")
        self.assertGreater(float(np.median(noise_levels[10:])), min(speech_levels) + 20)


class PacketTests(unittest.SynchronousTestCase):
    """Each payload in gives one payload out of the same duration, or passes as it came."""

    def noisy(self) -> np.ndarray:
        return mix(clean_speech()[:48000], "white", 5)

    def test_frame_durations_kept(self):
        """10, 20, 40 and 60 ms packets come back denoised with their own durations."""
        for frame in (480, 960, 1920, 2880):
            packets = encode(self.noisy(), frame=frame)
            denoiser = SpeakerDenoiser()
            decoder = OpusPacketDecoder(1)
            for packet in packets:
                out = denoiser.process(packet)
                self.assertNotEqual(out, packet)
                self.assertEqual(decoder.decode(out).shape, (1, frame))

    def test_duration_change_midstream(self):
        """A speaker switching from 20 ms to 60 ms packets gets 60 ms packets back."""
        denoiser = SpeakerDenoiser()
        decoder = OpusPacketDecoder(1)
        for frame in (960, 2880):
            for packet in encode(self.noisy(), frame=frame)[:5]:
                self.assertEqual(decoder.decode(denoiser.process(packet)).shape[1], frame)

    def test_short_frames_pass_through(self):
        """2.5 ms packets (shorter than RNNoise's 10 ms frame) are forwarded unchanged."""
        denoiser = SpeakerDenoiser()
        for packet in encode(self.noisy(), frame=120)[:20]:
            self.assertEqual(denoiser.process(packet), packet)

    def test_dtx_passes_through(self):
        """A DTX packet (the TOC byte alone) is forwarded as it is, with no speech."""
        denoiser = SpeakerDenoiser()
        packets = encode(self.noisy())
        denoiser.process(packets[0])
        dtx = bytes([packets[0][0] & 0xFC])
        self.assertEqual(denoiser.process(dtx), dtx)
        self.assertEqual(denoiser.vad_probability, 0.0)

    def test_lost_packet_forwards_nothing(self):
        """An empty payload (a loss) gives an empty one, and the stream goes on."""
        denoiser = SpeakerDenoiser()
        self.assertEqual(denoiser.process(b""), b"")
        packets = encode(self.noisy())
        denoiser.process(packets[0])
        self.assertEqual(denoiser.process(b""), b"")
        self.assertEqual(OpusPacketDecoder(1).decode(denoiser.process(packets[2])).shape,
                         (1, 960))

    def test_undecodable_payload_passes_through(self):
        """Bytes libopus rejects are forwarded unchanged; the next packet still works."""
        denoiser = SpeakerDenoiser()
        self.assertEqual(denoiser.process(b"\xff\xff\xff"), b"\xff\xff\xff")
        out = denoiser.process(encode(self.noisy())[0])
        self.assertEqual(OpusPacketDecoder(1).decode(out).shape, (1, 960))

    def test_stereo_denoised_per_channel(self):
        """With channels=2 stereo packets come back stereo (TOC stereo bit set)."""
        stereo = np.stack([self.noisy(), self.noisy()[::-1]])
        denoiser = SpeakerDenoiser(channels=2)
        for packet in encode(stereo, channels=2, bitrate=96000)[:10]:
            out = denoiser.process(packet)
            self.assertTrue(out[0] & 0x04)
            self.assertEqual(OpusPacketDecoder(2).decode(out).shape, (2, 960))

    def test_stereo_downmixed_by_default(self):
        """With channels=1 a stereo speaker is denoised once and sent as mono."""
        stereo = np.stack([self.noisy(), self.noisy()])
        denoiser = SpeakerDenoiser()
        for packet in encode(stereo, channels=2, bitrate=96000)[:10]:
            self.assertFalse(denoiser.process(packet)[0] & 0x04)

    def test_closed_denoiser_passes_through(self):
        """After close() (RNNoise's state freed) payloads come back as they went in."""
        denoiser = SpeakerDenoiser()
        packet = encode(self.noisy())[0]
        denoiser.close()
        self.assertEqual(denoiser.process(packet), packet)

    def test_other_sample_rates_refused(self):
        """Only 48 kHz: Opus RTP and RNNoise both run at it."""
        self.assertRaises(ValueError, SpeakerDenoiser, sample_rate=16000)


class ThreadedStageTests(unittest.TestCase):
    """SpeakerDenoisers driven by the SFU's DenoiseStage on worker threads give what
    they give run in line (one state per speaker, no sharing between threads)."""

    def test_threads_match_inline_processing(self):
        """Two speakers on a two-thread executor get the same packets as run one by
        one."""
        import asyncio
        import concurrent.futures

        from tests.e2e.harness import as_deferred
        from voip.sfu.forwarding import ForwardedPacket
        from voip.sfu.suppression import DenoiseStage

        packets = encode(mix(clean_speech()[:48000], "white", 5))
        inline = SpeakerDenoiser()
        expected = [inline.process(p) for p in packets]
        executor = concurrent.futures.ThreadPoolExecutor(2)
        self.addCleanup(executor.shutdown)
        outputs: list[list[bytes]] = [[], []]
        stages = [DenoiseStage(SpeakerDenoiser(), lambda p, out=out: out.append(p.payload),
                               executor) for out in outputs]

        async def go():
            for i, payload in enumerate(packets):
                for stage in stages:
                    stage.submit(ForwardedPacket(payload, i * 960, None, 0.0))
                # both speakers' packets in the pool at once; the next one once they
                # are out, so none waits long enough to be passed through
                while any(len(out) <= i for out in outputs):
                    await asyncio.sleep(0.002)
            self.assertEqual([stage.passed_through for stage in stages], [0, 0])
            self.assertEqual(outputs, [expected, expected])
        return as_deferred(go())
