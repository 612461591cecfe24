"""Send-to-device messaging (spec: Client-Server API, "Send-to-Device messaging";
to_device.yaml).

``PUT /sendToDevice/{eventType}/{txnId}`` queues one message per target device in
its inbox (``store.to_device``); ``"*"`` means every device the user has. /sync
delivers them (``homeserver.sync.builder``) and deletes them once the device syncs
with a later token. A retried transaction (same device, same path) is not queued
twice. Messages for users of other servers need federation, which does not exist
yet: they are left out (and logged), while the local ones are delivered.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from twisted.logger import Logger

from homeserver.errors import BadJson
from homeserver.http.validate import require
from homeserver.ids import UserID

log = Logger()

#: the idempotency record for a to-device transaction (client_txn_ids.event_id)
_SENT_MARKER = "to-device"


class ToDeviceService:
    def __init__(self, *, store: Any, server_name: str,
                 notify_user: Callable[[str], None]) -> None:
        """``store``: the GlobalStore (to_device, devices, transactions)."""
        self._store = store
        self._server_name = server_name
        self._notify_user = notify_user

    async def send(self, sender: str, scope: str, event_type: str, txn_id: str,
                   body: Mapping[str, Any]) -> None:
        messages = require(body, "messages", dict)
        txn_key = f"/sendToDevice/{event_type}/{txn_id}"
        transactions = self._store.transactions
        if await transactions.get_event_id(sender, scope, txn_key) is not None:
            return  # a retry: the messages were queued the first time
        deliveries = []
        for user_id, by_device in messages.items():
            user = UserID.parse(user_id)
            if not isinstance(by_device, dict) or not all(
                    isinstance(c, dict) for c in by_device.values()):
                raise BadJson(f"messages[{user_id}] must map device IDs to objects")
            if user.domain != self._server_name:
                log.info("to-device for {user}: no federation yet; not sent", user=user_id)
                continue
            known = {d.device_id for d in await self._store.devices.get_devices(user_id)}
            targets = known if "*" in by_device else set(by_device) & known
            for device_id in sorted(targets):
                content = by_device.get(device_id, by_device.get("*"))
                deliveries.append((user_id, device_id, {
                    "sender": sender, "type": event_type, "content": content}))
        await self._store.to_device.add_messages(deliveries)
        await transactions.record(sender, scope, txn_key, _SENT_MARKER)
        for user_id in {u for u, _, _ in deliveries}:
            self._notify_user(user_id)
