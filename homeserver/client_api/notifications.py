"""Listing notifications (spec: Client-Server API, "Push Notifications";
notifications.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg
from homeserver.push.notification_list import MAX_LIMIT, NotificationList


def register(router: Router, *, auth: Any, notifications: NotificationList) -> None:
    async def get_notifications(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        limit = int_arg(request.arg("limit"), "limit", MAX_LIMIT, minimum=1,
                        maximum=MAX_LIMIT)
        return 200, await notifications.list(requester.user_id, request.arg("from"),
                                             limit, request.arg("only"))

    router.add("GET", "/_matrix/client/(?:v3|r0)/notifications", get_notifications)
