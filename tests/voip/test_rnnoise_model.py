"""RNNoise on its int8 weights (voip/rnnoise_model.py): the blob leaves out exactly the
float twins, RNNoise accepts it, denoises as well as on the float weights, and a build
without the weights table falls back to the built-in model."""

from __future__ import annotations

import ctypes
import struct

import numpy as np
from pyrnnoise import rnnoise
from twisted.trial import unittest

from tests.voip.speech_sample import clean_speech, mix
from voip import rnnoise_model
from voip.rnnoise_model import WEIGHT_BLOCK, _WeightArray, int8_blob


def denoise(state: int, audio: np.ndarray) -> np.ndarray:
    out = audio.astype(np.float32)
    pointer = ctypes.POINTER(ctypes.c_float)
    for start in range(0, len(out) // 480 * 480, 480):
        frame = ctypes.cast(out.ctypes.data + 4 * start, pointer)
        rnnoise.lib.rnnoise_process_frame(state, frame, frame)
    rnnoise.destroy(state)
    return out.astype(np.float64)


def snr_db(reference: np.ndarray, signal: np.ndarray, delay: int = 960) -> float:
    """Waveform SNR; RNNoise's output lags its input by 960 samples."""
    signal = signal[delay:]
    reference = reference[:len(signal)]
    return float(10 * np.log10(np.sum(reference ** 2) / np.sum((signal - reference) ** 2)))


class BlobTests(unittest.SynchronousTestCase):
    """The weight blob in RNNoise's format."""

    def test_float_twins_left_out(self):
        """A float matrix with an int8 twin is dropped; float-only arrays are kept."""
        data = {name: ctypes.create_string_buffer(bytes(range(size)), size)
                for name, size in (("a_weights_int8", 3), ("a_weights_float", 12),
                                   ("b_weights_float", 70))}
        arrays = {name: _WeightArray(name.encode(), 3 if "int8" in name else 0,
                                     ctypes.sizeof(buf), ctypes.addressof(buf))
                  for name, buf in data.items()}
        blob = int8_blob(arrays)
        self.assertEqual(len(blob), WEIGHT_BLOCK + 64 + WEIGHT_BLOCK + 128)
        head, version, kind, size, block = struct.unpack_from("<4siiii", blob, 0)
        self.assertEqual((head, version, kind, size, block), (b"DNNw", 0, 3, 3, 64))
        self.assertEqual(blob[20:20 + 44].rstrip(b"\0"), b"a_weights_int8")
        self.assertEqual(blob[64:67], bytes(range(3)))
        second = WEIGHT_BLOCK + 64
        self.assertEqual(blob[second + 20:second + 64].rstrip(b"\0"), b"b_weights_float")
        self.assertEqual(struct.unpack_from("<i", blob, second + 12)[0], 70)


class ModelTests(unittest.SynchronousTestCase):
    """RNNoise runs on the int8 weights, as well as on the float ones."""

    def test_installed_pyrnnoise_gives_int8_states(self):
        """With the pyrnnoise this server installs, states run on the int8 weights."""
        self.assertTrue(rnnoise_model.uses_int8_model())

    def test_int8_denoises_like_float(self):
        """Same speech in noise: int8 output differs from float's, its SNR within 0.5 dB."""
        speech = clean_speech()[:96000]
        noisy = mix(speech, "white", 5)
        on_int8 = denoise(rnnoise_model.create_state(), noisy)
        on_float = denoise(rnnoise.create(), noisy)
        self.assertFalse(np.array_equal(on_int8, on_float))
        print(f"\nSNR {snr_db(speech, noisy, delay=0):.1f} dB in; out on float weights "
              f"{snr_db(speech, on_float):.2f} dB, on int8 {snr_db(speech, on_int8):.2f} dB")
        self.assertLess(abs(snr_db(speech, on_int8) - snr_db(speech, on_float)), 0.5)

    def test_falls_back_without_weights_table(self):
        """A library without rnnoise_arrays gives states on the built-in model."""
        def missing() -> dict:
            raise AttributeError("rnnoise_arrays")
        self.patch(rnnoise_model, "_builtin_arrays", missing)
        rnnoise_model._int8_model.cache_clear()
        self.addCleanup(rnnoise_model._int8_model.cache_clear)
        self.assertFalse(rnnoise_model.uses_int8_model())
        state = rnnoise_model.create_state()
        self.assertTrue(state)
        rnnoise.destroy(state)
