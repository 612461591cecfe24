"""The ``voip.sfu`` section of the config: where the SFU listens and what it allows.

Pure values, validated once at start like the rest of homeserver/config/::

    voip:
      sfu:
        enabled: true              # default
        bind_addresses: []         # host ICE candidates; empty = every interface
        public_ip: null            # announced instead of the bound address (1:1 NAT)
        max_participants_per_call: 16
        max_calls: 64              # calls (rooms with a session) on this server
        max_bitrate_per_track: 64000   # bits/s, asked of publishers and policed
        max_video_bitrate: 2500000     # bits/s per video track (all simulcast layers)
        media_timeout: 6s          # a connected session silent this long is dead
        connect_timeout: 30s       # a session not connected this long is dead

aiortc (aioice 0.13) binds each host candidate to an ephemeral UDP port and offers no
port range, so there is no ``port_range`` key: open the ephemeral range (or use TURN).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any, Mapping


class SfuConfigError(ValueError):
    """An invalid ``voip.sfu`` value; the message names the key."""


@dataclasses.dataclass(frozen=True)
class SfuConfig:
    enabled: bool = True
    bind_addresses: tuple[str, ...] = ()
    public_ip: str | None = None
    max_participants_per_call: int = 16
    max_calls: int = 64
    max_bitrate_per_track: int = 64_000
    media_timeout_s: float = 6.0
    connect_timeout_s: float = 30.0
    max_video_bitrate: int = 2_500_000


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


def _seconds(key: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        v = value.strip().lower()
        for unit in ("ms", "s", "m"):
            number = v[:-len(unit)]
            if v.endswith(unit) and number.replace(".", "", 1).isdigit() and float(number) > 0:
                return float(number) * _DURATION_UNITS[unit]
    raise SfuConfigError(f"voip.sfu.{key}: expected a duration such as 6s, got {value!r}")


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise SfuConfigError(f"voip.sfu.{key}: expected a positive integer, got {value!r}")


def _address(key: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except (ValueError, TypeError):
        raise SfuConfigError(f"voip.sfu.{key}: expected an IP address, got {value!r}") \
            from None


_KEYS = frozenset({"enabled", "bind_addresses", "public_ip", "max_participants_per_call",
                   "max_calls", "max_bitrate_per_track", "max_video_bitrate", "media_timeout",
                   "connect_timeout"})


def parse_sfu_config(voip: Mapping[str, Any]) -> tuple[SfuConfig, tuple[str, ...]]:
    """The SfuConfig of a raw ``voip:`` mapping, and warnings for unknown keys."""
    raw = voip.get("sfu") or {}
    if not isinstance(raw, Mapping):
        raise SfuConfigError("voip.sfu: expected a mapping")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SfuConfigError(f"voip.sfu.enabled: expected true or false, got {enabled!r}")
    binds = raw.get("bind_addresses", []) or []
    if isinstance(binds, str):
        binds = [binds]
    if not isinstance(binds, list):
        raise SfuConfigError("voip.sfu.bind_addresses: expected a list of IP addresses")
    public_ip = raw.get("public_ip")
    defaults = SfuConfig()
    config = SfuConfig(
        enabled=enabled,
        bind_addresses=tuple(_address("bind_addresses", b) for b in binds),
        public_ip=None if public_ip is None else _address("public_ip", public_ip),
        max_participants_per_call=_positive_int(
            "max_participants_per_call",
            raw.get("max_participants_per_call", defaults.max_participants_per_call)),
        max_calls=_positive_int("max_calls", raw.get("max_calls", defaults.max_calls)),
        max_bitrate_per_track=_positive_int(
            "max_bitrate_per_track",
            raw.get("max_bitrate_per_track", defaults.max_bitrate_per_track)),
        max_video_bitrate=_positive_int(
            "max_video_bitrate", raw.get("max_video_bitrate", defaults.max_video_bitrate)),
        media_timeout_s=_seconds("media_timeout",
                                 raw.get("media_timeout", defaults.media_timeout_s)),
        connect_timeout_s=_seconds("connect_timeout",
                                   raw.get("connect_timeout", defaults.connect_timeout_s)),
    )
    warnings = tuple(f"unknown config key 'voip.sfu.{k}' ignored"
                     for k in sorted(set(raw) - _KEYS))
    return config, warnings
