"""Send-to-device messaging (spec: Client-Server API, "Send-to-Device messaging";
to_device.yaml).

``PUT /sendToDevice/{eventType}/{txnId}`` queues one message per target device in
its inbox (``store.to_device``); ``"*"`` means every device the user has. /sync
delivers them (``homeserver.sync.builder``) and deletes them once the device syncs
with a later token. The messages and the transaction's record are written in one
database transaction, so a retry, even one racing the first request, is queued
once. Messages for users of other servers go, per server, to the federation outbox
as ``m.direct_to_device`` EDUs (``store/outbox.py``) for the federation sender to
come; unknown local devices are skipped.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable, Mapping

from homeserver.errors import BadJson
from homeserver.http.validate import require
from homeserver.ids import UserID
from homeserver.store.outbox import DIRECT_TO_DEVICE, OutboxEntry

#: the idempotency record for a to-device transaction (client_txn_ids.event_id)
_SENT_MARKER = "to-device"


class ToDeviceService:
    def __init__(self, *, store: Any, server_name: str,
                 notify_user: Callable[[str], None]) -> None:
        """``store``: the GlobalStore (to_device, devices)."""
        self._store = store
        self._server_name = server_name
        self._notify_user = notify_user

    async def send(self, sender: str, scope: str, event_type: str, txn_id: str,
                   body: Mapping[str, Any]) -> None:
        messages = require(body, "messages", dict)
        txn_key = f"/sendToDevice/{event_type}/{txn_id}"
        deliveries = []
        remote: dict[str, dict[str, Any]] = {}
        for user_id, by_device in messages.items():
            user = UserID.parse(user_id)
            if not isinstance(by_device, dict) or not all(
                    isinstance(c, dict) for c in by_device.values()):
                raise BadJson(f"messages[{user_id}] must map device IDs to objects")
            if user.domain != self._server_name:
                remote.setdefault(user.domain, {})[user_id] = by_device
                continue
            known = {d.device_id for d in await self._store.devices.get_devices(user_id)}
            targets = known if "*" in by_device else set(by_device) & known
            for device_id in sorted(targets):
                content = by_device.get(device_id, by_device.get("*"))
                deliveries.append((user_id, device_id, {
                    "sender": sender, "type": event_type, "content": content}))
        # spec (server-server "Send-to-device messaging"): one EDU per destination,
        # with a message_id unique to it, so the receiver can drop a resent copy
        outbound = [OutboxEntry(DIRECT_TO_DEVICE, sender, {
            "sender": sender, "type": event_type, "message_id": secrets.token_hex(16),
            "messages": by_user}, destination=server)
            for server, by_user in sorted(remote.items())]
        if not await self._store.to_device.send_once(
                (sender, scope, txn_key), _SENT_MARKER, deliveries, outbound):
            return  # a retry: the messages were queued the first time
        for user_id in {u for u, _, _ in deliveries}:
            self._notify_user(user_id)
