"""``GET /_matrix/key/v2/server``: our signed server keys (spec: Server-Server API,
"Publishing Keys"). The response is signed by every current key and valid for a day,
so remote servers and notaries can cache it.
"""

from __future__ import annotations

from typing import Callable, Sequence

from homeserver.crypto.signing import SigningKey, encode_base64, sign_json
from homeserver.http.server import ApiRequest, Router

KEY_VALIDITY_MS = 24 * 3600 * 1000


class KeyServer:
    def __init__(self, server_name: str, keys: Sequence[SigningKey],
                 now_ms: Callable[[], int]) -> None:
        self._server_name = server_name
        self._keys = list(keys)
        self._now_ms = now_ms

    def server_keys(self) -> dict:
        body = {
            "server_name": self._server_name,
            "valid_until_ts": self._now_ms() + KEY_VALIDITY_MS,
            "verify_keys": {k.key_id: {"key": k.verify_key_base64} for k in self._keys},
            "old_verify_keys": {},
        }
        for key in self._keys:
            body = sign_json(body, self._server_name, key)
        return body

    def register(self, router: Router) -> None:
        async def get_server_keys(request: ApiRequest) -> tuple[int, dict]:
            return 200, self.server_keys()

        router.add("GET", r"/_matrix/key/v2/server(?:/[^/]*)?", get_server_keys)


__all__ = ["KeyServer", "encode_base64"]
