"""Servlets: profiles (spec: Client-Server API, "Profiles").

``GET /profile/{userId}``, ``GET``/``PUT``/``DELETE /profile/{userId}/{keyName}`` for
``displayname`` and ``avatar_url`` (other keys: 404 on reading, M_INVALID_PARAM on
writing). Reading needs no access token (the spec gives none); writing is for the
user themself. The domain is :class:`homeserver.profiles.ProfileService`.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import MissingParam
from homeserver.http.server import ApiRequest, Router

_V3 = "/_matrix/client/(?:v3|r0)"
_FIELD = r"(?P<field>[^/]+)"


def register(router: Router, c: dict[str, Any]) -> None:
    auth, profiles = c["auth"], c["profiles"]

    async def get_profile(request: ApiRequest) -> tuple[int, Any]:
        return 200, await profiles.get_profile(request.path["user_id"])

    async def get_field(request: ApiRequest) -> tuple[int, Any]:
        return 200, await profiles.get_field(request.path["user_id"], request.path["field"])

    async def put_field(request: ApiRequest) -> tuple[int, Any]:
        field = request.path["field"]
        # spec ("Guest Access"): guests may change their display name only
        requester = await auth.authenticate(request, allow_guest=field == "displayname")
        body = request.json()
        if field not in body:
            raise MissingParam(f"Missing parameter: {field}")
        await profiles.set_field(requester, request.path["user_id"], field, body[field])
        return 200, {}

    async def delete_field(request: ApiRequest) -> tuple[int, Any]:
        field = request.path["field"]
        requester = await auth.authenticate(request, allow_guest=field == "displayname")
        await profiles.set_field(requester, request.path["user_id"], field, None)
        return 200, {}

    router.add("GET", _V3 + r"/profile/(?P<user_id>[^/]+)", get_profile)
    router.add("GET", _V3 + r"/profile/(?P<user_id>[^/]+)/" + _FIELD, get_field)
    router.add("PUT", _V3 + r"/profile/(?P<user_id>[^/]+)/" + _FIELD, put_field)
    router.add("DELETE", _V3 + r"/profile/(?P<user_id>[^/]+)/" + _FIELD, delete_field)
