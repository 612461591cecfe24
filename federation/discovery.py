"""Server discovery: which address to connect to for a server name, with which Host
header and which certificate name (spec: Server-Server API, "Server discovery" →
"Resolving server names").

The steps, in order:

1. an IP literal → that IP, the given port or 8448; Host is the server name;
2. a hostname with an explicit port → that hostname and port; Host is the server name;
3. ``GET https://<hostname>/.well-known/matrix/server`` names a delegated server;
   for it: IP literal or explicit port → directly; else SRV ``_matrix-fed._tcp``,
   then the deprecated ``_matrix._tcp``, then port 8448 — Host and certificate are
   the delegated hostname throughout;
4. no (valid) well-known: SRV ``_matrix-fed._tcp.<hostname>``, then ``_matrix._tcp``;
5. otherwise ``<hostname>:8448``.

The pure parts (splitting names, the well-known body, cache lifetimes, SRV ordering,
the route for a name) are functions; :class:`ServerResolver` adds the I/O through two
injected callables (a well-known fetcher and an SRV lookup) and caches well-known
answers as Synapse does: a day by default, the response's own ``Cache-Control`` /
``Expires`` bounded to [5 minutes, 2 days], and failures for an hour.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import random
import time
from email.utils import parsedate_to_datetime
from typing import Awaitable, Callable, Iterable, Protocol

from twisted.logger import Logger

from homeserver.ids import is_valid_server_name

log = Logger()

DEFAULT_PORT = 8448
WELL_KNOWN_DEFAULT_CACHE_S = 24 * 3600
WELL_KNOWN_MIN_CACHE_S = 5 * 60
WELL_KNOWN_MAX_CACHE_S = 48 * 3600
WELL_KNOWN_FAILURE_CACHE_S = 3600
#: a well-known body larger than this is not a well-known body
WELL_KNOWN_MAX_BYTES = 50 * 1024


# -- pure -------------------------------------------------------------------------------

def split_server_name(name: str) -> tuple[str, int | None]:
    """``(host, port or None)``; IPv6 literals lose their brackets. ValueError if invalid."""
    if not is_valid_server_name(name):
        raise ValueError(f"invalid server name {name!r}")
    if name.startswith("["):
        host, _, rest = name[1:].partition("]")
        return host, int(rest[1:]) if rest else None
    host, sep, port = name.rpartition(":")
    return (host, int(port)) if sep else (name, None)


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Route:
    """How to reach a server: try ``targets`` in order, send ``Host: host_header`` and
    expect a certificate for ``tls_name``."""

    host_header: str
    tls_name: str
    targets: tuple[tuple[str, int], ...]


def direct_route(name: str) -> Route | None:
    """Steps 1 and 2: the route for an IP literal or a name with a port, else None."""
    host, port = split_server_name(name)
    if port is None and not is_ip_literal(host):
        return None
    return Route(host_header=name, tls_name=host, targets=((host, port or DEFAULT_PORT),))


def parse_well_known(body: bytes) -> str:
    """The ``m.server`` of a ``/.well-known/matrix/server`` body; ValueError if bad."""
    if len(body) > WELL_KNOWN_MAX_BYTES:
        raise ValueError("well-known body too large")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("well-known body is not JSON") from None
    if not isinstance(parsed, dict):
        raise ValueError("well-known body is not an object")
    server = parsed.get("m.server")
    if not isinstance(server, str) or not is_valid_server_name(server):
        raise ValueError(f"well-known m.server is not a server name: {server!r}")
    return server


def well_known_cache_seconds(cache_control: str | None, expires: str | None,
                             now: float) -> float:
    """How long to keep a good well-known answer, from its response headers."""
    period: float | None = None
    if cache_control:
        directives = {}
        for part in cache_control.split(","):
            name, _, value = part.strip().partition("=")
            directives[name.strip().lower()] = value.strip().strip('"')
        if "no-store" in directives:
            period = 0
        elif directives.get("max-age", "").isdigit():
            period = int(directives["max-age"])
    if period is None and expires:
        try:
            period = parsedate_to_datetime(expires).timestamp() - now
        except (TypeError, ValueError, IndexError):
            period = None
    if period is None:
        return WELL_KNOWN_DEFAULT_CACHE_S
    return min(max(period, WELL_KNOWN_MIN_CACHE_S), WELL_KNOWN_MAX_CACHE_S)


@dataclasses.dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    target: str
    port: int


def order_srv(records: Iterable[SrvRecord],
              rand: Callable[[], float] = random.random) -> list[tuple[str, int]]:
    """RFC 2782 order: ascending priority, weighted random within a priority.

    A single record with target "." means the service is decidedly not available.
    """
    records = list(records)
    if len(records) == 1 and records[0].target in (".", ""):
        return []
    out: list[tuple[str, int]] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            pick = rand() * total
            chosen = group[-1]
            for r in group:
                pick -= r.weight
                if pick < 0:
                    chosen = r
                    break
            group.remove(chosen)
            out.append((chosen.target.rstrip("."), chosen.port))
    return out


# -- I/O ----------------------------------------------------------------------------------

class WellKnownResponse(Protocol):
    body: bytes
    cache_control: str | None
    expires: str | None


#: fetch https://<hostname>/.well-known/matrix/server; raise on any failure
FetchWellKnown = Callable[[str], Awaitable[WellKnownResponse]]
#: SRV records for a name; [] if there are none
LookupSrv = Callable[[str], Awaitable[list[SrvRecord]]]


class ServerResolver:
    """Turns server names into :class:`Route` values (module docstring)."""

    def __init__(self, *, fetch_well_known: FetchWellKnown, lookup_srv: LookupSrv,
                 clock_seconds: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random) -> None:
        self._fetch = fetch_well_known
        self._srv = lookup_srv
        self._now = clock_seconds
        self._rand = rand
        #: hostname → (expires at, delegated server name or None)
        self._well_known: dict[str, tuple[float, str | None]] = {}

    async def resolve(self, server_name: str) -> Route:
        direct = direct_route(server_name)
        if direct is not None:
            return direct
        host, _ = split_server_name(server_name)
        delegated = await self._delegated(host)
        if delegated is not None:
            direct = direct_route(delegated)
            if direct is not None:
                return direct
            host = split_server_name(delegated)[0]
        return Route(host_header=host, tls_name=host, targets=await self._srv_targets(host))

    async def _srv_targets(self, host: str) -> tuple[tuple[str, int], ...]:
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):  # the second is deprecated
            try:
                records = await self._srv(f"{service}.{host}")
            except Exception as e:  # a DNS failure is no SRV record, as for Synapse
                log.debug("SRV lookup {name} failed: {e}", name=f"{service}.{host}", e=e)
                records = []
            targets = order_srv(records, self._rand)
            if targets:
                return tuple(targets)
        return ((host, DEFAULT_PORT),)

    async def _delegated(self, host: str) -> str | None:
        now = self._now()
        cached = self._well_known.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            response = await self._fetch(host)
            delegated: str | None = parse_well_known(response.body)
            ttl = well_known_cache_seconds(response.cache_control, response.expires, now)
        except Exception as e:  # no well-known is normal; any failure means "none"
            log.debug("no well-known for {host}: {e}", host=host, e=e)
            delegated, ttl = None, WELL_KNOWN_FAILURE_CACHE_S
        self._well_known[host] = (now + ttl, delegated)
        return delegated
