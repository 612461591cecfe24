"""Third-party networks and identifiers this server does not bridge or verify.

- ``/thirdparty/*`` (spec: "Application Services", third_party_lookup.yaml): the
  protocols come from application services' bridges; with none registered the
  protocol list is ``{}``, an unknown protocol is 404 and lookups find nothing (as
  Synapse answers with no application services).
- ``/account/3pid`` (spec: "Adding Account Administrative Contact Information",
  administrative_contact.yaml): no e-mail or phone verification is configured, so no
  account has a third-party identifier (the list is empty), adding one is refused
  (``m.3pid_changes`` is advertised as disabled), and deleting or unbinding one finds
  nothing to do.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import Forbidden, MatrixError, NotFound
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import optional, require

_V3 = "/_matrix/client/(?:v3|r0)"


class ThreepidDenied(MatrixError):
    errcode = "M_THREEPID_DENIED"
    status = 403


def register(router: Router, c: dict[str, Any]) -> None:
    auth = c["auth"]

    # -- third-party networks -----------------------------------------------------------
    async def protocols(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request, allow_guest=True)
        return 200, {}

    async def protocol(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request, allow_guest=True)
        raise NotFound(f"Unknown protocol {request.path['protocol']!r}")

    async def lookup(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request, allow_guest=True)
        return 200, []

    # -- the account's third-party identifiers ---------------------------------------
    async def get_threepids(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request)
        return 200, {"threepids": []}

    async def add_threepid(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request)
        request.json(allow_empty=True)
        raise Forbidden("Third-party identifiers cannot be added on this server")

    async def remove_threepid(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request)
        body = request.json()
        require(body, "medium", str)
        require(body, "address", str)
        optional(body, "id_server", str)
        # nothing is bound anywhere: there is no identity server to unbind from
        return 200, {"id_server_unbind_result": "no-support"}

    async def request_token(request: ApiRequest) -> tuple[int, Any]:
        body = request.json()
        require(body, "client_secret", str)
        require(body, "send_attempt", int)
        if "/account/password/" in request.raw.path.decode("ascii", "replace"):
            # spec: a password reset for an identifier no account has
            raise MatrixError("No account has this third-party identifier",
                              errcode="M_THREEPID_NOT_FOUND", status=400)
        raise ThreepidDenied("This server does not verify third-party identifiers")

    router.add("GET", _V3 + "/thirdparty/protocols", protocols)
    router.add("GET", _V3 + "/thirdparty/protocol/(?P<protocol>[^/]+)", protocol)
    for kind in ("location", "user"):
        router.add("GET", _V3 + f"/thirdparty/{kind}(?:/[^/]+)?", lookup)
    router.add("GET", _V3 + "/account/3pid", get_threepids)
    router.add("POST", _V3 + "/account/3pid", add_threepid)
    for action in ("add", "bind"):
        router.add("POST", _V3 + f"/account/3pid/{action}", add_threepid)
    for action in ("delete", "unbind"):
        router.add("POST", _V3 + f"/account/3pid/{action}", remove_threepid)
    for prefix in ("account/3pid", "register", "account/password"):
        for medium in ("email", "msisdn"):
            router.add("POST", _V3 + f"/{prefix}/{medium}/requestToken", request_token)
