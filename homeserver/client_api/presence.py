"""``GET``/``PUT /presence/{userId}/status`` (spec: Client-Server API, "Presence";
presence.yaml). Setting presence is rate-limited per user (Synapse's
``rc_presence.per_user``)."""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import optional, require
from homeserver.sync.presence import PresenceService

_C = "/_matrix/client/(?:v3|r0)"


def register(router: Router, *, auth: Any, presence: PresenceService,
             ratelimiter: Any) -> None:
    async def get_status(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await presence.get_presence(requester.user_id, request.path["user_id"])

    async def put_status(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        body = request.json()
        state = require(body, "presence", str)
        status_msg = optional(body, "status_msg", str)
        ratelimiter.check("rc_presence.per_user", requester.user_id)
        await presence.set_presence(requester.user_id, request.path["user_id"], state,
                                    status_msg)
        return 200, {}

    path = _C + "/presence/(?P<user_id>[^/]+)/status"
    router.add("GET", path, get_status)
    router.add("PUT", path, put_status)
