"""Servlets: relations and threads (spec: Client-Server API, "Relationships API",
"Querying threads in a room").

``GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]``
(``from``, ``to``, ``limit``, ``dir``, ``recurse``) and
``GET /_matrix/client/v1/rooms/{roomId}/threads`` (``include``, ``from``, ``limit``).
The domain is :class:`homeserver.rooms.features.relations.RelationsService`.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import InvalidParam
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg
from homeserver.rooms.features.relations import (
    DEFAULT_LIMIT, DEFAULT_THREADS_LIMIT, MAX_LIMIT)

_V1 = "/_matrix/client/v1"
_ROOM = r"/rooms/(?P<room_id>[^/]+)"


def _bool_arg(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    if value in ("true", "false"):
        return value == "true"
    raise InvalidParam(f"{name} must be 'true' or 'false'")


def register(router: Router, c: dict[str, Any]) -> None:
    auth, relations = c["auth"], c["relations"]

    async def get_relations(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        path = request.path
        return 200, await relations.relations(
            requester.user_id, path["room_id"], path["event_id"],
            rel_type=path.get("rel_type"), event_type=path.get("event_type"),
            from_token=request.arg("from"), to_token=request.arg("to"),
            limit=int_arg(request.arg("limit"), "limit", DEFAULT_LIMIT, minimum=1,
                          maximum=MAX_LIMIT),
            direction=request.arg("dir", "b"),
            recurse=_bool_arg(request.arg("recurse"), "recurse"))

    async def get_threads(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await relations.threads(
            requester.user_id, request.path["room_id"],
            include=request.arg("include", "all"), from_token=request.arg("from"),
            limit=int_arg(request.arg("limit"), "limit", DEFAULT_THREADS_LIMIT, minimum=1,
                          maximum=MAX_LIMIT))

    relations_path = _V1 + _ROOM + r"/relations/(?P<event_id>[^/]+)"
    router.add("GET", relations_path, get_relations)
    router.add("GET", relations_path + r"/(?P<rel_type>[^/]+)", get_relations)
    router.add("GET", relations_path + r"/(?P<rel_type>[^/]+)/(?P<event_type>[^/]+)",
               get_relations)
    router.add("GET", _V1 + _ROOM + r"/threads", get_threads)
