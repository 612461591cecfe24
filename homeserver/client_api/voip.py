"""``GET /voip/turnServer`` (spec: Client-Server API, "Voice over IP"; voip.yaml).

Guests may ask unless ``turn_allow_guests: false`` (Synapse's key); the credentials
themselves come from :func:`voip.turn.turn_credentials`.
"""

from __future__ import annotations

from typing import Any, Callable

from homeserver.config import TurnConfig
from homeserver.http.server import ApiRequest, Router
from voip.turn import turn_credentials

_V3 = "/_matrix/client/(?:v3|r0)"


def register(router: Router, *, auth: Any, turn: TurnConfig,
             now_ms: Callable[[], int]) -> None:
    async def turn_server(request: ApiRequest) -> tuple[int, Any]:
        requester = await auth.authenticate(request, allow_guest=turn.allow_guests)
        return 200, turn_credentials(turn, requester.user_id, now_ms())

    router.add("GET", _V3 + "/voip/turnServer", turn_server)
