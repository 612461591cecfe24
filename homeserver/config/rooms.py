"""Rooms: the default room version, hibernation (our ``rooms:`` section) and delayed
events (MSC4140)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from homeserver.config.values import ConfigError, Reader, parse_duration_ms
from homeserver.delayed_events.rules import DelayedEventsConfig
from homeserver.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS


@dataclasses.dataclass(frozen=True)
class RoomsConfig:
    """When rooms hibernate and how many stay open (README "Hibernation").

    ``idle_seconds``: a room with no work and no live subscribers closes its database
    and leaves memory after this long. 30 s, like a Durable Object's idle eviction in
    the tens of seconds: a conversation's next message usually comes sooner, and a
    later one wakes the room in milliseconds (``make bench``, "first request to a
    hibernated room"), while a server with thousands of quiet rooms holds only the
    ones in use."""

    idle_seconds: float = 30.0
    max_open: int = 256
    max_warm: int = 256
    #: give back the pages of CPython's empty allocator pools when hibernated rooms'
    #: memory is returned (``rooms/actor/free_pools.py``: CPython 3.11/3.12 on Linux,
    #: after a self-test). It writes into CPython's private pool headers; ``false``
    #: leaves them alone (an idle room then costs ~1.5 KB more, bench/README.md).
    release_free_pools: bool = True


def parse_default_room_version(r: Reader) -> str:
    room_version = str(r.get("default_room_version", (str, int), DEFAULT_ROOM_VERSION))
    if room_version not in KNOWN_ROOM_VERSIONS:
        raise ConfigError(f"default_room_version: unsupported room version {room_version!r}")
    return room_version


def parse_rooms(raw: Mapping[str, Any]) -> RoomsConfig:
    """Our ``rooms: {idle_seconds, max_open, max_warm}`` (each > 0) and
    ``release_free_pools`` (bool)."""
    r = Reader(raw)
    defaults = RoomsConfig()
    return RoomsConfig(
        idle_seconds=float(r.get("idle_seconds", (int, float), defaults.idle_seconds,
                                 check=lambda v: v > 0, why="must be > 0")),
        max_open=r.get("max_open", int, defaults.max_open,
                       check=lambda v: v > 0, why="must be > 0"),
        max_warm=r.get("max_warm", int, defaults.max_warm,
                       check=lambda v: v > 0, why="must be > 0"),
        release_free_pools=r.get("release_free_pools", bool, defaults.release_free_pools),
    )


def parse_delayed_events(r: Reader) -> DelayedEventsConfig:
    """Synapse's ``max_event_delay_duration`` (default here: 1d, see
    DelayedEventsConfig) and ``experimental_features.msc4140_max_delayed_events_per_user``
    (default 100, 0 turns delayed events off)."""
    experimental = r.get("experimental_features", dict, {}) or {}
    per_user = Reader(experimental).get(
        "msc4140_max_delayed_events_per_user", int, 100, check=lambda v: v >= 0,
        why="must be >= 0")
    max_delay = r.get("max_event_delay_duration", (int, str), None)
    return DelayedEventsConfig(
        max_delay_ms=DelayedEventsConfig.max_delay_ms if max_delay is None
        else parse_duration_ms("max_event_delay_duration", max_delay),
        max_per_user=per_user)
