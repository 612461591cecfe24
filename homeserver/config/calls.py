"""Calls: TURN (Synapse's ``turn_*`` keys), the built-in SFU (``voip:``) and MatrixRTC
transports (``matrix_rtc``, MSC4143)."""

from __future__ import annotations

import dataclasses
import os

from homeserver.config.values import ConfigError, Reader, parse_duration_ms
from voip.rtc_transports import MatrixRtcConfig, parse_matrix_rtc
from voip.sfu.sfu_config import SfuConfig, SfuConfigError, parse_sfu_config


@dataclasses.dataclass(frozen=True)
class TurnConfig:
    """TURN relay settings under Synapse's key names (``turn_*``), answered by
    ``GET /voip/turnServer``. Either a shared secret (time-limited credentials, the
    coturn ``use-auth-secret`` scheme) or a static username and password."""

    uris: tuple[str, ...] = ()
    shared_secret: str | None = None
    username: str | None = None
    password: str | None = None
    #: how long handed-out credentials stay valid, in milliseconds
    user_lifetime_ms: int = 3_600_000
    allow_guests: bool = True


def parse_turn(r: Reader, config_dir: str) -> TurnConfig:
    uris = r.get("turn_uris", list, [])
    if not all(isinstance(u, str) and u.startswith(("turn:", "turns:", "stun:", "stuns:"))
               for u in uris):
        raise ConfigError("turn_uris: expected a list of turn:/turns: URIs")
    secret = r.get("turn_shared_secret", str, None)
    secret_path = r.get("turn_shared_secret_path", str, None)
    if secret is not None and secret_path is not None:
        raise ConfigError("turn_shared_secret_path: give turn_shared_secret or its path, "
                          "not both")
    if secret_path is not None:
        try:
            with open(os.path.join(config_dir, secret_path), encoding="utf-8") as f:
                secret = f.read().strip()
        except OSError as e:
            raise ConfigError(f"turn_shared_secret_path: cannot read: {e.strerror}") from None
    username = r.get("turn_username", str, None)
    password = r.get("turn_password", str, None)
    if (username is None) != (password is None):
        raise ConfigError("turn_username: turn_username and turn_password go together")
    if secret == "":
        raise ConfigError("turn_shared_secret: must not be empty")
    return TurnConfig(
        uris=tuple(uris), shared_secret=secret, username=username, password=password,
        user_lifetime_ms=parse_duration_ms(
            "turn_user_lifetime", r.get("turn_user_lifetime", (int, str), "1h")),
        allow_guests=r.get("turn_allow_guests", bool, True))


def parse_rtc_transports(r: Reader) -> MatrixRtcConfig:
    """MatrixRTC transports (``matrix_rtc``, MSC4143)."""
    try:
        return parse_matrix_rtc(r.get("matrix_rtc", dict, None))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def parse_sfu(r: Reader) -> tuple[SfuConfig, tuple[str, ...]]:
    """The SFU (``voip: {sfu: ...}``) and warnings about its keys."""
    try:
        return parse_sfu_config(r.get("voip", dict, {}) or {})
    except SfuConfigError as e:
        raise ConfigError(str(e)) from None
