"""A user's devices: list, rename, delete, log out (spec: "Device Management",
``/logout``, ``/logout/all``).

Deleting a device deletes its access and refresh tokens (spec: "Relationship between
access tokens and devices"), empties its to-device inbox, drops it from the
Authenticator's token cache, and tells whoever registered a deletion hook (end-to-end
keys live elsewhere and are removed there).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from twisted.logger import Logger

from homeserver.errors import BadJson, InvalidParam, NotFound

log = Logger()

#: Synapse's limit; the name is shown to other users, so keep it short
MAX_DISPLAY_NAME_LENGTH = 100

DeletionHook = Callable[[str, list[str]], Awaitable[None]]


def device_json(device: Any) -> dict[str, Any]:
    """The spec's ``Device`` object; absent fields are omitted, not null."""
    out: dict[str, Any] = {"device_id": device.device_id}
    if device.display_name is not None:
        out["display_name"] = device.display_name
    if device.last_seen_ip is not None:
        out["last_seen_ip"] = device.last_seen_ip
    if device.last_seen_ts is not None:
        out["last_seen_ts"] = device.last_seen_ts
    return out


def check_display_name(display_name: Any) -> str | None:
    if display_name is None:
        return None
    if not isinstance(display_name, str):
        raise BadJson("display_name must be a string")
    if len(display_name) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidParam(
            f"Device display name is too long (max {MAX_DISPLAY_NAME_LENGTH})")
    return display_name


class DeviceManager:
    def __init__(self, devices_store: Any, to_device_store: Any, auth: Any,
                 notifier: Any, *,
                 device_lists_changed: Callable[[str], Awaitable[None]] | None = None,
                 ) -> None:
        """``device_lists_changed(user_id)`` wakes the syncs of the user and their room
        mates after a rename or deletion (the store put it on the device-lists
        stream); without it only the user's own syncs are woken."""
        self._store = devices_store
        self._device_lists_changed = device_lists_changed
        self._to_device = to_device_store
        self._auth = auth
        self._notifier = notifier
        self._hooks: list[DeletionHook] = []

    def add_deletion_hook(self, hook: DeletionHook) -> None:
        """``await hook(user_id, device_ids)`` after devices were deleted (E2EE keys…)."""
        self._hooks.append(hook)

    # -- reading and renaming ---------------------------------------------------------
    async def list_devices(self, user_id: str) -> list[dict[str, Any]]:
        return [device_json(d) for d in await self._store.get_devices(user_id)]

    async def get_device(self, user_id: str, device_id: str) -> dict[str, Any]:
        device = await self._store.get_device(user_id, device_id)
        if device is None:
            raise NotFound("No device found")
        return device_json(device)

    async def rename_device(self, user_id: str, device_id: str, display_name: Any) -> None:
        """Set the display name (``None``: leave it unchanged, as the spec says)."""
        name = check_display_name(display_name)
        if name is None:
            if await self._store.get_device(user_id, device_id) is None:
                raise NotFound("No device found")
            return
        if not await self._store.set_device_display_name(user_id, device_id, name):
            raise NotFound("No device found")
        await self._changed(user_id)

    async def _changed(self, user_id: str) -> None:
        """The user's device list changed: room mates see it in ``device_lists``
        (spec: "Tracking the device list for a user"; the display name is part of
        the device keys others query)."""
        if self._device_lists_changed is not None:
            await self._device_lists_changed(user_id)
        else:
            self._notifier.notify_user(user_id)

    async def whois(self, user_id: str) -> dict[str, Any]:
        """``devices`` of ``GET /admin/whois``: one session per device, with the
        connection it was last seen on."""
        out: dict[str, Any] = {}
        for device in await self._store.get_devices(user_id):
            connections = []
            if device.last_seen_ts is not None:
                connection: dict[str, Any] = {"last_seen": device.last_seen_ts}
                if device.last_seen_ip is not None:
                    connection["ip"] = device.last_seen_ip
                if device.last_seen_user_agent is not None:
                    connection["user_agent"] = device.last_seen_user_agent
                connections.append(connection)
            out[device.device_id] = {"sessions": [{"connections": connections}]}
        return out

    # -- deleting ---------------------------------------------------------------------
    async def delete_devices(self, user_id: str, device_ids: Iterable[str]) -> list[str]:
        """Delete devices (unknown IDs are fine: "or had been removed previously")."""
        wanted = sorted(set(device_ids))
        if not wanted:
            return []
        deleted = await self._store.delete_devices(user_id, wanted)
        for device_id in wanted:
            # even for a device already gone: a cached token must not outlive it
            self._auth.forget_user(user_id, device_id=device_id)
        for device_id in deleted:
            await self._to_device.delete_device_inbox(user_id, device_id)
        if deleted:
            for hook in self._hooks:
                try:
                    await hook(user_id, deleted)
                except Exception:
                    log.failure("device deletion hook failed for {user}", user=user_id)
            await self._changed(user_id)
        return deleted

    async def delete_all_devices(self, user_id: str, *, except_device_id: str | None = None,
                                 except_token_id: int | None = None,
                                 except_token: str | None = None) -> None:
        """Delete every device but one and every token but one (password change,
        ``/logout/all``, deactivation)."""
        devices = await self._store.get_devices(user_id)
        await self.delete_devices(
            user_id, [d.device_id for d in devices if d.device_id != except_device_id])
        # tokens without a device, and the kept device's other tokens
        await self._store.delete_tokens_for_user(user_id, except_token_id=except_token_id)
        self._auth.forget_user(user_id, except_token=except_token)

    async def logout(self, requester: Any) -> None:
        """``POST /logout``: the token goes, and so does its device."""
        if requester.device_id is not None:
            await self.delete_devices(requester.user_id, [requester.device_id])
        elif requester.token_id is not None:
            await self._store.delete_access_token(requester.token_id)
        if requester.access_token:
            self._auth.forget_token(requester.access_token)

    async def logout_all(self, user_id: str) -> None:
        """``POST /logout/all``: every token and every device of the user."""
        await self.delete_all_devices(user_id)
