"""``listeners``: the ports the server serves on and what each serves (Synapse's
format)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from homeserver.config.values import ConfigError


@dataclasses.dataclass(frozen=True)
class Listener:
    port: int
    bind_addresses: tuple[str, ...]
    type: str
    tls: bool
    resources: frozenset[str]
    x_forwarded: bool = False


def parse_listeners(raw: Any, default_port: int) -> tuple[Listener, ...]:
    if raw is None:
        raw = [{"port": default_port, "bind_addresses": ["127.0.0.1"], "type": "http",
                "resources": [{"names": ["client", "federation"]}]}]
    if not isinstance(raw, list) or not raw:
        raise ConfigError("listeners: expected a non-empty list")
    out = []
    for i, item in enumerate(raw):
        key = f"listeners[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{key}: expected a mapping")
        port = item.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
            raise ConfigError(f"{key}.port: expected a port number, got {port!r}")
        binds = item.get("bind_addresses", ["::", "0.0.0.0"])
        if isinstance(binds, str):
            binds = [binds]
        if not isinstance(binds, list) or not all(isinstance(b, str) for b in binds):
            raise ConfigError(f"{key}.bind_addresses: expected a list of addresses")
        kind = item.get("type", "http")
        if kind not in ("http", "metrics", "manhole", "replication"):
            raise ConfigError(f"{key}.type: unknown listener type {kind!r}")
        names: set[str] = set()
        for res in item.get("resources", []) or []:
            if not isinstance(res, Mapping) or not isinstance(res.get("names", []), list):
                raise ConfigError(f"{key}.resources: expected a list of {{names: [...]}}")
            names.update(res.get("names", []))
        unknown = names - {"client", "federation", "media", "keys", "static", "health",
                           "openid", "consent", "replication", "metrics"}
        if unknown:
            raise ConfigError(f"{key}.resources: unknown resource {sorted(unknown)[0]!r}")
        if names & {"client"}:
            names.add("media")
        if names & {"federation"}:
            names.update({"keys", "media"})
        out.append(Listener(port, tuple(binds), kind, bool(item.get("tls", False)),
                            frozenset(names), bool(item.get("x_forwarded", False))))
    return tuple(out)
