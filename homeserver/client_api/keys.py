"""The key management API and cross-signing (spec: Client-Server API, "End-to-End
Encryption"; keys.yaml, cross_signing.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.e2ee.cross_signing import CrossSigningService
from homeserver.e2ee.keys import KeyService
from homeserver.http.server import ApiRequest, Router

_KEYS = "/_matrix/client/(?:v3|r0)/keys"


def register(router: Router, *, auth: Any, keys: KeyService,
             cross_signing: CrossSigningService) -> None:
    async def upload(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await keys.upload(requester.user_id, requester.device_id,
                                      request.json())

    async def query(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await keys.query(requester.user_id, request.json())

    async def claim(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request, allow_guest=True)
        return 200, await keys.claim(request.json())

    async def changes(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        return 200, await keys.changes(requester.user_id, request.arg("from"),
                                       request.arg("to"))

    async def device_signing(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await cross_signing.upload_keys(requester.user_id,
                                                    request.json(allow_empty=True))

    async def signatures(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await cross_signing.upload_signatures(requester.user_id,
                                                          request.json())

    router.add("POST", _KEYS + "/upload", upload)
    # the deprecated r0 form with the device ID in the path (it must be the caller's)
    router.add("POST", _KEYS + "/upload/(?P<device_id>[^/]+)", upload)
    router.add("POST", _KEYS + "/query", query)
    router.add("POST", _KEYS + "/claim", claim)
    router.add("GET", _KEYS + "/changes", changes)
    router.add("POST", "/_matrix/client/(?:v3|r0|unstable)/keys/device_signing/upload",
               device_signing)
    router.add("POST", "/_matrix/client/(?:v3|r0|unstable)/keys/signatures/upload",
               signatures)
