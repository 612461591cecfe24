"""Keys of remote users for our clients' ``/keys/query`` and ``/keys/claim``
(spec: Client-Server API, "Key management API"; Server-Server API, "End-to-End
Encryption").

``/keys/query``: users whose device lists we track (:mod:`federation.device_lists`)
are answered from the cache, which device-list updates keep current; a tracked user
(one sharing a room with a user of ours) not cached yet is fetched whole with
``GET /user/devices`` and cached from then on; the others (and those whose fetch
failed) are asked of their servers with ``POST /user/keys/query``, one request per
server. All of it in parallel, within the client's ``timeout``. ``/keys/claim``
always asks (one-time keys are used up, nothing to cache). A server that fails is in
``failures``.
"""

from __future__ import annotations

from typing import Any, Mapping

from twisted.internet import defer

from federation.device_lists import RemoteDeviceLists, keys_from_lists
from federation.remote_queries import DEFAULT_KEYS_TIMEOUT_MS, RemoteQueries


class RemoteKeys:
    def __init__(self, *, queries: RemoteQueries, device_lists: RemoteDeviceLists) -> None:
        self._queries = queries
        self._lists = device_lists

    async def query(self, by_server: Mapping[str, Mapping[str, list[str]]],
                    timeout_ms: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(device_keys/master_keys/self_signing_keys, failures)``."""
        cached = {}
        to_fetch: list[str] = []
        for users in by_server.values():
            for user_id in users:
                entry = await self._lists.cached(user_id)
                if entry is not None:
                    cached[user_id] = entry
                elif await self._lists.tracked(user_id):
                    to_fetch.append(user_id)
        if to_fetch:
            seconds = (DEFAULT_KEYS_TIMEOUT_MS if timeout_ms is None else
                       max(timeout_ms, 1)) / 1000
            fetched = await defer.gatherResults([
                defer.ensureDeferred(self._lists.resync(u, seconds)) for u in to_fetch])
            cached.update({u: e for u, e in zip(to_fetch, fetched) if e is not None})
        to_ask: dict[str, dict[str, list[str]]] = {}
        for server, users in by_server.items():
            for user_id, devices in users.items():
                if user_id not in cached:
                    to_ask.setdefault(server, {})[user_id] = list(devices)
        merged, failures = await self._queries.query_keys(to_ask, timeout_ms)
        wanted = {u: list(d) for users in by_server.values() for u, d in users.items()}
        for kind, by_user in keys_from_lists(cached, wanted).items():
            merged[kind].update(by_user)
        return merged, failures

    async def claim(self, by_server: Mapping[str, Mapping[str, Mapping[str, str]]],
                    timeout_ms: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        return await self._queries.claim_keys(by_server, timeout_ms)
