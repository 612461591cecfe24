"""Typed access to JSON bodies and query parameters: bad input becomes M_BAD_JSON /
M_MISSING_PARAM / M_INVALID_PARAM at the edge (STYLE.md 7), never a 500 later.
"""

from __future__ import annotations

from typing import Any, Mapping

from homeserver.errors import BadJson, InvalidParam, MissingParam

_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object",
          list: "a list", float: "a number"}


def _kind_name(kind: type | tuple) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_NAMES.get(k, k.__name__) for k in kinds)


def _check(key: str, value: Any, kind: type | tuple) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise BadJson(f"{key} must be {_kind_name(kind)}")
    if not isinstance(value, kinds):
        raise BadJson(f"{key} must be {_kind_name(kind)}")
    return value


def require(body: Mapping[str, Any], key: str, kind: type | tuple) -> Any:
    """``body[key]``, which must be present and of ``kind`` (M_MISSING_PARAM / M_BAD_JSON)."""
    if key not in body or body[key] is None:
        raise MissingParam(f"Missing parameter: {key}")
    return _check(key, body[key], kind)


def optional(body: Mapping[str, Any], key: str, kind: type | tuple,
             default: Any = None) -> Any:
    """``body[key]`` if present (and not null), checked against ``kind``; else ``default``."""
    value = body.get(key)
    if value is None:
        return default
    return _check(key, value, kind)


def int_arg(value: str | None, name: str, default: int, *, minimum: int = 0,
            maximum: int | None = None) -> int:
    """A query-string integer; M_INVALID_PARAM if not a number; clamped to ``maximum``."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidParam(f"{name} must be an integer") from None
    if number < minimum:
        raise InvalidParam(f"{name} must be >= {minimum}")
    return number if maximum is None else min(number, maximum)
