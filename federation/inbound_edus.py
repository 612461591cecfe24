"""``m.direct_to_device`` and ``m.presence`` EDUs from other servers.

Spec: Server-Server API, "Send-to-device messaging" and "Presence". A server speaks
only for its own users: a to-device EDU whose ``sender`` is not the origin's, or a
presence update for another server's user, is ignored (EDUs have no error channel).

To-device messages enter the same per-device inboxes as local ``/sendToDevice``
(``store.to_device``), so /sync delivers them and wakes for them the same way.
``"*"`` means every device the local user has. A sender retries an EDU until a
transaction carrying it succeeds, possibly in a new transaction (the inbound /send
dedup by transaction ID does not catch that), so each message is also deduplicated by
(origin, ``message_id``), in the same database transaction as its delivery. Those
records are purged hourly once a week old: far past any useful retry.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

from federation.edus import EduHandlers
from homeserver.sync.presence import SETTABLE, UserPresence

DIRECT_TO_DEVICE = "m.direct_to_device"
PRESENCE = "m.presence"
#: how long a remote message_id is remembered
MESSAGE_ID_KEEP_MS = 7 * 24 * 3600 * 1000


class Devices(Protocol):
    async def get_devices(self, user_id: str) -> list[Any]: ...


class DeviceInbox(Protocol):
    async def add_federation_messages(self, origin: str, message_id: str,
                                      deliveries: list[tuple[str, str, Mapping[str, Any]]],
                                      ) -> int | None: ...

    async def purge_federation_message_ids(self, older_than_ts: int) -> int: ...


class Presence(Protocol):
    async def remote_update(self, p: UserPresence) -> bool: ...


def _domain(user_id: Any) -> str | None:
    if not isinstance(user_id, str) or not user_id.startswith("@") or ":" not in user_id:
        return None
    return user_id.split(":", 1)[1]


class DeviceMessages:
    """Inbound ``m.direct_to_device``: ``{sender, type, message_id, messages:
    {user_id: {device_id | "*": content}}}``."""

    def __init__(self, *, server_name: str, devices: Devices, inbox: DeviceInbox,
                 notify_users: Callable[[Iterable[str]], None]) -> None:
        self._server_name = server_name
        self._devices = devices
        self._inbox = inbox
        self._notify_users = notify_users

    def register(self, edus: EduHandlers) -> None:
        edus.register(DIRECT_TO_DEVICE, self.on_direct_to_device)

    async def purge_old(self, now_ms: int) -> int:
        """Forget message IDs older than :data:`MESSAGE_ID_KEEP_MS` (a
        ``homeserver.periodic.PeriodicJob``, ``federation.wiring.housekeeping``)."""
        return await self._inbox.purge_federation_message_ids(now_ms - MESSAGE_ID_KEEP_MS)

    async def on_direct_to_device(self, origin: str, content: Mapping[str, Any]) -> None:
        sender, event_type = content.get("sender"), content.get("type")
        message_id, messages = content.get("message_id"), content.get("messages")
        if _domain(sender) != origin or not isinstance(event_type, str) \
                or not isinstance(message_id, str) or not message_id \
                or not isinstance(messages, Mapping):
            return
        deliveries = []
        for user_id, by_device in messages.items():
            if _domain(user_id) != self._server_name or not isinstance(by_device, Mapping):
                continue
            known = {d.device_id for d in await self._devices.get_devices(user_id)}
            targets = known if "*" in by_device else set(by_device) & known
            for device_id in sorted(targets):
                body = by_device.get(device_id, by_device.get("*"))
                if isinstance(body, Mapping):
                    deliveries.append((user_id, device_id, {
                        "sender": sender, "type": event_type, "content": dict(body)}))
        if await self._inbox.add_federation_messages(origin, message_id, deliveries) \
                is None:
            return  # seen before: delivered the first time
        users = {u for u, _, _ in deliveries}
        if users:
            self._notify_users(users)


class RemotePresence:
    """Inbound ``m.presence``: ``{push: [{user_id, presence, last_active_ago?,
    currently_active?, status_msg?}]}``; applied only while presence is enabled."""

    def __init__(self, *, presence: Presence, now_ms: Callable[[], int]) -> None:
        self._presence = presence
        self._now_ms = now_ms

    def register(self, edus: EduHandlers) -> None:
        edus.register(PRESENCE, self.on_presence)

    async def on_presence(self, origin: str, content: Mapping[str, Any]) -> None:
        push = content.get("push")
        if not isinstance(push, list):
            return
        for update in push:
            p = self._parse(origin, update)
            if p is not None:
                await self._presence.remote_update(p)

    def _parse(self, origin: str, update: Any) -> UserPresence | None:
        if not isinstance(update, Mapping):
            return None
        user_id, state = update.get("user_id"), update.get("presence")
        if _domain(user_id) != origin or state not in SETTABLE:
            return None
        ago = update.get("last_active_ago")
        last_active = self._now_ms() - ago if isinstance(ago, int) \
            and not isinstance(ago, bool) and ago >= 0 else None
        status = update.get("status_msg")
        return UserPresence(user_id, state, last_active,
                            status if isinstance(status, str) else None,
                            currently_active=update.get("currently_active") is True)
