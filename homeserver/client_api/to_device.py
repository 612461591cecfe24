"""``PUT /sendToDevice/{eventType}/{txnId}`` (spec: Client-Server API,
"Send-to-Device messaging"; to_device.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.rooms.rules.transactions import scope_of
from homeserver.sync.to_device import ToDeviceService

_C = "/_matrix/client/(?:v3|r0)"


def register(router: Router, *, auth: Any, to_device: ToDeviceService) -> None:
    async def send(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        await to_device.send(requester.user_id,
                             scope_of(requester),
                             request.path["event_type"], request.path["txn_id"],
                             request.json())
        return 200, {}

    router.add("PUT", _C + "/sendToDevice/(?P<event_type>[^/]+)/(?P<txn_id>[^/]+)", send)
