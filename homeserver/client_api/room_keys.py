"""Server-side key backups (spec: Client-Server API, "Server-side key backups";
key_backup.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.e2ee.backups import KeyBackupService
from homeserver.http.server import ApiRequest, Router

_RK = "/_matrix/client/(?:v3|r0|unstable)/room_keys"


def register(router: Router, *, auth: Any, backups: KeyBackupService) -> None:
    async def create_version(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await backups.create_version(requester.user_id, request.json())

    async def get_version(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await backups.get_version(requester.user_id,
                                              request.path.get("version"))

    async def put_version(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await backups.update_version(requester.user_id,
                                                 request.path["version"], request.json())

    async def delete_version(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await backups.delete_version(requester.user_id,
                                                 request.path.get("version"))

    def where(request: ApiRequest) -> dict[str, Any]:
        return dict(version=request.arg("version"), room_id=request.path.get("room_id"),
                    session_id=request.path.get("session_id"))

    async def put_keys(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        w = where(request)
        return 200, await backups.put_keys(requester.user_id, w.pop("version"),
                                           request.json(), **w)

    async def get_keys(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await backups.get_keys(requester.user_id, **where(request))

    async def delete_keys(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await backups.delete_keys(requester.user_id, **where(request))

    router.add("POST", _RK + "/version", create_version)
    router.add("GET", _RK + "/version", get_version)
    router.add("GET", _RK + "/version/(?P<version>[^/]+)", get_version)
    router.add("PUT", _RK + "/version/(?P<version>[^/]+)", put_version)
    router.add("DELETE", _RK + "/version/(?P<version>[^/]+)", delete_version)
    for suffix in ("", "/(?P<room_id>[^/]+)", "/(?P<room_id>[^/]+)/(?P<session_id>[^/]+)"):
        path = _RK + "/keys" + suffix
        router.add("PUT", path, put_keys)
        router.add("GET", path, get_keys)
        router.add("DELETE", path, delete_keys)
