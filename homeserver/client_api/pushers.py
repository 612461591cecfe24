"""Pushers (spec: Client-Server API, "Push Notifications"; pusher.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.push.pushers import PusherService


def register(router: Router, *, auth: Any, pushers: PusherService) -> None:
    async def get_pushers(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await pushers.list(requester.user_id)

    async def set_pusher(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await pushers.set(requester.user_id, request.json())
        return 200, {}

    router.add("GET", "/_matrix/client/(?:v3|r0)/pushers", get_pushers)
    router.add("POST", "/_matrix/client/(?:v3|r0)/pushers/set", set_pusher)
