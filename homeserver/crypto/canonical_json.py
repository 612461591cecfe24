"""Strict canonical JSON, strict JSON parsing, and fast JSON for responses.

Spec: appendices, "Canonical JSON". Canonical JSON is the shortest UTF-8 encoding with
object keys sorted by code point; numbers must be integers in ``[-(2**53)+1,
(2**53)-1]``. Room versions 1-5 predate that rule (spec: rooms/v6 "Canonical JSON"), so
encoding has a lenient mode that still sorts and compacts but lets floats and big
integers through; everything about *which* rules apply to an event is decided by its
room version, never here.

The encoding itself is done by the ``canonicaljson`` library (the same one Synapse
uses, so our bytes match theirs); this module only validates the value first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import canonicaljson
import orjson

from homeserver.errors import BadJson, NotJson

#: the largest integer canonical JSON allows (spec: appendices, "Canonical JSON")
MAX_SAFE_INTEGER = 2**53 - 1
MIN_SAFE_INTEGER = -MAX_SAFE_INTEGER

# 2**53 - 1 has 16 digits; a longer literal (plus sign) is out of range for sure, and
# rejecting it before int() avoids the quadratic cost of converting huge literals.
_MAX_SAFE_DIGITS = len(str(MAX_SAFE_INTEGER)) + 1


class CanonicalJsonError(BadJson, ValueError):
    """Valid JSON that canonical JSON forbids (a float, an unsafe integer, …).

    A ``ValueError`` for pure callers and an ``M_BAD_JSON`` MatrixError if it escapes to
    the HTTP layer (spec: rooms/v6 "Canonical JSON" asks for 400 M_BAD_JSON).
    """


class JsonParseError(NotJson, ValueError):
    """Bytes that are not JSON at all (syntax, invalid UTF-8, NaN/Infinity): M_NOT_JSON."""


# -- encoding ----------------------------------------------------------------------------

def _prepare(value: Any, strict: bool) -> Any:
    """Check ``value`` against the canonical JSON rules; return it ready to encode.

    Returns the same object when nothing needed converting (the common case); a
    non-dict Mapping (e.g. an immutable event view) is copied into a dict because the
    stdlib encoder only knows dicts.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if strict and not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalJsonError(f"integer {value} is outside canonical JSON's range")
        return value
    if kind is dict or isinstance(value, Mapping):
        out = value if kind is dict else dict(value)
        for key, item in out.items():
            if type(key) is not str:
                # the stdlib would silently stringify it, changing what is signed
                raise CanonicalJsonError(f"object key {key!r} is not a string")
            prepared = _prepare(item, strict)
            if prepared is not item:
                if out is value:
                    out = dict(value)
                out[key] = prepared
        return out
    if kind is list or kind is tuple:
        items = value
        for index, item in enumerate(value):
            prepared = _prepare(item, strict)
            if prepared is not item:
                if items is value:
                    items = list(value)
                items[index] = prepared
        return items
    if isinstance(value, int):
        return _prepare(int(value), strict)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        if strict:
            raise CanonicalJsonError("floats are not allowed in canonical JSON")
        if not math.isfinite(value):
            raise CanonicalJsonError("NaN and Infinity are not JSON")
        return value
    raise CanonicalJsonError(f"{kind.__name__} is not a JSON type")


def encode_canonical_json(value: Any, *, strict: bool = True) -> bytes:
    """Encode ``value`` as canonical JSON bytes (spec: appendices, "Canonical JSON").

    With ``strict`` (the default, and the rule for room versions 6+) floats and integers
    outside ±(2**53-1) raise :class:`CanonicalJsonError`. ``strict=False`` is only for
    hashing and verifying events of room versions 3-5, which may carry such numbers.
    NaN, Infinity, non-string keys and unpaired surrogates are refused in both modes.
    """
    try:
        prepared = _prepare(value, strict)
        return canonicaljson.encode_canonical_json(prepared)
    except CanonicalJsonError:
        raise
    except RecursionError:
        raise CanonicalJsonError("JSON value is nested too deeply") from None
    except UnicodeEncodeError:
        raise CanonicalJsonError("string contains an unpaired surrogate") from None
    except (ValueError, TypeError) as e:
        raise CanonicalJsonError(str(e)) from None


# -- parsing -----------------------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    raise JsonParseError(f"{name} is not valid JSON")


def _reject_float(literal: str) -> Any:
    raise CanonicalJsonError(f"number {literal} is not an integer")


def _parse_safe_int(literal: str) -> int:
    if len(literal) > _MAX_SAFE_DIGITS:
        raise CanonicalJsonError(f"integer {literal[:20]}… is outside canonical JSON's range")
    value = int(literal)
    if not MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise CanonicalJsonError(f"integer {value} is outside canonical JSON's range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers disagreeing on which duplicate wins is how signed data gets
    # reinterpreted, so strict input may not have any.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise CanonicalJsonError("object has duplicate keys")
    return result


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def parse_json_strict(data: bytes | bytearray | memoryview | str, *,
                      strict: bool = False) -> Any:
    """Parse JSON from the network, refusing what other servers would choke on.

    Always refused (:class:`JsonParseError`, M_NOT_JSON): syntax errors, bytes that are
    not UTF-8 (the spec mandates UTF-8; the stdlib would also guess UTF-16/32), a BOM,
    the non-standard constants ``NaN``/``Infinity``/``-Infinity``, and escaped unpaired
    surrogates (``"\\ud800"``), which cannot be re-encoded as UTF-8 later.

    With ``strict`` (events of room versions 6+, spec: rooms/v6 "Canonical JSON"), also
    refused (:class:`CanonicalJsonError`, M_BAD_JSON): numbers with a fraction or
    exponent, integers outside ±(2**53-1), and duplicate object keys. Note the spec's
    example ``{"b": 1e10}`` is thus refused, as Synapse and ruma refuse it.
    """
    if isinstance(data, str):
        text = data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonParseError("JSON text contains an unpaired surrogate") from None
    else:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonParseError("request body is not valid UTF-8") from None
    kwargs: dict[str, Any] = {"parse_constant": _reject_constant}
    if strict:
        kwargs.update(parse_float=_reject_float, parse_int=_parse_safe_int,
                      object_pairs_hook=_unique_keys)
    try:
        value = json.loads(text, **kwargs)
    except (CanonicalJsonError, JsonParseError):
        raise
    except RecursionError:
        raise JsonParseError("JSON is nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, or int() over the digit limit
        raise JsonParseError(f"invalid JSON: {e}") from None
    # Escaped surrogates are the only way one can get in after a strict UTF-8 decode;
    # the substring test keeps the full walk off the common path.
    if ("\\ud" in text or "\\uD" in text) and _has_surrogate(value):
        raise JsonParseError("JSON contains an unpaired surrogate")
    return value


# -- fast, non-canonical encoding for HTTP responses --------------------------------------

def _default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_compact_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default)
_ascii_encoder = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_default)


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON for responses: no sorting, no number checks (fast path).

    A string with an unpaired surrogate (only possible from old stored data) cannot be
    UTF-8; rather than fail the whole response it is sent \\u-escaped, which is valid
    JSON and what the stdlib does with ``ensure_ascii``.
    """
    try:
        # orjson: ~25x faster than the stdlib on a /sync answer, which a fan-out
        # encodes once per woken receiver (bench/README.md). It writes NaN and the
        # infinities as null; what it refuses (integers beyond 64 bits, unpaired
        # surrogates) goes the stdlib's way below.
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        pass
    try:
        return _compact_encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        return _ascii_encoder.encode(value).encode("ascii")
