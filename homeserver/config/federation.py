"""Other servers: notaries for server keys (``trusted_key_servers``), what the
outbound federation queues keep (our ``federation:`` section), and the identity
servers third-party invites may use."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from homeserver.config.values import ConfigError, parse_duration_ms
from homeserver.ids import is_valid_server_name


@dataclasses.dataclass(frozen=True)
class TrustedKeyServer:
    """A notary from ``trusted_key_servers`` (federation/keys.py asks it for a server's
    keys only when that server does not answer itself). ``verify_keys`` (key ID →
    unpadded base64) pins the notary's own keys; None trusts TLS alone, as Synapse."""

    server_name: str
    verify_keys: Mapping[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class FederationOutboxConfig:
    """Our ``federation:`` section: how long the outbound queues keep what a
    destination that is down has not had (federation/sender.py)."""

    #: a catching-up destination gets older room events only as each room's newest
    #: (it fetches the gap with /get_missing_events and /state_ids)
    pdu_backlog_max_age_ms: int = 24 * 3600 * 1000
    #: older EDUs are dropped (device-list and signing-key updates: all but each
    #: user's newest, which makes the receiver resync)
    edu_max_age_ms: int = 7 * 24 * 3600 * 1000


def parse_key_servers(raw: Any, verify_certificates: bool) -> tuple[TrustedKeyServer, ...]:
    """``trusted_key_servers`` as Synapse reads it; absent means matrix.org."""
    from homeserver.crypto.signing import decode_base64

    if raw is None:
        return (TrustedKeyServer("matrix.org"),)
    if not isinstance(raw, list):
        raise ConfigError("trusted_key_servers: expected a list")
    out = []
    for i, item in enumerate(raw):
        key = f"trusted_key_servers[{i}]"
        if not isinstance(item, Mapping) or not is_valid_server_name(item.get("server_name")):
            raise ConfigError(f"{key}: expected a mapping with a valid server_name")
        keys = item.get("verify_keys")
        if keys is not None:
            if not isinstance(keys, Mapping):
                raise ConfigError(f"{key}.verify_keys: expected a mapping")
            for key_id, b64 in keys.items():
                try:
                    ok = str(key_id).startswith("ed25519:") and len(decode_base64(b64)) == 32
                except (ValueError, TypeError):
                    ok = False
                if not ok:
                    raise ConfigError(f"{key}.verify_keys.{key_id}: expected an ed25519 key "
                                      "in unpadded base64")
            keys = dict(keys)
        if not verify_certificates and not keys and not item.get("accept_keys_insecurely"):
            # without TLS checks nothing would vouch for the notary's answers (Synapse too)
            raise ConfigError(f"{key}: give verify_keys (or accept_keys_insecurely: true) "
                              "when federation_verify_certificates is false")
        out.append(TrustedKeyServer(item["server_name"], keys))
    return tuple(out)


def parse_federation_outbox(raw: Mapping[str, Any]) -> FederationOutboxConfig:
    """``federation: {pdu_backlog_max_age, edu_max_age}``: durations."""
    default = FederationOutboxConfig()
    return FederationOutboxConfig(
        pdu_backlog_max_age_ms=parse_duration_ms(
            "federation.pdu_backlog_max_age",
            raw.get("pdu_backlog_max_age", default.pdu_backlog_max_age_ms)),
        edu_max_age_ms=parse_duration_ms(
            "federation.edu_max_age", raw.get("edu_max_age", default.edu_max_age_ms)))


def parse_id_servers(entries: list) -> tuple[str, ...]:
    """``trusted_third_party_id_servers``: server names or http(s) base URLs."""
    for entry in entries:
        name = entry.split("://", 1)[1] if isinstance(entry, str) and \
            entry.startswith(("http://", "https://")) else entry
        if not isinstance(name, str) or not is_valid_server_name(name.rstrip("/")):
            raise ConfigError("trusted_third_party_id_servers: expected server names or "
                              f"http(s)://host[:port] URLs, got {entry!r}")
    return tuple(e.rstrip("/") for e in entries)
