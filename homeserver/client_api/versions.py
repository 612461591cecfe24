"""``/_matrix/client/versions``, ``/.well-known/matrix/client``, ``/capabilities``.

Only what really works is advertised (issue 3). ``/versions`` and the well-known file
are public; ``/capabilities`` needs an access token (spec: capabilities.yaml,
``security: accessTokenBearer``), guests included.
"""

from __future__ import annotations

from typing import Any, Mapping

from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.http.server import ApiRequest, Router

SUPPORTED_VERSIONS = ("r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7",
                      "v1.8", "v1.9", "v1.10", "v1.11")


def register(router: Router, *, authenticator: Any, public_baseurl: str | None,
             server_name: str, default_room_version: str,
             unstable_features: Mapping[str, bool]) -> None:
    async def versions(request: ApiRequest) -> tuple[int, dict]:
        return 200, {"versions": list(SUPPORTED_VERSIONS),
                     "unstable_features": dict(unstable_features)}

    async def well_known(request: ApiRequest) -> tuple[int, dict]:
        base = public_baseurl or f"https://{server_name}/"
        return 200, {"m.homeserver": {"base_url": base}}

    async def capabilities(request: ApiRequest) -> tuple[int, dict]:
        await authenticator.authenticate(request, allow_guest=True)
        return 200, {"capabilities": {
            "m.room_versions": {
                "default": default_room_version,
                "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS},
            },
            "m.change_password": {"enabled": True},
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.3pid_changes": {"enabled": False},
            "m.get_login_token": {"enabled": False},
        }}

    router.add("GET", r"/_matrix/client/versions", versions)
    router.add("GET", r"/\.well-known/matrix/client", well_known)
    router.add("GET", r"/_matrix/client/(?:v3|r0)/capabilities", capabilities)
