"""Serving as a notary: ``POST /_matrix/key/v2/query`` and
``GET /_matrix/key/v2/query/{serverName}`` (spec: Server-Server API, "Retrieving
server keys" → "Querying Keys Through Another Server").

Answers come from the key cache; a key missing from it, or not valid until the
asked-for ``minimum_valid_until_ts``, is fetched from its server directly first (never
from another notary: a notary vouches for what it saw itself). Each returned key
response keeps its owner's signatures and gets ours added. Our own keys come from
:class:`federation.key_server.KeyServer`.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Protocol, Sequence

from homeserver.crypto.signing import SigningKey, sign_json
from homeserver.errors import BadJson, InvalidParam
from homeserver.http.server import ApiRequest, Router
from homeserver.ids import is_valid_server_name
from homeserver.store.server_keys import ServerKey


class KeyCache(Protocol):
    async def get_server_keys(self, server_name: str,
                              key_ids: Any = None) -> list[ServerKey]: ...


class Fetcher(Protocol):
    def refresh(self, server_name: str, key_id: str | None = None, minimum: int = 0) -> Any: ...


class Notary:
    def __init__(self, *, server_name: str, signing_keys: Sequence[SigningKey],
                 own_keys: Callable[[], dict], cache: KeyCache, fetcher: Fetcher,
                 now_ms: Callable[[], int]) -> None:
        self._server_name = server_name
        self._keys = list(signing_keys)
        self._own_keys = own_keys
        self._cache = cache
        self._fetcher = fetcher
        self._now_ms = now_ms

    async def query(self, wanted: Mapping[str, tuple[Sequence[str], int | None]]) -> dict:
        """``wanted``: server name → (key IDs, minimum_valid_until_ts or None for now).
        No key IDs asks for all of the server's keys."""
        out: list[dict] = []
        for server_name, (key_ids, minimum) in wanted.items():
            if server_name == self._server_name:
                out.append(self._own_keys())
                continue
            minimum = self._now_ms() if minimum is None else minimum
            wanted_ids = list(key_ids) or None
            keys = await self._cache.get_server_keys(server_name, wanted_ids)
            if not keys or len({k.key_id for k in keys}) < len(key_ids) or any(
                    k.valid_until_ts < minimum for k in keys if k.expired_ts is None):
                try:
                    await self._fetcher.refresh(server_name)
                except Exception:  # unreachable: answer with what we have
                    pass
                keys = await self._cache.get_server_keys(server_name, wanted_ids)
            for raw in sorted({k.key_json for k in keys if k.key_json is not None}):
                signed = json.loads(raw)
                for key in self._keys:
                    signed = sign_json(signed, self._server_name, key)
                out.append(signed)
        return {"server_keys": out}

    def register(self, router: Router) -> None:
        async def post_query(request: ApiRequest) -> tuple[int, dict]:
            return 200, await self.query(_parse_query(request.json()))

        async def get_query(request: ApiRequest) -> tuple[int, dict]:
            server_name = request.path["server_name"]
            if not is_valid_server_name(server_name):
                raise InvalidParam("invalid server name")
            minimum = request.arg("minimum_valid_until_ts")
            if minimum is not None and not minimum.isdigit():
                raise InvalidParam("minimum_valid_until_ts must be an integer")
            key_id = request.path.get("key_id")  # the deprecated /query/{server}/{keyId}
            return 200, await self.query({server_name: (
                [key_id] if key_id else [], int(minimum) if minimum else None)})

        router.add("POST", r"/_matrix/key/v2/query", post_query)
        router.add("GET", r"/_matrix/key/v2/query/(?P<server_name>[^/]+)", get_query)
        router.add("GET", r"/_matrix/key/v2/query/(?P<server_name>[^/]+)/(?P<key_id>[^/]+)",
                   get_query)


def _parse_query(body: Mapping[str, Any]) -> dict[str, tuple[list[str], int | None]]:
    """The ``server_keys`` criteria of a POST body; M_BAD_JSON if malformed. Several
    keys' minimums for one server collapse to the latest (they share one response)."""
    server_keys = body.get("server_keys")
    if not isinstance(server_keys, dict):
        raise BadJson("server_keys must be an object")
    out: dict[str, tuple[list[str], int | None]] = {}
    for server_name, key_ids in server_keys.items():
        if not is_valid_server_name(server_name) or not isinstance(key_ids, dict):
            raise BadJson(f"server_keys.{server_name}: expected a server name and an object")
        minimums = []
        for key_id, criteria in key_ids.items():
            minimum = criteria.get("minimum_valid_until_ts") if isinstance(
                criteria, dict) else None
            if not isinstance(criteria, dict) or minimum is not None and (
                    not isinstance(minimum, int) or isinstance(minimum, bool)):
                raise BadJson(f"server_keys.{server_name}.{key_id}: bad criteria")
            if minimum is not None:
                minimums.append(minimum)
        out[server_name] = (list(key_ids), max(minimums) if minimums else None)
    return out
