"""The legacy sync endpoints (spec: "Syncing" → "Legacy endpoints", old_sync.yaml):
``GET /events``, ``GET /initialSync``, ``GET /rooms/{roomId}/initialSync``. Thin: the
work is :class:`homeserver.sync.legacy.LegacySync`'s.
"""

from __future__ import annotations

from typing import Any

from homeserver.client_api.sync import MAX_TIMEOUT_MS, bool_arg
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg
from homeserver.ids import parse_room_id
from homeserver.sync.legacy import DEFAULT_INITIAL_LIMIT, LegacySync
from homeserver.sync.service import Cancellation, parse_since

_C = "/_matrix/client/(?:v3|r0)"
#: the long-poll of /events when the client names none: old_sync.yaml gives no default;
#: 0 as for /sync (Synapse waits 30 s; clients of this endpoint all pass a timeout)
DEFAULT_EVENTS_TIMEOUT_MS = 0
_MAX_INITIAL_LIMIT = 100


def register(router: Router, *, auth: Any, legacy: LegacySync) -> None:
    async def events(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        room_id = request.arg("room_id")
        int_arg(request.arg("limit"), "limit", 0)  # accepted and checked, as Synapse
        cancellation = Cancellation()
        request.raw.notifyFinish().addErrback(lambda _: cancellation.cancel())
        body = await legacy.events(
            requester, from_token=parse_since(request.arg("from")),
            timeout_ms=int_arg(request.arg("timeout"), "timeout",
                               DEFAULT_EVENTS_TIMEOUT_MS, maximum=MAX_TIMEOUT_MS),
            room_id=parse_room_id(room_id) if room_id is not None else None,
            cancellation=cancellation)
        return 200, body if body is not None else {}

    async def initial_sync(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await legacy.initial_sync(
            requester, limit=_limit(request),
            archived=bool_arg(request.arg("archived"), "archived"))

    async def room_initial_sync(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await legacy.room_initial_sync(
            requester, parse_room_id(request.path["room_id"]),
            limit=_limit(request))

    router.add("GET", _C + "/events", events)
    router.add("GET", _C + "/initialSync", initial_sync)
    router.add("GET", _C + "/rooms/(?P<room_id>[^/]+)/initialSync", room_initial_sync)


def _limit(request: ApiRequest) -> int:
    return int_arg(request.arg("limit"), "limit", DEFAULT_INITIAL_LIMIT,
                   maximum=_MAX_INITIAL_LIMIT)
