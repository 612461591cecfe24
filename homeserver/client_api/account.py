"""Servlets: registration, login, login tokens, logout, token refresh, whoami, password change and
deactivation (spec: Client-Server API "Client Authentication", "Account management").

Each handler parses and checks its request and makes one call into the domain
(``homeserver.accounts``); endpoints that need User-Interactive Authentication first
pass the body through ``c["uia"]``.
"""

from __future__ import annotations

from typing import Any

from homeserver.accounts.passwords import check_new_password
from homeserver.client_api.uia import PASSWORD_FLOWS
from homeserver.errors import MissingParam
from homeserver.http.server import ApiRequest, Router
from homeserver.http.validate import optional, require

_V3 = "/_matrix/client/(?:v3|r0)"


def register(router: Router, c: dict[str, Any]) -> None:
    auth, uia = c["auth"], c["uia"]
    registration, login = c["registration"], c["password_login"]
    sessions, devices = c["sessions"], c["device_manager"]
    ratelimiter = c["ratelimiter"]

    def user_agent(request: ApiRequest) -> str | None:
        return request.header("User-Agent")

    # -- registration -----------------------------------------------------------------
    async def post_register(request: ApiRequest) -> tuple[int, Any]:
        kind = request.arg("kind", "user")
        # guests may send no body at all: every parameter but one is ignored for them
        body = request.json(allow_empty=kind == "guest")
        return 200, await registration.register(body, kind=kind, ip=request.client_ip,
                                                user_agent=user_agent(request))

    async def get_available(request: ApiRequest) -> tuple[int, Any]:
        username = request.arg("username")
        if username is None:
            raise MissingParam("Missing parameter: username")
        await registration.available(username)
        return 200, {"available": True}

    async def get_token_validity(request: ApiRequest) -> tuple[int, Any]:
        # spec: "Servers should be sure to rate limit this endpoint" (Synapse's key)
        ratelimiter.check("rc_registration_token_validity", request.client_ip)
        token = request.arg("token")
        if token is None:
            raise MissingParam("Missing parameter: token")
        return 200, {"valid": await registration.token_valid(token)}

    # -- login, logout, refresh -------------------------------------------------------
    async def get_login(request: ApiRequest) -> tuple[int, Any]:
        return 200, {"flows": login.flows()}

    async def post_login(request: ApiRequest) -> tuple[int, Any]:
        return 200, await login.login(request.json(), ip=request.client_ip,
                                      user_agent=user_agent(request))

    async def post_logout(request: ApiRequest) -> tuple[int, Any]:
        await devices.logout(await auth.authenticate(request, allow_guest=True))
        return 200, {}

    async def post_logout_all(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        await devices.logout_all(requester.user_id)
        return 200, {}

    async def post_refresh(request: ApiRequest) -> tuple[int, Any]:
        body = request.json()
        return 200, await sessions.refresh(require(body, "refresh_token", str))

    # -- account ----------------------------------------------------------------------
    async def get_whoami(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=True)
        body: dict[str, Any] = {"user_id": requester.user_id, "is_guest": requester.is_guest}
        if requester.device_id is not None:
            body["device_id"] = requester.device_id
        return 200, body

    async def post_password(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json()
        new_password = check_new_password(body.get("new_password"), "new_password")
        logout_devices = optional(body, "logout_devices", bool, True)
        await uia.authenticate(body, operation="change_password", flows=PASSWORD_FLOWS,
                               user_id=requester.user_id)
        await c["password_changer"].change_password(requester, new_password,
                                                    logout_devices=logout_devices)
        return 200, {}

    async def post_get_login_token(request: ApiRequest) -> tuple[int, Any]:
        # spec v1.7 "Login": a token for signing in another device (MSC3882)
        requester = await auth.authenticate(request)
        tokens = c["login_tokens"]
        tokens.check_enabled()
        body = request.json(allow_empty=True)
        if tokens.require_ui_auth:
            session = await uia.authenticate(body, operation="get_login_token",
                                             flows=PASSWORD_FLOWS, user_id=requester.user_id)
            # spec: servers MUST re-prompt for every token, so the session is spent
            # now, before any await (a concurrent replay must not mint a second one)
            uia.forget(session)
        return 200, await tokens.issue(requester.user_id)

    async def post_deactivate(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        body = request.json()
        erase = optional(body, "erase", bool, False)
        optional(body, "id_server", str)
        await uia.authenticate(body, operation="deactivate", flows=PASSWORD_FLOWS,
                               user_id=requester.user_id)
        return 200, await c["deactivator"].deactivate(requester.user_id, erase=erase)

    router.add("POST", _V3 + "/register", post_register)
    router.add("GET", _V3 + "/register/available", get_available)
    router.add("GET", "/_matrix/client/v1/register/m.login.registration_token/validity",
               get_token_validity)
    router.add("GET", _V3 + "/login", get_login)
    router.add("POST", _V3 + "/login", post_login)
    router.add("POST", "/_matrix/client/v1/login/get_token", post_get_login_token)
    router.add("POST", _V3 + "/logout", post_logout)
    router.add("POST", _V3 + "/logout/all", post_logout_all)
    router.add("POST", _V3 + "/refresh", post_refresh)
    router.add("GET", _V3 + "/account/whoami", get_whoami)
    router.add("POST", _V3 + "/account/password", post_password)
    router.add("POST", _V3 + "/account/deactivate", post_deactivate)
