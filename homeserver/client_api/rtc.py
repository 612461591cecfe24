"""``GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports`` (MSC4143,
"Discovery of transport infrastructure"): authenticated, guests included.

The list itself is :func:`voip.rtc_transports.rtc_transports`. Our SFU's ``sfu_url``
is built on ``public_baseurl`` when configured, else on the URL this request reached
(the address the client already uses). The same list is offered for the well-known
file's ``org.matrix.msc4143.rtc_foci`` by :func:`well_known_foci`.
"""

from __future__ import annotations

from typing import Any, Callable

from homeserver.http.server import ApiRequest, Router
from voip.rtc_transports import SFU_PROBE_PATH, MatrixRtcConfig, rtc_transports

_PATH = "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports"


def _request_base_url(request: ApiRequest) -> str:
    scheme = "https" if request.raw.isSecure() else "http"
    host = request.header("Host") or request.raw.getRequestHostname().decode("ascii", "replace")
    return f"{scheme}://{host}/"


def well_known_foci(router: Router, config: MatrixRtcConfig,
                    base_url: str) -> Callable[[], dict[str, Any]]:
    """The well-known file's extra key, decided when asked (the SFU's routes may be
    registered after the well-known one). Nothing to add means no key."""
    def extra() -> dict[str, Any]:
        foci = rtc_transports(config, base_url, sfu_served=router.has_path(SFU_PROBE_PATH))
        return {"org.matrix.msc4143.rtc_foci": foci} if foci else {}
    return extra


def register(router: Router, *, auth: Any, config: MatrixRtcConfig,
             public_baseurl: str | None) -> None:
    async def transports(request: ApiRequest) -> tuple[int, Any]:
        await auth.authenticate(request, allow_guest=True)
        base_url = public_baseurl or _request_base_url(request)
        return 200, {"rtc_transports": rtc_transports(
            config, base_url, sfu_served=router.has_path(SFU_PROBE_PATH))}

    router.add("GET", _PATH, transports)
