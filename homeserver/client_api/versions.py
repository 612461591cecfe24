"""``/_matrix/client/versions``, ``/.well-known/matrix/client``, ``/capabilities``.

Only what really works is advertised (issues 3 and 12). ``/versions`` lists a spec
version only if the endpoints that version introduced are served here (checked against
the router when asked, so the list grows as endpoints land); the well-known file is
served only when the operator configured it. ``/versions`` and the well-known file are
public; ``/capabilities`` needs an access token (spec: capabilities.yaml,
``security: accessTokenBearer``), guests included.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from homeserver.errors import MatrixError, NotFound
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.http.server import ApiRequest, Router

#: The base every client expects. Gaps that span every version (the media repository,
#: third-party identifiers) are listed in the README, not hidden by an empty list.
BASE_VERSIONS = ("r0.6.1",)

# What each later spec version added to the Client-Server API that a client relies on,
# as requests whose route must exist (spec changelogs, "Client-Server API"). Versions
# that added no endpoint (clarifications, new room versions we serve) need nothing
# beyond the earlier ones. A version is advertised only with every earlier one.
_R = "!r:x"
VERSION_ENDPOINTS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("v1.1", (("POST", "/_matrix/client/v3/keys/device_signing/upload"),  # cross-signing
              ("POST", "/_matrix/client/v3/keys/signatures/upload"),
              ("GET", "/_matrix/client/v3/room_keys/version"))),  # server-side backup
    ("v1.2", (("GET", f"/_matrix/client/v1/rooms/{_R}/hierarchy"),  # spaces
              ("POST", f"/_matrix/client/v3/knock/{_R}"))),
    ("v1.3", (("GET", f"/_matrix/client/v1/rooms/{_R}/relations/$e"),)),
    ("v1.4", (("GET", f"/_matrix/client/v1/rooms/{_R}/threads"),)),
    ("v1.5", ()),
    ("v1.6", (("GET", f"/_matrix/client/v1/rooms/{_R}/timestamp_to_event"),)),
    # /login/get_token is routed even while login_via_existing_session is off (it then
    # answers 404 and the m.get_login_token capability says false), as Synapse
    # advertises v1.7 regardless: the spec makes the endpoint optional
    ("v1.7", (("POST", "/_matrix/media/v1/create"),  # asynchronous upload
              ("POST", "/_matrix/client/v1/login/get_token"))),
    ("v1.8", ()),
    ("v1.9", ()),
    ("v1.10", ()),
    ("v1.11", (("GET", "/_matrix/client/v1/media/config"),)),  # authenticated media
)

# Unstable feature flags (MSCs merged into versions above) that clients such as
# matrix-js-sdk check when the server does not advertise the version: threads
# (MSC3440, MSC3856 thread list, MSC3715 forward relations, MSC3981 recursion),
# threaded and private read receipts (MSC3771, MSC2285), and, with the push rules
# API (whose default rules include them, issue 12), intentional mentions (MSC3952)
# and per-thread notification counts (MSC3773); authenticated media (MSC3916, which
# Element and matrix-js-sdk check before the v1.11 they would otherwise need, and
# without which they fetch new media from the legacy endpoints that hide it). Each
# holds only if its route is served.
_UNSTABLE_ENDPOINTS: tuple[tuple[str, tuple[str, str]], ...] = (
    ("org.matrix.msc3440.stable", ("GET", f"/_matrix/client/v1/rooms/{_R}/threads")),
    ("org.matrix.msc3856", ("GET", f"/_matrix/client/v1/rooms/{_R}/threads")),
    ("org.matrix.msc3715", ("GET", f"/_matrix/client/v1/rooms/{_R}/relations/$e")),
    ("org.matrix.msc3771", ("POST", f"/_matrix/client/v3/rooms/{_R}/receipt/m.read/$e")),
    ("org.matrix.msc2285.stable",
     ("POST", f"/_matrix/client/v3/rooms/{_R}/receipt/m.read.private/$e")),
    ("org.matrix.msc3981", ("GET", f"/_matrix/client/v1/rooms/{_R}/relations/$e")),
    ("org.matrix.msc3952_intentional_mentions", ("GET", "/_matrix/client/v3/pushrules/")),
    ("org.matrix.msc3773", ("GET", "/_matrix/client/v3/pushrules/")),
    ("org.matrix.msc3916.stable", ("GET", "/_matrix/client/v1/media/config")),
    # MatrixRTC transport discovery (client_api/rtc.py)
    ("org.matrix.msc4143", ("GET", "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports")),
)


def _served(router: Router, method: str, path: str) -> bool:
    try:
        router.match(method, path)
    except MatrixError:
        return False
    return True


def supported_versions(router: Router) -> list[str]:
    """The spec versions whose endpoints (and every earlier version's) are served."""
    versions = list(BASE_VERSIONS)
    for version, endpoints in VERSION_ENDPOINTS:
        if not all(_served(router, m, p) for m, p in endpoints):
            break
        versions.append(version)
    return versions


def unstable_flags(router: Router, own: Mapping[str, bool]) -> dict[str, bool]:
    flags = {name: _served(router, *endpoint) for name, endpoint in _UNSTABLE_ENDPOINTS}
    flags.update(own)
    return flags


def well_known_client(*, serve: bool, public_baseurl: str | None,
                      server_name: str) -> dict[str, Any] | None:
    """The ``/.well-known/matrix/client`` document, or None when it is not served.

    Served, as in Synapse, when ``serve_client_wellknown`` is set or ``public_baseurl``
    is given; advertising a default ``https://{server_name}/`` nobody configured sends
    browser clients to a host that may not exist (issue 12)."""
    if not serve and public_baseurl is None:
        return None
    return {"m.homeserver": {"base_url": public_baseurl or f"https://{server_name}/"}}


def register(router: Router, *, authenticator: Any, public_baseurl: str | None,
             server_name: str, default_room_version: str,
             unstable_features: Mapping[str, bool],
             serve_client_wellknown: bool = False, get_login_token: bool = False,
             extra_capabilities: Mapping[str, Any] | None = None,
             well_known_extra: Callable[[], Mapping[str, Any]] | None = None) -> None:
    """``extra_capabilities`` join ``/capabilities``; ``well_known_extra()`` is asked
    per request for more keys of the well-known file (routes registered after this
    one may decide them, e.g. MatrixRTC foci, client_api/rtc.py)."""
    own_flags = dict(unstable_features)
    more_capabilities = dict(extra_capabilities or {})
    well_known_body = well_known_client(serve=serve_client_wellknown,
                                        public_baseurl=public_baseurl,
                                        server_name=server_name)

    async def versions(request: ApiRequest) -> tuple[int, dict]:
        return 200, {"versions": supported_versions(router),
                     "unstable_features": unstable_flags(router, own_flags)}

    async def well_known(request: ApiRequest) -> tuple[int, dict]:
        if well_known_body is None:
            raise NotFound("No .well-known/matrix/client configured on this server")
        if well_known_extra is None:
            return 200, well_known_body
        return 200, {**well_known_extra(), **well_known_body}

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
            # spec v1.7: whether POST /login/get_token may be used (the route is
            # always there, answering 404 M_UNRECOGNIZED while the feature is off)
            "m.get_login_token": {"enabled": get_login_token},
            **more_capabilities,
        }}

    router.add("GET", r"/_matrix/client/versions", versions)
    router.add("GET", r"/\.well-known/matrix/client", well_known)
    router.add("GET", r"/_matrix/client/(?:v3|r0)/capabilities", capabilities)

