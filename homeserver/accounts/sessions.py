"""Issuing a login: the device, its access token and, for clients that support them,
a refresh token (spec: "Relationship between access tokens and devices", "Refreshing
access tokens", ``POST /refresh``).

Tokens are created by ``store.devices``, which keeps only their hashes.
"""

from __future__ import annotations

import secrets
import string
from typing import Any, Awaitable, Callable

from homeserver.errors import BadJson, InvalidParam, UnknownToken

#: Synapse's default ``refreshable_access_token_lifetime``: access tokens issued with a
#: refresh token expire after 5 minutes; tokens issued without one never expire
DEFAULT_REFRESHABLE_LIFETIME_MS = 5 * 60 * 1000
MAX_DEVICE_ID_LENGTH = 255
_DEVICE_ID_ALPHABET = string.ascii_uppercase


def generate_device_id() -> str:
    return "".join(secrets.choice(_DEVICE_ID_ALPHABET) for _ in range(10))


def check_device_id(device_id: Any) -> str | None:
    """A client-chosen device ID, or None to have one generated (M_BAD_JSON if not a
    string, M_INVALID_PARAM if empty or too long)."""
    if device_id is None:
        return None
    if not isinstance(device_id, str):
        raise BadJson("device_id must be a string")
    if not device_id:
        raise InvalidParam("device_id must not be empty")
    if len(device_id) > MAX_DEVICE_ID_LENGTH:
        raise InvalidParam(f"device_id cannot be longer than {MAX_DEVICE_ID_LENGTH} characters")
    return device_id


class SessionIssuer:
    def __init__(self, devices_store: Any, auth: Any, now_ms: Callable[[], int],
                 server_name: str, *,
                 refreshable_lifetime_ms: int = DEFAULT_REFRESHABLE_LIFETIME_MS,
                 device_lists_changed: Callable[[str], Awaitable[None]] | None = None,
                 ) -> None:
        """``device_lists_changed(user_id)``: wakes room mates' syncs after a new
        device (``homeserver.e2ee.device_lists.device_list_waker``)."""
        self._devices = devices_store
        self._device_lists_changed = device_lists_changed
        self._auth = auth
        self._now_ms = now_ms
        self._server_name = server_name
        #: how long an access token issued with a refresh token lives
        self.refreshable_lifetime_ms = refreshable_lifetime_ms

    async def start_session(self, user_id: str, *, device_id: str | None = None,
                            display_name: str | None = None, want_refresh: bool = False,
                            ip: str | None = None, user_agent: str | None = None,
                            ) -> dict[str, Any]:
        """Create (or reuse) the device and issue its tokens; the login response body.

        Reusing a device ID revokes the tokens it had: the spec lets the server
        invalidate them, and a device is one session, not several.
        """
        if device_id is None:
            device_id = generate_device_id()
            while not await self._devices.create_device(user_id, device_id, display_name,
                                                        ip=ip, user_agent=user_agent):
                device_id = generate_device_id()  # a collision: astronomically rare
            new_device = True
        else:
            new_device = await self._devices.create_device(user_id, device_id, display_name,
                                                           ip=ip, user_agent=user_agent)
            if not new_device:
                await self._devices.delete_tokens_for_device(user_id, device_id)
                self._auth.forget_user(user_id, device_id=device_id)
        if new_device and self._device_lists_changed is not None:
            # the store put the new device on the device-lists stream (spec:
            # "Tracking the device list for a user"): room mates must refetch keys
            await self._device_lists_changed(user_id)
        body: dict[str, Any] = {"user_id": user_id, "device_id": device_id,
                                "home_server": self._server_name}
        body.update(await self._issue_tokens(user_id, device_id, want_refresh))
        return body

    async def _issue_tokens(self, user_id: str, device_id: str,
                            want_refresh: bool) -> dict[str, Any]:
        if not want_refresh:
            token = await self._devices.create_access_token(user_id, device_id)
            return {"access_token": token}
        pair = await self._devices.create_token_pair(
            user_id, device_id,
            access_valid_until_ms=self._now_ms() + self.refreshable_lifetime_ms)
        return self._pair_json(pair)

    def _pair_json(self, pair: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"access_token": pair.access_token,
                                "refresh_token": pair.refresh_token}
        if pair.valid_until_ms is not None:
            body["expires_in_ms"] = max(0, pair.valid_until_ms - self._now_ms())
        return body

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """``POST /refresh``: a new access/refresh pair for the same device.

        An unknown, already-rotated-away or revoked refresh token is M_UNKNOWN_TOKEN
        without ``soft_logout``: that session is over (refresh tokens here do not
        expire on their own, so "unknown" never means "merely expired").
        """
        pair = await self._devices.rotate_refresh_token(
            refresh_token,
            access_valid_until_ms=self._now_ms() + self.refreshable_lifetime_ms)
        if pair is None:
            raise UnknownToken("Unknown refresh token", soft_logout=False)
        return self._pair_json(pair)
