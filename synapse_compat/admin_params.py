"""Query parameters of Synapse's admin API, parsed and refused the way Synapse does
(``synapse.http.servlet.parse_integer`` / ``parse_boolean`` / ``parse_string``): a
missing required value is 400 ``M_MISSING_PARAM``, a malformed or out-of-range one
400 ``M_INVALID_PARAM``.
"""

from __future__ import annotations

from typing import Collection

from homeserver.errors import InvalidParam, MissingParam
from homeserver.http.server import ApiRequest

#: Synapse refuses smaller ``before_ts``: a timestamp in seconds by mistake
MIN_TIMESTAMP_MS = 30_000_000_000
#: larger values would overflow the database's 64-bit integers (Matrix's own bound)
MAX_INTEGER = 2 ** 53 - 1


def integer(request: ApiRequest, name: str, default: int | None = None, *,
            required: bool = False) -> int | None:
    """A non-negative integer query parameter."""
    raw = request.arg(name)
    if raw is None:
        if required:
            raise MissingParam(f"Missing required integer query parameter {name}")
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise InvalidParam(f"Query parameter {name!r} must be an integer.") from None
    if value < 0:
        raise InvalidParam(
            f"Query parameter {name} must be a string representing a positive integer.")
    if value > MAX_INTEGER:
        raise InvalidParam(f"Query parameter {name} is too large.")
    return value


def timestamp(request: ApiRequest, name: str) -> int:
    """A required millisecond timestamp (``before_ts``)."""
    value = integer(request, name, required=True)
    assert value is not None
    if value < MIN_TIMESTAMP_MS:
        raise InvalidParam(
            f"Query parameter {name} you provided is from the year 1970. "
            "Double check that you are providing a timestamp in milliseconds.")
    return value


def boolean(request: ApiRequest, name: str, default: bool) -> bool:
    raw = request.arg(name)
    if raw is None:
        return default
    if raw not in ("true", "false"):
        raise InvalidParam(f"Boolean query parameter {name!r} must be one of "
                           "['true', 'false']")
    return raw == "true"


def choice(request: ApiRequest, name: str, allowed: Collection[str],
           default: str | None = None) -> str | None:
    raw = request.arg(name)
    if raw is None:
        return default
    if raw not in allowed:
        raise InvalidParam(f"Query parameter {name!r} must be one of "
                           f"[{', '.join(allowed)}]")
    return raw


def direction(request: ApiRequest) -> bool | None:
    """``dir``: True for ``b`` (descending), False for ``f``, None if absent."""
    value = choice(request, "dir", ("f", "b"))
    return None if value is None else value == "b"
