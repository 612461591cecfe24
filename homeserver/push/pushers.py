"""Pushers (spec: Client-Server API, "Push Notifications": GET /pushers,
POST /pushers/set; pusher.yaml).

An ``http`` pusher names a push gateway (``data.url``, whose path must be
``/_matrix/push/v1/notify``); ``kind: null`` removes the pusher with that app_id and
pushkey. Email pushers are not supported (400).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from homeserver.errors import InvalidParam, MissingParam
from homeserver.http.validate import optional
from homeserver.store.pushers import Pusher

NOTIFY_PATH = "/_matrix/push/v1/notify"
MAX_APP_ID_CHARS = 64
MAX_PUSHKEY_BYTES = 512
_REQUIRED = ("app_display_name", "device_display_name", "lang", "data")


def check_gateway_url(url: Any) -> str:
    """A push gateway URL: http(s), a host, and the notify path (Synapse accepts
    plain http too, which tests and local gateways use)."""
    if not isinstance(url, str):
        raise InvalidParam("data.url is required for http pushers")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParam("data.url must be an http(s) URL")
    if parts.path != NOTIFY_PATH:
        raise InvalidParam(f"data.url must have a path of {NOTIFY_PATH!r}")
    return url


class PusherService:
    def __init__(self, store: Any, now_ms: Callable[[], int]) -> None:
        """``store``: ``GlobalStore.pushers``."""
        self._store = store
        self._now_ms = now_ms

    async def delete_all(self, user_id: str) -> None:
        """Account deactivation: no more pushes to the user's devices (as Synapse's
        ``delete_all_pushers_for_user``)."""
        await self._store.delete_user(user_id)

    async def list(self, user_id: str) -> dict[str, Any]:
        return {"pushers": [p.to_json() for p in await self._store.for_users([user_id])]}

    async def set(self, user_id: str, body: Mapping[str, Any]) -> None:
        """POST /pushers/set: validate everything before writing anything."""
        if "kind" not in body:
            raise MissingParam("Missing parameters: kind")
        kind = optional(body, "kind", str)
        missing = [k for k in ("app_id", "pushkey") if body.get(k) is None]
        if missing:
            raise MissingParam(f"Missing parameters: {', '.join(missing)}")
        app_id, pushkey = optional(body, "app_id", str), optional(body, "pushkey", str)
        if len(app_id) > MAX_APP_ID_CHARS:
            raise InvalidParam(f"app_id may be at most {MAX_APP_ID_CHARS} characters")
        if len(pushkey.encode("utf-8")) > MAX_PUSHKEY_BYTES:
            raise InvalidParam(f"pushkey may be at most {MAX_PUSHKEY_BYTES} bytes")
        if kind is None:
            await self._store.delete(user_id, app_id, pushkey)
            return
        missing = [k for k in _REQUIRED if body.get(k) is None]
        if missing:
            raise MissingParam(f"Missing parameters: {', '.join(missing)}")
        if kind != "http":
            raise InvalidParam(f"Unsupported pusher kind {kind!r} (only http)")
        data = optional(body, "data", dict)
        check_gateway_url(data.get("url"))
        if data.get("format") is not None and data["format"] != "event_id_only":
            raise InvalidParam("data.format may only be event_id_only")
        append = optional(body, "append", bool, False)
        pusher = Pusher(
            user_id=user_id, app_id=app_id, pushkey=pushkey, kind=kind,
            app_display_name=optional(body, "app_display_name", str),
            device_display_name=optional(body, "device_display_name", str),
            profile_tag=optional(body, "profile_tag", str),
            lang=optional(body, "lang", str), data=dict(data), pushkey_ts=self._now_ms())
        await self._store.set(pusher, append=append)
