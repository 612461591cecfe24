"""Servlets: reporting content (spec: Client-Server API, "Reporting content").

``POST /rooms/{roomId}/report/{eventId}``, ``POST /rooms/{roomId}/report`` (v1.13)
and ``POST /users/{userId}/report`` (v1.14). The domain is
:class:`homeserver.reports.ContentReports`; reports land in ``store.reports``.
"""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router

_V3 = "/_matrix/client/(?:v3|r0)"


def register(router: Router, c: dict[str, Any]) -> None:
    auth, reports = c["auth"], c["reports"]

    async def report_event(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await reports.report_event(requester.user_id, request.path["room_id"],
                                   request.path["event_id"], request.json())
        return 200, {}

    async def report_room(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await reports.report_room(requester.user_id, request.path["room_id"],
                                  request.json())
        return 200, {}

    async def report_user(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        await reports.report_user(requester.user_id, request.path["user_id"],
                                  request.json())
        return 200, {}

    router.add("POST", _V3 + r"/rooms/(?P<room_id>[^/]+)/report/(?P<event_id>[^/]+)",
               report_event)
    router.add("POST", _V3 + r"/rooms/(?P<room_id>[^/]+)/report", report_room)
    router.add("POST", _V3 + r"/users/(?P<user_id>[^/]+)/report", report_user)
