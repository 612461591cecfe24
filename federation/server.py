"""Inbound federation: X-Matrix authentication and the first servlets.

Spec: Server-Server API, "Authentication" → "Request Authentication" (every request
to ``/_matrix/federation/*`` except ``/version`` is signed by its origin),
"Querying for information" → "GET /query/profile", and "Server implementation" →
"GET /version".

:class:`FederationAuthenticator` checks a request's X-Matrix headers against the
origin's keys (fetched through :class:`federation.keys.Keyring`) and returns the
origin server name; servlets registered with :func:`authenticated` find it in
``request.requester``. A request without X-Matrix auth, for another destination, or
with a signature that does not verify gets ``401 M_UNAUTHORIZED``. A path nobody
serves is authenticated before it is called unknown, as for known paths (so an
unauthenticated prober learns nothing about which endpoints exist): 401 first, then
``404 M_UNRECOGNIZED``.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

from federation import xmatrix
from federation.keys import KeyFetchError
from homeserver.errors import (
    InvalidParam, MissingParam, Unauthorized, Unrecognized,
)
from homeserver.http.server import ApiRequest, Router
from homeserver.ids import UserID

SERVER_SOFTWARE = "roomserver"
FEDERATION_PREFIX = "/_matrix/federation/"


class VerifyKeys(Protocol):
    async def get_verify_key(self, server_name: str, key_id: str,
                             minimum_valid_until_ts: int | None = None) -> bytes: ...


class FederationAuthenticator:
    def __init__(self, *, server_name: str, keyring: VerifyKeys) -> None:
        self._server_name = server_name
        self._keyring = keyring

    async def authenticate(self, request: ApiRequest) -> str:
        """The origin server of a correctly signed request; 401 M_UNAUTHORIZED otherwise."""
        values = request.raw.requestHeaders.getRawHeaders(b"Authorization") or []
        try:
            auths = xmatrix.xmatrix_headers([v.decode("latin-1") for v in values])
        except xmatrix.XMatrixError as e:
            raise Unauthorized(f"Missing or malformed X-Matrix Authorization: {e}") from None
        origins = {a.origin for a in auths}
        if len(origins) != 1:
            raise Unauthorized("X-Matrix headers name more than one origin")
        content = request.json() if request.body_bytes().strip() else None
        uri = request.raw.uri.decode("ascii", "replace")
        problem = "Invalid signature"
        for auth in auths:
            if auth.destination is not None and auth.destination != self._server_name:
                raise Unauthorized(f"Request is for {auth.destination}, not for us")
            try:
                key = await self._keyring.get_verify_key(auth.origin, auth.key_id)
            except KeyFetchError as e:
                problem = f"No usable key {auth.key_id} for {auth.origin}: {e}"
                continue
            if xmatrix.verify_request(auth, key, method=request.method, uri=uri,
                                      destination=self._server_name, content=content):
                return auth.origin
        raise Unauthorized(problem)


Handler = Callable[[ApiRequest], Awaitable[tuple[int, Any]]]


def authenticated(authenticator: FederationAuthenticator, handler: Handler) -> Handler:
    """``handler`` behind X-Matrix auth; it finds the origin in ``request.requester``."""
    async def wrapped(request: ApiRequest) -> tuple[int, Any]:
        request.requester = await authenticator.authenticate(request)
        return await handler(request)

    return wrapped


class Profiles(Protocol):
    def is_mine(self, user_id: str) -> bool: ...
    async def get_profile(self, user_id: str) -> dict[str, str]: ...


async def query_profile(profiles: Profiles, user_id: str | None,
                        field: str | None) -> dict[str, str]:
    """Spec: "GET /_matrix/federation/v1/query/profile" — a local user's profile or
    one field of it; M_NOT_FOUND for an unknown user."""
    if not user_id:
        raise MissingParam("Missing parameter: user_id")
    if field is not None and field not in ("displayname", "avatar_url"):
        raise InvalidParam(f"Unknown profile field {field!r}")
    UserID.parse(user_id)  # M_INVALID_PARAM for a malformed ID
    if not profiles.is_mine(user_id):
        raise InvalidParam("User is not hosted on this homeserver")
    profile = await profiles.get_profile(user_id)
    return profile if field is None else {k: v for k, v in profile.items() if k == field}


def register(router: Router, *, authenticator: FederationAuthenticator,
             profiles: Profiles, version: str) -> None:
    async def get_version(request: ApiRequest) -> tuple[int, Any]:
        return 200, {"server": {"name": SERVER_SOFTWARE, "version": version}}

    async def get_profile(request: ApiRequest) -> tuple[int, Any]:
        return 200, await query_profile(profiles, request.arg("user_id"), request.arg("field"))

    router.add("GET", r"/_matrix/federation/v1/version", get_version)
    router.add("GET", r"/_matrix/federation/v1/query/profile",
               authenticated(authenticator, get_profile))


def register_fallback(router: Router, authenticator: FederationAuthenticator) -> None:
    """Unknown ``/_matrix/federation/*`` paths: 401 unless signed, then 404. Register
    last: the router tries routes in order."""
    async def unknown(request: ApiRequest) -> tuple[int, Any]:
        await authenticator.authenticate(request)
        raise Unrecognized("Unrecognized request")

    router.add(("GET", "PUT", "POST", "DELETE"), r"/_matrix/federation/.*", unknown)


