"""Configuration: YAML files merged deeply, validated once into frozen values.

Keys use Synapse's ``homeserver.yaml`` names wherever Synapse has one, so an operator's
existing file mostly just works; settings of our own live in their own sections
(``rooms:``, ``http:``). An unknown key is a warning; an invalid value is a
``ConfigError`` naming the key (the CLI turns it into one line on stderr and exit 2).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Mapping

import yaml

from homeserver.config.accounts import (
    LoginViaExistingSession, parse_login_via_existing_session)
from homeserver.config.calls import TurnConfig, parse_rtc_transports, parse_sfu, parse_turn
from homeserver.config.federation import (
    FederationOutboxConfig, TrustedKeyServer, parse_federation_outbox, parse_id_servers,
    parse_key_servers)
from homeserver.config.listeners import Listener, parse_listeners
from homeserver.config.media import (
    MediaRetentionConfig, UrlPreviewConfig, parse_media_retention, parse_url_preview)
from homeserver.config.rate_limits import RateLimit, parse_rate_limits
from homeserver.config.rooms import (
    RoomsConfig, parse_default_room_version, parse_delayed_events, parse_rooms)
from homeserver.config.values import ConfigError, Reader, parse_size
from homeserver.delayed_events.rules import DelayedEventsConfig
from homeserver.http.outbound import parse_ranges
from homeserver.ids import is_valid_server_name
from voip.rtc_transports import MatrixRtcConfig
from voip.sfu.sfu_config import SfuConfig


@dataclasses.dataclass(frozen=True)
class Config:
    server_name: str
    config_dir: str
    data_dir: str
    listeners: tuple[Listener, ...]
    database: Mapping[str, Any]
    signing_key_path: str
    tls_certificate_path: str | None
    tls_private_key_path: str | None
    federation_custom_ca_list: tuple[str, ...]
    federation_verify_certificates: bool
    ip_range_whitelist: tuple[str, ...]
    #: more ranges outbound requests must not reach (homeserver/http/outbound.py)
    ip_range_blacklist: tuple[str, ...]
    enable_registration: bool
    enable_registration_without_verification: bool
    registration_requires_token: bool
    registration_shared_secret: str | None
    allow_guest_access: bool
    max_upload_size: int
    max_request_body_size: int
    media_store_path: str
    default_room_version: str
    public_baseurl: str | None
    rate_limits: Mapping[str, RateLimit]
    rooms: RoomsConfig
    presence_enabled: bool
    #: serve /.well-known/matrix/client (Synapse: serve_client_wellknown, or implied by
    #: an explicit public_baseurl)
    serve_client_wellknown: bool = False
    turn: TurnConfig = TurnConfig()
    #: Synapse's default when the key is absent: matrix.org, keys not pinned
    trusted_key_servers: tuple[TrustedKeyServer, ...] = (TrustedKeyServer("matrix.org"),)
    url_preview: UrlPreviewConfig = UrlPreviewConfig()
    #: new uploads are served only by /_matrix/client/v1/media/* (Synapse's key and
    #: meaning: media stored while it was off stays on the legacy endpoints)
    enable_authenticated_media: bool = True
    #: async upload: empty media IDs (POST /media/v1/create) one user may hold
    max_pending_media_uploads: int = 5
    #: images with more pixels are not thumbnailed (Synapse's key; decompression bombs)
    max_image_pixels: int = 32 * 1024 * 1024
    media_retention: MediaRetentionConfig = MediaRetentionConfig()
    login_via_existing_session: LoginViaExistingSession = LoginViaExistingSession()
    federation_outbox: FederationOutboxConfig = FederationOutboxConfig()
    #: identity servers third-party invites may use (Synapse's key): host names, or
    #: for tests ``http(s)://host:port`` base URLs (homeserver/http/identity_servers.py)
    trusted_third_party_id_servers: tuple[str, ...] = ()
    #: the built-in SFU (``voip: {sfu: ...}``, voip/sfu/sfu_config.py)
    sfu: SfuConfig = SfuConfig()
    #: MSC4140 limits (max_event_delay_duration, msc4140_max_delayed_events_per_user)
    delayed_events: DelayedEventsConfig = DelayedEventsConfig()
    #: MSC4143 transports (matrix_rtc)
    matrix_rtc: MatrixRtcConfig = MatrixRtcConfig()
    warnings: tuple[str, ...] = ()


# Synapse settings we accept without complaint although they change nothing here.
_IGNORED_SYNAPSE_KEYS = frozenset({
    "pid_file", "log_config", "report_stats", "macaroon_secret_key", "form_secret",
    "suppress_key_server_warning", "web_client_location",
    "serve_server_wellknown", "admin_contact", "use_presence",
})


def _deep_merge(base: dict, override: Mapping) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_config_files(paths: Iterable[str]) -> Config:
    """Read and merge the YAML files (later ones win, mappings merged deeply)."""
    merged: dict = {}
    first_dir = None
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping")
        first_dir = first_dir or os.path.dirname(os.path.abspath(path))
        merged = _deep_merge(merged, data)
    if first_dir is None:
        raise ConfigError("no config file given")
    return parse_config(merged, first_dir)


def _parse_baseurl(value: str | None) -> str | None:
    """``public_baseurl``: an http(s) URL, kept with a trailing slash as Synapse does."""
    if value is None:
        return None
    if not value.startswith(("https://", "http://")) or len(value.split("://", 1)[1]) < 1:
        raise ConfigError(f"public_baseurl: expected an http(s) URL, got {value!r}")
    return value if value.endswith("/") else value + "/"


def parse_config(raw: Mapping[str, Any], config_dir: str) -> Config:
    """Validate a merged raw mapping into a Config; raises ConfigError."""
    r = Reader(raw)
    server_name = r.get("server_name", str, check=is_valid_server_name,
                        why="not a valid server name")
    if not server_name:
        raise ConfigError("server_name: required")

    def path(key: str, default: str | None) -> str | None:
        value = r.get(key, str, default)
        return None if value is None else os.path.join(config_dir, value)

    data_dir = path("data_dir", ".")
    listeners = parse_listeners(r.get("listeners", list), 8008)
    database = r.get("database", dict, {"name": "sqlite3",
                                        "args": {"database": "homeserver.db"}})
    if database.get("name") not in ("sqlite3", "psycopg2"):
        raise ConfigError(f"database.name: expected sqlite3 or psycopg2, "
                          f"got {database.get('name')!r}")
    args = dict(database.get("args") or {})
    if database["name"] == "sqlite3":
        args["database"] = os.path.join(data_dir, str(args.get("database", "homeserver.db")))
    database = {"name": database["name"], "args": args}

    room_version = parse_default_room_version(r)
    rooms = parse_rooms(r.get("rooms", dict, {}))
    http_raw = r.get("http", dict, {})
    body_limit = parse_size("http.max_request_body_size",
                             http_raw.get("max_request_body_size", "1M"))
    max_upload = parse_size("max_upload_size", r.get("max_upload_size", (int, str), "50M"))
    ca_list = r.get("federation_custom_ca_list", list, [])
    whitelist = r.get("ip_range_whitelist", list, [])
    blacklist = r.get("ip_range_blacklist", list, [])
    for key, ranges in (("ip_range_whitelist", whitelist), ("ip_range_blacklist", blacklist)):
        try:
            parse_ranges(ranges)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{key}: {e}") from None
    presence_raw = r.get("presence", dict, {})
    sfu, sfu_warnings = parse_sfu(r)

    config = Config(
        server_name=server_name,
        config_dir=config_dir,
        data_dir=data_dir,
        listeners=listeners,
        database=database,
        signing_key_path=path("signing_key_path", f"{server_name}.signing.key"),
        tls_certificate_path=path("tls_certificate_path", None),
        tls_private_key_path=path("tls_private_key_path", None),
        federation_custom_ca_list=tuple(os.path.join(config_dir, p) for p in ca_list),
        federation_verify_certificates=r.get("federation_verify_certificates", bool, True),
        ip_range_whitelist=tuple(whitelist),
        ip_range_blacklist=tuple(blacklist),
        enable_registration=r.get("enable_registration", bool, False),
        enable_registration_without_verification=r.get(
            "enable_registration_without_verification", bool, False),
        registration_requires_token=r.get("registration_requires_token", bool, False),
        registration_shared_secret=r.get("registration_shared_secret", str, None),
        allow_guest_access=r.get("allow_guest_access", bool, False),
        max_upload_size=max_upload,
        max_request_body_size=max(body_limit, 1024),
        media_store_path=path("media_store_path", "media_store"),
        default_room_version=room_version,
        public_baseurl=_parse_baseurl(r.get("public_baseurl", str, None)),
        rate_limits=parse_rate_limits(raw),
        rooms=rooms,
        presence_enabled=bool(presence_raw.get("enabled", True)),
        serve_client_wellknown=r.get("serve_client_wellknown", bool, False),
        turn=parse_turn(r, config_dir),
        trusted_key_servers=parse_key_servers(
            r.get("trusted_key_servers", list, None),
            r.get("federation_verify_certificates", bool, True)),
        url_preview=parse_url_preview(r),
        enable_authenticated_media=r.get("enable_authenticated_media", bool, True),
        max_pending_media_uploads=r.get("max_pending_media_uploads", int, 5,
                                        check=lambda v: v > 0, why="must be > 0"),
        max_image_pixels=parse_size("max_image_pixels",
                                     r.get("max_image_pixels", (int, str), "32M")),
        media_retention=parse_media_retention(r.get("media_retention", dict, {}) or {}),
        login_via_existing_session=parse_login_via_existing_session(
            r.get("login_via_existing_session", dict, {}) or {}),
        federation_outbox=parse_federation_outbox(r.get("federation", dict, {}) or {}),
        trusted_third_party_id_servers=parse_id_servers(
            r.get("trusted_third_party_id_servers", list, [])),
        sfu=sfu,
        delayed_events=parse_delayed_events(r),
        matrix_rtc=parse_rtc_transports(r),
    )
    if (config.enable_registration and not config.enable_registration_without_verification
            and not config.registration_requires_token):
        # Synapse refuses this combination too: open registration with no check at all
        raise ConfigError("enable_registration: open registration without verification needs "
                          "enable_registration_without_verification: true")
    r.seen.update(k for k in raw if k.startswith("rc_"))
    unknown = sorted(k for k in raw if k not in r.seen and k not in _IGNORED_SYNAPSE_KEYS)
    return dataclasses.replace(
        config, warnings=tuple(f"unknown config key {k!r} ignored" for k in unknown)
        + sfu_warnings)
