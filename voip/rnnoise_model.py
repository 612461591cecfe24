"""RNNoise states that run on the model's int8 weights: half the CPU of the default.

pyrnnoise ships RNNoise 0.2 built as plain C, and its built-in model carries every big
layer twice: as float and as int8 (with per-row scales), as RNNoise's weight files do.
RNNoise's ``compute_linear`` takes the float copy whenever there is one, so each 10 ms
frame streams ~10 MB of floats through the cache; the int8 copy (what RNNoise's AVX2
builds run) is a quarter of that. Handing RNNoise the same arrays *without* the float
copies of the layers that have int8 ones, through its public
``rnnoise_model_from_buffer`` (the weight blob format: a 64-byte ``"DNNw"`` header per
array, data padded to 64 bytes), makes it take the int8 path: measured ~25 instead of
~57 ms of CPU per audio second, with the same SNR on the test speech (13.97 dB both).

The arrays are read from the library's exported ``rnnoise_arrays`` table. Should a
pyrnnoise build lack it, or RNNoise refuse the blob, ``create_state`` falls back to the
built-in (float) model, so suppression never depends on this.
"""

from __future__ import annotations

import ctypes
import functools
import struct

from pyrnnoise import rnnoise

WEIGHT_BLOCK = 64
_BLOB_VERSION = 0


class _WeightArray(ctypes.Structure):
    # RNNoise's WeightArray (nnet.h): {const char *name; int type; int size; const void *data}
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int), ("size", ctypes.c_int),
                ("data", ctypes.c_void_p)]


# our own handle on pyrnnoise's library, so declaring argument types here leaves
# pyrnnoise's function objects as they are
_lib = ctypes.CDLL(rnnoise.LIBRNNOISE)
_lib.rnnoise_model_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.rnnoise_model_from_buffer.restype = ctypes.c_void_p
_lib.rnnoise_create.argtypes = [ctypes.c_void_p]
_lib.rnnoise_create.restype = ctypes.c_void_p


def _builtin_arrays(limit: int = 1000) -> dict[str, _WeightArray]:
    table = (_WeightArray * limit).in_dll(_lib, "rnnoise_arrays")
    arrays = {}
    for entry in table:
        if not entry.name:
            return arrays
        arrays[entry.name.decode("ascii")] = entry
    raise ValueError("rnnoise_arrays has no end marker")


def int8_blob(arrays: dict[str, _WeightArray]) -> bytes:
    """A weight blob of ``arrays`` less each float matrix that has an int8 twin."""
    blob = bytearray()
    for name, array in arrays.items():
        if name.endswith("_float") and name[:-len("_float")] + "_int8" in arrays:
            continue
        block = -(-array.size // WEIGHT_BLOCK) * WEIGHT_BLOCK
        blob += b"DNNw" + struct.pack("<iiii", _BLOB_VERSION, array.type, array.size, block)
        blob += name.encode("ascii").ljust(44, b"\0")[:44]
        blob += ctypes.string_at(array.data, array.size).ljust(block, b"\0")
    return bytes(blob)


@functools.cache
def _int8_model() -> tuple[int, ctypes.Array] | None:
    """RNNoise's model over the int8 blob, with the buffer it points into (kept for the
    life of the process: RNNoise does not copy the blob), or None if it cannot be had."""
    try:
        blob = int8_blob(_builtin_arrays())
    except (ValueError, AttributeError):  # AttributeError: no such symbol
        return None
    buffer = ctypes.create_string_buffer(blob, len(blob))
    model = _lib.rnnoise_model_from_buffer(ctypes.addressof(buffer), len(blob))
    if not model:
        return None
    trial = _lib.rnnoise_create(model)  # NULL if RNNoise cannot build its layers from it
    if not trial:
        return None
    rnnoise.destroy(trial)
    return model, buffer


def create_state() -> int:
    """A new RNNoise denoising state, on the int8 weights where it can be."""
    model = _int8_model()
    if model is None:
        return rnnoise.create()
    return _lib.rnnoise_create(model[0])


def uses_int8_model() -> bool:
    """Whether ``create_state`` gives states on the int8 weights."""
    return _int8_model() is not None
