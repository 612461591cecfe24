"""Media: URL previews and media retention (Synapse's keys). Upload and thumbnail
limits are single values read with the rest in :mod:`.parse`."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

from homeserver.config.values import ConfigError, Reader, parse_duration_ms, parse_size
from homeserver.http.outbound import parse_ranges


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


_URL_RULE_KEYS = frozenset({"scheme", "netloc", "path", "query", "fragment", "username",
                            "password", "hostname", "port"})


def parse_url_preview(r: Reader) -> UrlPreviewConfig:
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
        max_spider_size=parse_size("max_spider_size",
                                    r.get("max_spider_size", (int, str), "10M")),
        accept_language=tuple(languages))


def parse_media_retention(raw: Mapping[str, Any]) -> MediaRetentionConfig:
    """``media_retention: {local_media_lifetime, remote_media_lifetime}``: durations,
    each optional (null or absent: never)."""
    def lifetime(key: str) -> int | None:
        value = raw.get(key)
        return None if value is None else parse_duration_ms(f"media_retention.{key}", value)

    return MediaRetentionConfig(local_media_lifetime_ms=lifetime("local_media_lifetime"),
                                remote_media_lifetime_ms=lifetime("remote_media_lifetime"))
