"""Configuration: YAML files merged deeply, validated once into frozen values.

Keys use Synapse's ``homeserver.yaml`` names wherever Synapse has one, so an operator's
existing file mostly just works; settings of our own live in their own sections
(``rooms:``, ``http:``). An unknown key is a warning; an invalid value is a
``ConfigError`` naming the key (the CLI turns it into one line on stderr and exit 2).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Iterable, Mapping

import yaml

from homeserver.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS
from homeserver.http.outbound import parse_ranges
from homeserver.ids import is_valid_server_name
from voip.sfu.sfu_config import SfuConfig, SfuConfigError, parse_sfu_config


class ConfigError(Exception):
    """An invalid configuration value; ``str()`` is one line naming the key."""


@dataclasses.dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst_count: float


@dataclasses.dataclass(frozen=True)
class Listener:
    port: int
    bind_addresses: tuple[str, ...]
    type: str
    tls: bool
    resources: frozenset[str]
    x_forwarded: bool = False


@dataclasses.dataclass(frozen=True)
class RoomsConfig:
    idle_seconds: float = 300.0
    max_open: int = 256
    max_warm: int = 256


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


@dataclasses.dataclass(frozen=True)
class LoginViaExistingSession:
    """Synapse's ``login_via_existing_session`` (spec v1.7, "Login",
    ``POST /login/get_token``, MSC3882): a logged-in device may mint a short-lived,
    single-use ``m.login.token`` for signing in another device. Off by default, as in
    Synapse: the token is as powerful as a password."""

    enabled: bool = False
    #: ask for the password again (User-Interactive Auth) before handing out a token
    require_ui_auth: bool = True
    token_timeout_ms: int = 5 * 60 * 1000


@dataclasses.dataclass(frozen=True)
class TrustedKeyServer:
    """A notary from ``trusted_key_servers`` (federation/keys.py asks it for a server's
    keys only when that server does not answer itself). ``verify_keys`` (key ID →
    unpadded base64) pins the notary's own keys; None trusts TLS alone, as Synapse."""

    server_name: str
    verify_keys: Mapping[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class UrlPreviewConfig:
    """URL previews (media_repo/url_preview.py) under Synapse's key names. Private and
    loopback targets are blocked even without ``url_preview_ip_range_blacklist``
    (homeserver/http/outbound.py), so unlike Synapse we do not insist on one."""

    enabled: bool = False
    ip_range_whitelist: tuple[str, ...] = ()
    ip_range_blacklist: tuple[str, ...] = ()
    #: Synapse's url_preview_url_blacklist: mappings of urlsplit attribute → pattern
    url_blacklist: tuple[Mapping[str, str], ...] = ()
    max_spider_size: int = 10 * 1024 * 1024
    accept_language: tuple[str, ...] = ("en",)


@dataclasses.dataclass(frozen=True)
class MediaRetentionConfig:
    """Synapse's ``media_retention``: delete media not accessed for this long
    (milliseconds; None, the default, keeps it forever)."""

    local_media_lifetime_ms: int | None = None
    remote_media_lifetime_ms: int | None = None


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
    warnings: tuple[str, ...] = ()


# Synapse's rate-limit keys and the defaults Synapse ships with.
_RATE_LIMIT_DEFAULTS: Mapping[str, RateLimit] = {
    "rc_message": RateLimit(0.2, 10),
    "rc_registration": RateLimit(0.17, 3),
    "rc_login.address": RateLimit(0.003, 5),
    "rc_login.account": RateLimit(0.003, 5),
    "rc_login.failed_attempts": RateLimit(0.17, 3),
    "rc_joins.local": RateLimit(0.1, 10),
    "rc_joins.remote": RateLimit(0.01, 10),
    "rc_invites.per_room": RateLimit(0.3, 10),
    "rc_invites.per_user": RateLimit(0.003, 5),
    "rc_admin_redaction": RateLimit(1, 50),
    "rc_3pid_validation": RateLimit(0.003, 5),
    "rc_presence.per_user": RateLimit(0.1, 1),
    # ours: POST /login/get_token per user. The spec suggests at most one a minute,
    # which Synapse hard-codes; here it can be changed like the others
    "rc_login_token_request": RateLimit(1 / 60, 1),
}

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


class _Reader:
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


def _parse_id_servers(entries: list) -> tuple[str, ...]:
    """``trusted_third_party_id_servers``: server names or http(s) base URLs."""
    for entry in entries:
        name = entry.split("://", 1)[1] if isinstance(entry, str) and \
            entry.startswith(("http://", "https://")) else entry
        if not isinstance(name, str) or not is_valid_server_name(name.rstrip("/")):
            raise ConfigError("trusted_third_party_id_servers: expected server names or "
                              f"http(s)://host[:port] URLs, got {entry!r}")
    return tuple(e.rstrip("/") for e in entries)


def _parse_size(key: str, value: Any) -> int:
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


def _parse_listeners(raw: Any, default_port: int) -> tuple[Listener, ...]:
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


_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000,
                      "w": 604_800_000, "y": 31_536_000_000}


def _parse_duration_ms(key: str, value: Any) -> int:
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


def _parse_login_via_existing_session(raw: Mapping[str, Any]) -> LoginViaExistingSession:
    """``login_via_existing_session: {enabled, require_ui_auth, token_timeout}``."""
    r = _Reader(raw)
    try:
        enabled = r.get("enabled", bool, False)
        require_ui_auth = r.get("require_ui_auth", bool, True)
    except ConfigError as e:
        raise ConfigError(f"login_via_existing_session.{e}") from None
    return LoginViaExistingSession(
        enabled=enabled, require_ui_auth=require_ui_auth,
        token_timeout_ms=_parse_duration_ms("login_via_existing_session.token_timeout",
                                            raw.get("token_timeout", "5m")))


def _parse_federation_outbox(raw: Mapping[str, Any]) -> FederationOutboxConfig:
    """``federation: {pdu_backlog_max_age, edu_max_age}``: durations."""
    default = FederationOutboxConfig()
    return FederationOutboxConfig(
        pdu_backlog_max_age_ms=_parse_duration_ms(
            "federation.pdu_backlog_max_age",
            raw.get("pdu_backlog_max_age", default.pdu_backlog_max_age_ms)),
        edu_max_age_ms=_parse_duration_ms(
            "federation.edu_max_age", raw.get("edu_max_age", default.edu_max_age_ms)))


def _parse_media_retention(raw: Mapping[str, Any]) -> MediaRetentionConfig:
    """``media_retention: {local_media_lifetime, remote_media_lifetime}``: durations,
    each optional (null or absent: never)."""
    def lifetime(key: str) -> int | None:
        value = raw.get(key)
        return None if value is None else _parse_duration_ms(f"media_retention.{key}", value)

    return MediaRetentionConfig(local_media_lifetime_ms=lifetime("local_media_lifetime"),
                                remote_media_lifetime_ms=lifetime("remote_media_lifetime"))


def _parse_baseurl(value: str | None) -> str | None:
    """``public_baseurl``: an http(s) URL, kept with a trailing slash as Synapse does."""
    if value is None:
        return None
    if not value.startswith(("https://", "http://")) or len(value.split("://", 1)[1]) < 1:
        raise ConfigError(f"public_baseurl: expected an http(s) URL, got {value!r}")
    return value if value.endswith("/") else value + "/"


def _parse_turn(r: "_Reader", config_dir: str) -> TurnConfig:
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
        user_lifetime_ms=_parse_duration_ms(
            "turn_user_lifetime", r.get("turn_user_lifetime", (int, str), "1h")),
        allow_guests=r.get("turn_allow_guests", bool, True))


def _parse_key_servers(raw: Any, verify_certificates: bool) -> tuple[TrustedKeyServer, ...]:
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


_URL_RULE_KEYS = frozenset({"scheme", "netloc", "path", "query", "fragment", "username",
                            "password", "hostname", "port"})


def _parse_url_preview(r: "_Reader") -> UrlPreviewConfig:
    ranges = {}
    for key in ("url_preview_ip_range_whitelist", "url_preview_ip_range_blacklist"):
        ranges[key] = r.get(key, list, [])
        try:
            parse_ranges(ranges[key])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{key}: {e}") from None
    rules = r.get("url_preview_url_blacklist", list, [])
    for i, rule in enumerate(rules):
        key = f"url_preview_url_blacklist[{i}]"
        if not isinstance(rule, Mapping) or not rule:
            raise ConfigError(f"{key}: expected a mapping such as {{netloc: '*.example.com'}}")
        for attribute, pattern in rule.items():
            if attribute not in _URL_RULE_KEYS:
                raise ConfigError(f"{key}: unknown URL attribute {attribute!r}")
            if not isinstance(pattern, str):
                raise ConfigError(f"{key}.{attribute}: expected a string pattern")
            if pattern.startswith("^"):
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ConfigError(f"{key}.{attribute}: bad regular expression: {e}") \
                        from None
    languages = r.get("url_preview_accept_language", list, ["en"])
    if not languages or not all(isinstance(x, str) and x.strip() for x in languages):
        raise ConfigError("url_preview_accept_language: expected a list of language tags")
    return UrlPreviewConfig(
        enabled=r.get("url_preview_enabled", bool, False),
        ip_range_whitelist=tuple(ranges["url_preview_ip_range_whitelist"]),
        ip_range_blacklist=tuple(ranges["url_preview_ip_range_blacklist"]),
        url_blacklist=tuple(dict(rule) for rule in rules),
        max_spider_size=_parse_size("max_spider_size",
                                    r.get("max_spider_size", (int, str), "10M")),
        accept_language=tuple(languages))


def _parse_rate_limits(raw: Mapping[str, Any]) -> dict[str, RateLimit]:
    limits = dict(_RATE_LIMIT_DEFAULTS)
    for key, value in raw.items():
        if not key.startswith("rc_"):
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping")
        nested = {k: v for k, v in value.items() if isinstance(v, Mapping)}
        groups = {f"{key}.{k}": v for k, v in nested.items()} if nested else {key: value}
        for name, group in groups.items():
            ps, bc = group.get("per_second", 1.0), group.get("burst_count", 1.0)
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                       for x in (ps, bc)):
                raise ConfigError(f"{name}: per_second and burst_count must be numbers >= 0")
            limits[name] = RateLimit(float(ps), float(bc))
    return limits


def parse_config(raw: Mapping[str, Any], config_dir: str) -> Config:
    """Validate a merged raw mapping into a Config; raises ConfigError."""
    r = _Reader(raw)
    server_name = r.get("server_name", str, check=is_valid_server_name,
                        why="not a valid server name")
    if not server_name:
        raise ConfigError("server_name: required")

    def path(key: str, default: str | None) -> str | None:
        value = r.get(key, str, default)
        return None if value is None else os.path.join(config_dir, value)

    data_dir = path("data_dir", ".")
    listeners = _parse_listeners(r.get("listeners", list), 8008)
    database = r.get("database", dict, {"name": "sqlite3",
                                        "args": {"database": "homeserver.db"}})
    if database.get("name") not in ("sqlite3", "psycopg2"):
        raise ConfigError(f"database.name: expected sqlite3 or psycopg2, "
                          f"got {database.get('name')!r}")
    args = dict(database.get("args") or {})
    if database["name"] == "sqlite3":
        args["database"] = os.path.join(data_dir, str(args.get("database", "homeserver.db")))
    database = {"name": database["name"], "args": args}

    room_version = r.get("default_room_version", (str, int), DEFAULT_ROOM_VERSION)
    room_version = str(room_version)
    if room_version not in KNOWN_ROOM_VERSIONS:
        raise ConfigError(f"default_room_version: unsupported room version {room_version!r}")

    rooms_raw = r.get("rooms", dict, {})
    rooms = RoomsConfig(
        idle_seconds=float(_Reader(rooms_raw).get("idle_seconds", (int, float), 300,
                                                  check=lambda v: v > 0, why="must be > 0")),
        max_open=_Reader(rooms_raw).get("max_open", int, 256, check=lambda v: v > 0,
                                        why="must be > 0"),
        max_warm=_Reader(rooms_raw).get("max_warm", int, 256, check=lambda v: v > 0,
                                        why="must be > 0"),
    )
    http_raw = r.get("http", dict, {})
    body_limit = _parse_size("http.max_request_body_size",
                             http_raw.get("max_request_body_size", "1M"))
    max_upload = _parse_size("max_upload_size", r.get("max_upload_size", (int, str), "50M"))
    ca_list = r.get("federation_custom_ca_list", list, [])
    whitelist = r.get("ip_range_whitelist", list, [])
    blacklist = r.get("ip_range_blacklist", list, [])
    for key, ranges in (("ip_range_whitelist", whitelist), ("ip_range_blacklist", blacklist)):
        try:
            parse_ranges(ranges)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{key}: {e}") from None
    presence_raw = r.get("presence", dict, {})
    try:
        sfu, sfu_warnings = parse_sfu_config(r.get("voip", dict, {}) or {})
    except SfuConfigError as e:
        raise ConfigError(str(e)) from None

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
        rate_limits=_parse_rate_limits(raw),
        rooms=rooms,
        presence_enabled=bool(presence_raw.get("enabled", True)),
        serve_client_wellknown=r.get("serve_client_wellknown", bool, False),
        turn=_parse_turn(r, config_dir),
        trusted_key_servers=_parse_key_servers(
            r.get("trusted_key_servers", list, None),
            r.get("federation_verify_certificates", bool, True)),
        url_preview=_parse_url_preview(r),
        enable_authenticated_media=r.get("enable_authenticated_media", bool, True),
        max_pending_media_uploads=r.get("max_pending_media_uploads", int, 5,
                                        check=lambda v: v > 0, why="must be > 0"),
        max_image_pixels=_parse_size("max_image_pixels",
                                     r.get("max_image_pixels", (int, str), "32M")),
        media_retention=_parse_media_retention(r.get("media_retention", dict, {}) or {}),
        login_via_existing_session=_parse_login_via_existing_session(
            r.get("login_via_existing_session", dict, {}) or {}),
        federation_outbox=_parse_federation_outbox(r.get("federation", dict, {}) or {}),
        trusted_third_party_id_servers=_parse_id_servers(
            r.get("trusted_third_party_id_servers", list, [])),
        sfu=sfu,
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
