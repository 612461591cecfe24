"""Receipts and read markers (spec: Client-Server API, "Receipts", "Read and unread
markers"; receipts.yaml, read_markers.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.sync.receipts import ReceiptService

_ROOM = "/_matrix/client/(?:v3|r0)/rooms/(?P<room_id>[^/]+)"


def register(router: Router, *, auth: Any, receipts: ReceiptService) -> None:
    async def receipt(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        # spec: the body is required, yet many clients send none for a plain receipt
        body = request.json(allow_empty=True)
        await receipts.send_receipt(requester.user_id, request.path["room_id"],
                                    request.path["receipt_type"],
                                    request.path["event_id"], body)
        return 200, {}

    async def read_markers(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        await receipts.set_read_markers(requester.user_id, request.path["room_id"],
                                        request.json())
        return 200, {}

    router.add("POST", _ROOM + "/receipt/(?P<receipt_type>[^/]+)/(?P<event_id>[^/]+)",
               receipt)
    router.add("POST", _ROOM + "/read_markers", read_markers)
