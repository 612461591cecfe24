"""The SFU's HTTP API: the Cloudflare Realtime (Calls) "Connection API" shape that the
npm package ``partytracks`` speaks, under a per-room prefix of the client API::

    {PREFIX}/rooms/{roomId}/sessions/new                POST
    {PREFIX}/rooms/{roomId}/sessions/{id}               GET
    {PREFIX}/rooms/{roomId}/sessions/{id}/tracks/new    POST
    {PREFIX}/rooms/{roomId}/sessions/{id}/renegotiate   PUT
    {PREFIX}/rooms/{roomId}/sessions/{id}/tracks/close  PUT
    {PREFIX}/rooms/{roomId}/sessions/{id}/tracks/update PUT
    {PREFIX}/rooms/{roomId}/generate-ice-servers        GET  (partytracks asks this)
    {PREFIX}/rooms/{roomId}/call                        GET  (ours: participants, speaking)

so ``new PartyTracks({prefix: "<base>{PREFIX}/rooms/<roomId>", headers: Authorization})``
works unchanged. Authenticated with the Matrix access token (header or
``access_token`` query parameter); errors are Matrix errors that also carry
``errorCode``/``errorDescription`` as the Calls API does. Thin servlets: one call each
into voip.sfu.service.SfuService.
"""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router

PREFIX = "/_matrix/client/unstable/org.roomserver.sfu"
_ROOM = PREFIX + "/rooms/(?P<room_id>[^/]+)"
_SESSION = _ROOM + "/sessions/(?P<session_id>[^/]+)"


def register(router: Router, *, auth: Any, sfu: Any) -> None:
    async def new_session(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json(allow_empty=True)
        # partytracks posts no body here; a page asks for noise suppression through its
        # apiExtraParams, a query string on every request: ?noiseSuppression=true
        if request.arg("noiseSuppression") == "true" and isinstance(body, dict):
            body = {**body, "noiseSuppression": True}
        return 200, await sfu.create_session(requester, request.path["room_id"], body)

    def session_route(method_name: str, *, has_body: bool = True):
        async def handler(request: ApiRequest) -> tuple[int, Any]:
            requester = await auth.authenticate(request)
            method = getattr(sfu, method_name)
            args = (requester, request.path["room_id"], request.path["session_id"])
            if has_body:
                return 200, await method(*args, request.json())
            return 200, await method(*args)
        return handler

    async def ice_servers(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, optional=True)
        # partytracks fetches this without its headers: no token, no TURN credentials
        return 200, sfu.ice_servers(requester) if requester else {"iceServers": []}

    async def call_state(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await sfu.describe_call(requester, request.path["room_id"])

    router.add("POST", _ROOM + "/sessions/new", new_session)
    router.add("GET", _SESSION, session_route("describe_session", has_body=False))
    router.add("POST", _SESSION + "/tracks/new", session_route("new_tracks"))
    router.add("PUT", _SESSION + "/renegotiate", session_route("renegotiate"))
    router.add("PUT", _SESSION + "/tracks/close", session_route("close_tracks"))
    router.add("PUT", _SESSION + "/tracks/update", session_route("update_tracks"))
    router.add("GET", _ROOM + "/generate-ice-servers", ice_servers)
    router.add("GET", _ROOM + "/call", call_state)
