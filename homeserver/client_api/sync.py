"""``GET /sync`` (spec: Client-Server API, "Syncing"; data/api/client-server/sync.yaml).

Thin: parses the query, then one call into :class:`homeserver.sync.service.SyncService`.
A client that hangs up during a long-poll cancels its wait at once.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import InvalidParam
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg
from homeserver.rooms.rules.transactions import scope_of
from homeserver.sync.builder import SyncRequest
from homeserver.sync.service import Cancellation, SyncService, parse_since

_C = "/_matrix/client/(?:v3|r0)"
#: a long-poll waits at most this long, whatever the client asks for
MAX_TIMEOUT_MS = 10 * 60 * 1000


def bool_arg(value: str | None, name: str) -> bool:
    if value is None or value == "false":
        return False
    if value == "true":
        return True
    raise InvalidParam(f"{name} must be 'true' or 'false'")


def register(router: Router, *, auth: Any, sync_service: SyncService) -> None:
    async def sync(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        since = parse_since(request.arg("since"))
        sync_filter = await sync_service.resolve_filter(requester.user_id,
                                                        request.arg("filter"))
        full_state = bool_arg(request.arg("full_state"), "full_state")
        timeout = int_arg(request.arg("timeout"), "timeout", 0, maximum=MAX_TIMEOUT_MS)
        cancellation = Cancellation()
        request.raw.notifyFinish().addErrback(lambda _: cancellation.cancel())
        body = await sync_service.sync(
            SyncRequest(requester.user_id, requester.device_id,
                        scope_of(requester), since,
                        sync_filter, full_state),
            timeout_ms=timeout, set_presence=request.arg("set_presence"),
            cancellation=cancellation)
        # None: the client went away; the HTTP layer writes nothing to a closed request
        return 200, body if body is not None else {}

    router.add("GET", _C + "/sync", sync)
