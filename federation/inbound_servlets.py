"""Servlets of the inbound room endpoints: ``/send`` and the reads.

Spec: Server-Server API, "PUT /send/{txnId}", "GET /event/{eventId}",
"GET /state/{roomId}", "GET /state_ids/{roomId}", "GET /backfill/{roomId}",
"GET /event_auth/{roomId}/{eventId}", "POST /get_missing_events/{roomId}",
"GET /timestamp_to_event/{roomId}".
Thin: a route, the X-Matrix origin, one call into ``TransactionHandler`` or
``RoomReads``.
"""

from __future__ import annotations

from typing import Any

from federation.room_reads import RoomReads
from federation.server import FederationAuthenticator, authenticated
from federation.transactions import TransactionHandler
from homeserver.http.server import ApiRequest, Router

_V1 = "/_matrix/federation/v1"
_ID = "(?P<{}>[^/]+)"


def register(router: Router, *, authenticator: FederationAuthenticator,
             transactions: TransactionHandler, reads: RoomReads) -> None:
    async def send(request: ApiRequest) -> tuple[int, Any]:
        return 200, await transactions.on_send(request.requester, request.path["txn_id"],
                                               request.json())

    async def event(request: ApiRequest) -> tuple[int, Any]:
        return 200, await reads.event(request.requester, request.path["event_id"])

    async def state(request: ApiRequest) -> tuple[int, Any]:
        return 200, await reads.state(request.requester, request.path["room_id"],
                                      request.arg("event_id"))

    async def state_ids(request: ApiRequest) -> tuple[int, Any]:
        return 200, await reads.state_ids(request.requester, request.path["room_id"],
                                          request.arg("event_id"))

    async def backfill(request: ApiRequest) -> tuple[int, Any]:
        return 200, await reads.backfill(request.requester, request.path["room_id"],
                                         request.args("v"), request.arg("limit", "10"))

    async def event_auth(request: ApiRequest) -> tuple[int, Any]:
        return 200, await reads.event_auth(request.requester, request.path["room_id"],
                                           request.path["event_id"])

    async def missing_events(request: ApiRequest) -> tuple[int, Any]:
        return 200, await reads.get_missing_events(
            request.requester, request.path["room_id"], request.json())

    async def timestamp_to_event(request: ApiRequest) -> tuple[int, Any]:
        return 200, await reads.timestamp_to_event(
            request.requester, request.path["room_id"], request.arg("ts"), request.arg("dir"))

    room, event_id = _ID.format("room_id"), _ID.format("event_id")
    for method, path, handler in [
        ("PUT", f"{_V1}/send/{_ID.format('txn_id')}", send),
        ("GET", f"{_V1}/event/{event_id}", event),
        ("GET", f"{_V1}/state/{room}", state),
        ("GET", f"{_V1}/state_ids/{room}", state_ids),
        ("GET", f"{_V1}/backfill/{room}", backfill),
        ("GET", f"{_V1}/event_auth/{room}/{event_id}", event_auth),
        ("POST", f"{_V1}/get_missing_events/{room}", missing_events),
        ("GET", f"{_V1}/timestamp_to_event/{room}", timestamp_to_event),
    ]:
        router.add(method, path, authenticated(authenticator, handler))
