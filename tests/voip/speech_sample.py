"""A noisy speech sample for the noise-suppression test and bench: the clean speech
fixture (fixtures/speech.opus, made by fixtures/make_speech.py), deterministic white or
pink noise, mixing at a known SNR, and Opus packets of the mix."""

from __future__ import annotations

import functools
import pathlib

import av
import numpy as np

from voip.opus_codec import OpusPacketDecoder, OpusPacketEncoder

SPEECH = pathlib.Path(__file__).with_name("fixtures") / "speech.opus"
SPEECH_PEAK = 16000  # the fixture is scaled to about half of full scale


def clean_speech() -> np.ndarray:
    """The fixture (espeak-ng speaking a sentence; see fixtures/make_speech.py) as
    float64 samples at 48 kHz on the int16 scale."""
    return _decoded_speech().copy()


@functools.cache
def _decoded_speech() -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    with av.open(str(SPEECH)) as container:
        frames = [out for frame in container.decode(audio=0)
                  for out in resampler.resample(frame)]
    speech = np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.float64)
    return speech * (SPEECH_PEAK / np.abs(speech).max())


def noise(kind: str, n: int, seed: int = 15) -> np.ndarray:
    """Deterministic unit-power white or pink (1/f power) noise."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    return pink / np.sqrt(np.mean(pink ** 2))


def mix(speech: np.ndarray, kind: str, snr_db: float) -> np.ndarray:
    """``speech`` plus noise whose power is ``snr_db`` below the speech's."""
    scale = np.sqrt(np.mean(speech ** 2) / 10 ** (snr_db / 10))
    return np.clip(speech + scale * noise(kind, len(speech)), -32768, 32767)


def encode(pcm: np.ndarray, frame: int = 960, bitrate: int = 64000,
           channels: int = 1) -> list[bytes]:
    """Opus packets of ``frame`` samples for ``pcm`` shaped (channels, samples)."""
    pcm = np.atleast_2d(pcm)
    encoder = OpusPacketEncoder(channels, frame, bitrate)
    n = pcm.shape[1] // frame * frame
    return [encoder.encode(pcm[:, i:i + frame].astype(np.int16)) for i in range(0, n, frame)]


def decode(packets: list[bytes], channels: int = 1) -> np.ndarray:
    decoder = OpusPacketDecoder(channels)
    return np.concatenate([decoder.decode(p) for p in packets], axis=1).astype(np.float64)
