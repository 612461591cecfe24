"""What other servers may ask us: the federation query endpoints.

Spec: Server-Server API, "Querying for information" (``/query/directory``, the generic
``/query/{queryType}``), "Device Management" (``/user/devices/{userId}``),
"End-to-End Encryption" (``/user/keys/query``, ``/user/keys/claim``), "Public Room
Directory" (``/publicRooms``), "Spaces" (``/hierarchy/{roomId}``) and "OpenID"
(``/openid/userinfo``).

Every endpoint but ``/openid/userinfo`` is behind X-Matrix auth
(:func:`federation.server.authenticated`); userinfo is asked by third parties that
are not servers, and authenticates by its token. Each servlet is a route, a parsed
request and one call into the domain services the client API uses too (the room
directory, the key service, the space hierarchy, the OpenID tokens): what a remote
server sees is what a local client would, minus what is private to local users
(user-signing keys, signatures by users of ours, ``failures`` for other servers).
"""

from __future__ import annotations

from typing import Any, Mapping

from federation.server import FederationAuthenticator, authenticated
from homeserver.errors import BadJson, InvalidParam, MissingParam, Unrecognized
from homeserver.rooms.features.directory import room_types_filter
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import int_arg, optional, require
from homeserver.ids import InvalidId, RoomAlias, UserID, parse_room_id

_FED = "/_matrix/federation/v1"
#: the requester name under which remote servers query keys: it is no user's, so
#: they see no user-signing keys and only signatures by the keys' owners
_NO_LOCAL_USER = ""


def _bool_arg(value: str | None) -> bool:
    return value is not None and value.lower() == "true"


def _local_user(user_id: str | None, server_name: str) -> str:
    if not user_id:
        raise MissingParam("Missing user ID")
    if UserID.parse(user_id).domain != server_name:
        raise InvalidParam("User is not hosted on this homeserver")
    return user_id


class FederationQueries:
    """The domain side of the query endpoints (module docstring)."""

    def __init__(self, *, server_name: str, store: Any, directory: Any, keys: Any,
                 hierarchy: Any) -> None:
        self._server_name = server_name
        self._store = store
        self._directory = directory
        self._keys = keys
        self._hierarchy = hierarchy

    async def directory(self, room_alias: str | None) -> dict[str, Any]:
        """``GET /query/directory``: ``{room_id, servers}`` of a local alias."""
        if not room_alias:
            raise MissingParam("Missing parameter: room_alias")
        try:
            alias = RoomAlias.parse(room_alias)
        except InvalidId as e:
            raise InvalidParam(f"Room alias invalid: {e.message}") from None
        if alias.domain != self._server_name:
            raise InvalidParam("Room alias is not hosted on this homeserver")
        return await self._directory.resolve_alias(alias.to_string())

    async def user_devices(self, user_id: str) -> dict[str, Any]:
        """``GET /user/devices/{userId}``: every device of a local user (with keys if
        uploaded), the ``stream_id`` the list is current as of, and the user's master
        and self-signing keys."""
        user_id = _local_user(user_id, self._server_name)
        devices = await self._store.devices.get_devices(user_id)
        keys = await self._keys.query(_NO_LOCAL_USER, {"device_keys": {user_id: []}})
        with_keys = keys["device_keys"].get(user_id, {})
        out: dict[str, Any] = {
            "user_id": user_id,
            "stream_id": await self._store.remote_device_lists.latest_position(user_id),
            "devices": [],
        }
        for device in sorted(devices, key=lambda d: d.device_id):
            entry: dict[str, Any] = {"device_id": device.device_id}
            if device.device_id in with_keys:
                entry["keys"] = with_keys[device.device_id]
            if device.display_name is not None:
                entry["device_display_name"] = device.display_name
            out["devices"].append(entry)
        for key_type in ("master", "self_signing"):
            if user_id in keys[f"{key_type}_keys"]:
                out[f"{key_type}_key"] = keys[f"{key_type}_keys"][user_id]
        return out

    async def keys_query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /user/keys/query``: keys of the local users asked for (others are
        not ours to answer and are left out)."""
        wanted = require(body, "device_keys", dict)
        local = {u: d for u, d in wanted.items() if self._is_mine(u)}
        result = await self._keys.query(_NO_LOCAL_USER, {"device_keys": local})
        return {k: v for k, v in result.items() if k in (
            "device_keys", "master_keys", "self_signing_keys")}

    async def keys_claim(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /user/keys/claim``: one-time (else fallback) keys of local devices."""
        wanted = require(body, "one_time_keys", dict)
        local = {u: d for u, d in wanted.items() if self._is_mine(u)}
        result = await self._keys.claim({"one_time_keys": local})
        return {"one_time_keys": result["one_time_keys"]}

    async def public_rooms(self, *, limit: int, since: str | None,
                           search_term: str | None = None,
                           room_types: Any = None, include_all_networks: bool = False,
                           third_party_instance_id: str | None = None) -> dict[str, Any]:
        """``GET``/``POST /publicRooms``. We bridge no third-party networks: a request
        for one network lists nothing; ``include_all_networks`` lists ours."""
        if third_party_instance_id is not None and not include_all_networks:
            return {"chunk": [], "total_room_count_estimate": 0}
        return await self._directory.public_rooms(
            limit=limit, since=since, search_term=search_term, room_types=room_types)

    async def hierarchy(self, origin: str, room_id: str,
                        suggested_only: bool) -> dict[str, Any]:
        return await self._hierarchy.for_server(parse_room_id(room_id), origin,
                                                suggested_only=suggested_only)

    def _is_mine(self, user_id: Any) -> bool:
        try:
            return UserID.parse(user_id).domain == self._server_name
        except InvalidId:
            raise BadJson(f"Invalid user ID {user_id!r}") from None


def register(router: Router, *, authenticator: FederationAuthenticator,
             queries: FederationQueries, openid: Any) -> None:
    """The query servlets; ``/query/{queryType}`` goes after ``/query/profile``, which
    :func:`federation.server.register` adds, so register this after that."""
    def signed(handler):
        return authenticated(authenticator, handler)

    async def query_directory(request: ApiRequest) -> tuple[int, Any]:
        return 200, await queries.directory(request.arg("room_alias"))

    async def query_unknown(request: ApiRequest) -> tuple[int, Any]:
        raise Unrecognized(f"Unknown query type {request.path['query_type']!r}")

    async def user_devices(request: ApiRequest) -> tuple[int, Any]:
        return 200, await queries.user_devices(request.path["user_id"])

    async def keys_query(request: ApiRequest) -> tuple[int, Any]:
        return 200, await queries.keys_query(request.json())

    async def keys_claim(request: ApiRequest) -> tuple[int, Any]:
        return 200, await queries.keys_claim(request.json())

    async def public_rooms_get(request: ApiRequest) -> tuple[int, Any]:
        return 200, await queries.public_rooms(
            limit=int_arg(request.arg("limit"), "limit", 0), since=request.arg("since"),
            include_all_networks=_bool_arg(request.arg("include_all_networks")),
            third_party_instance_id=request.arg("third_party_instance_id"))

    async def public_rooms_post(request: ApiRequest) -> tuple[int, Any]:
        body = request.json(allow_empty=True)
        search = optional(body, "filter", dict, {})
        limit = optional(body, "limit", int, 0)
        return 200, await queries.public_rooms(
            limit=limit, since=optional(body, "since", str),
            search_term=optional(search, "generic_search_term", str),
            room_types=room_types_filter(search.get("room_types")),
            include_all_networks=optional(body, "include_all_networks", bool, False),
            third_party_instance_id=optional(body, "third_party_instance_id", str))

    async def hierarchy(request: ApiRequest) -> tuple[int, Any]:
        return 200, await queries.hierarchy(
            request.requester, request.path["room_id"],
            _bool_arg(request.arg("suggested_only")))

    async def userinfo(request: ApiRequest) -> tuple[int, Any]:
        return 200, await openid.userinfo(request.arg("access_token"))

    router.add("GET", _FED + "/query/directory", signed(query_directory))
    router.add("GET", _FED + "/query/(?P<query_type>[^/]+)", signed(query_unknown))
    router.add("GET", _FED + "/user/devices/(?P<user_id>[^/]+)", signed(user_devices))
    router.add("POST", _FED + "/user/keys/query", signed(keys_query))
    router.add("POST", _FED + "/user/keys/claim", signed(keys_claim))
    router.add("GET", _FED + "/publicRooms", signed(public_rooms_get))
    router.add("POST", _FED + "/publicRooms", signed(public_rooms_post))
    router.add("GET", _FED + "/hierarchy/(?P<room_id>[^/]+)", signed(hierarchy))
    router.add("GET", _FED + "/openid/userinfo", userinfo)


__all__ = ["FederationQueries", "register"]
