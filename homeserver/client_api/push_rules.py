"""Push rules (spec: Client-Server API, "Push Rules: API"; pushrules.yaml)."""

from __future__ import annotations

from typing import Any

from homeserver.http.server import ApiRequest, Router
from homeserver.push.rules_service import PushRulesService

_BASE = "/_matrix/client/(?:v3|r0)/pushrules"
_RULE = _BASE + "/(?P<scope>[^/]+)/(?P<kind>[^/]+)/(?P<rule_id>[^/]+)"


def register(router: Router, *, auth: Any, push_rules: PushRulesService) -> None:
    async def get_all(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await push_rules.account_data(requester.user_id)

    async def get_scope(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await push_rules.get(requester.user_id, request.path["scope"])

    async def get_kind(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        return 200, await push_rules.get(requester.user_id, request.path["scope"],
                                         request.path["kind"])

    async def get_rule(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        p = request.path
        return 200, await push_rules.get(requester.user_id, p["scope"], p["kind"],
                                         p["rule_id"], p.get("attr"))

    async def put_rule(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        p = request.path
        await push_rules.put(requester.user_id, p["scope"], p["kind"], p["rule_id"],
                             request.json(), request.arg("before"), request.arg("after"))
        return 200, {}

    async def delete_rule(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        p = request.path
        await push_rules.delete(requester.user_id, p["scope"], p["kind"], p["rule_id"])
        return 200, {}

    async def put_attr(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request)
        p = request.path
        await push_rules.put_attr(requester.user_id, p["scope"], p["kind"], p["rule_id"],
                                  p["attr"], request.json())
        return 200, {}

    router.add("GET", _BASE + "/?", get_all)
    router.add("GET", _BASE + "/(?P<scope>[^/]+)/?", get_scope)
    router.add("GET", _BASE + "/(?P<scope>[^/]+)/(?P<kind>[^/]+)/?", get_kind)
    router.add("GET", _RULE + "/?", get_rule)
    router.add("PUT", _RULE + "/?", put_rule)
    router.add("DELETE", _RULE + "/?", delete_rule)
    router.add("GET", _RULE + "/(?P<attr>[^/]+)", get_rule)
    router.add("PUT", _RULE + "/(?P<attr>[^/]+)", put_attr)
