"""Servlets: device management (spec: Client-Server API "Device Management") and
``GET /admin/whois/{userId}`` (spec: "Server administration").

Deleting devices needs User-Interactive Authentication with the user's password (spec,
"Security considerations": a stolen access token alone must not log the owner out).
"""

from __future__ import annotations

from typing import Any

from homeserver.client_api.uia import PASSWORD_FLOWS
from homeserver.errors import BadJson, Forbidden, InvalidParam, NotFound
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import require
from homeserver.ids import InvalidId, UserID

_V3 = "/_matrix/client/(?:v3|r0)"


def register(router: Router, c: dict[str, Any]) -> None:
    auth, uia, devices = c["auth"], c["uia"], c["device_manager"]
    store, server_name = c["store"], c["config"].server_name

    async def get_devices(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, {"devices": await devices.list_devices(requester.user_id)}

    async def get_device(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await devices.get_device(requester.user_id, request.path["device_id"])

    async def put_device(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        body = request.json()
        await devices.rename_device(requester.user_id, request.path["device_id"],
                                    body.get("display_name"))
        return 200, {}

    async def delete_device(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json(allow_empty=True)
        device_id = request.path["device_id"]
        # the device is in the path, not the body: bind the session to it by name
        await uia.authenticate(body, operation=f"delete_device {device_id}",
                               flows=PASSWORD_FLOWS, user_id=requester.user_id)
        await devices.delete_devices(requester.user_id, [device_id])
        return 200, {}

    async def post_delete_devices(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json()
        device_ids = require(body, "devices", list)
        if not all(isinstance(d, str) for d in device_ids):
            raise BadJson("devices must be a list of strings")
        await uia.authenticate(body, operation="delete_devices", flows=PASSWORD_FLOWS,
                               user_id=requester.user_id)
        await devices.delete_devices(requester.user_id, device_ids)
        return 200, {}

    async def get_whois(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        target = request.path["user_id"]
        if target != requester.user_id:
            info = await store.accounts.get_user(requester.user_id)
            if info is None or not info.is_admin:
                raise Forbidden("You are not a server admin")
        try:
            local = UserID.parse(target).domain == server_name
        except InvalidId:
            raise InvalidParam("Invalid user ID") from None
        if not local:
            raise InvalidParam("Can only whois a local user")
        if await store.accounts.get_user(target) is None:
            raise NotFound("User not found")
        return 200, {"user_id": target, "devices": await devices.whois(target)}

    router.add("GET", _V3 + "/devices", get_devices)
    router.add("GET", _V3 + "/devices/(?P<device_id>[^/]+)", get_device)
    router.add("PUT", _V3 + "/devices/(?P<device_id>[^/]+)", put_device)
    router.add("DELETE", _V3 + "/devices/(?P<device_id>[^/]+)", delete_device)
    router.add("POST", _V3 + "/delete_devices", post_delete_devices)
    router.add("GET", _V3 + "/admin/whois/(?P<user_id>[^/]+)", get_whois)

