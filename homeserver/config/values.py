"""What every config section reads with: typed access to the raw mapping, Synapse's
sizes ("50M") and durations ("1h"), and ``ConfigError``."""

from __future__ import annotations

from typing import Any, Callable, Mapping


class ConfigError(Exception):
    """An invalid configuration value; ``str()`` is one line naming the key."""


class Reader:
    """Typed access to the raw mapping, recording which keys were read."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.seen: set[str] = set()

    def get(self, key: str, kind: type | tuple, default: Any = None, *,
            check: Callable[[Any], bool] | None = None, why: str = "") -> Any:
        self.seen.add(key)
        value = self.raw.get(key, default)
        if value is None:
            return default
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ConfigError(f"{key}: expected {names}, got {value!r}")
        if check is not None and not check(value):
            raise ConfigError(f"{key}: {why or 'invalid value'} ({value!r})")
        return value


def parse_size(key: str, value: Any) -> int:
    """Synapse sizes: an int of bytes or a string like "50M" / "1G" / "512K"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
        v = value.strip().upper().removesuffix("B")
        mult = units.get(v[-1:], 1)
        digits = v[:-1] if v[-1:] in units else v
        if digits.isdigit() and int(digits) > 0:
            return int(digits) * mult
    raise ConfigError(f"{key}: expected a size such as 50M, got {value!r}")


_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
                      "w": 604_800_000, "y": 31_536_000_000}


def parse_duration_ms(key: str, value: Any) -> int:
    """Synapse durations: an int of milliseconds or a string like "30s", "1h", "7d"."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        for unit in ("ms", "s", "m", "h", "d", "w", "y"):
            if v.endswith(unit) and v[:-len(unit)].isdigit() and int(v[:-len(unit)]) > 0:
                return int(v[:-len(unit)]) * _DURATION_UNITS_MS[unit]
        if v.isdigit() and int(v) > 0:
            return int(v)
    raise ConfigError(f"{key}: expected a duration such as 1h or 30m, got {value!r}")
