"""Our users asking about remote things: profiles, aliases, room directories and keys
of other servers, asked over federation.

Spec: Client-Server API "Profiles", "Room aliases", "Published room directory"
(``server`` parameter), "Key management API" (``/keys/query``, ``/keys/claim`` with
``timeout``); Server-Server API "Querying for information", "Public Room Directory",
"End-to-End Encryption".

Remote errors are never passed on as ours (STYLE.md 10): a remote 404 becomes our
404 M_NOT_FOUND (the thing does not exist), anything else (unreachable, a remote 500,
garbage) becomes 502 M_UNKNOWN naming the server. For keys, a server that fails is
listed in ``failures`` and the others still answer, as the spec asks.

Profiles are cached for :data:`PROFILE_CACHE_MS` (a client renders a member list by
asking each member's profile; the remote server should not get a request per row).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Protocol

from twisted.internet import defer

from federation.client import RemoteError, RemoteHttpError
from homeserver.errors import MatrixError, NotFound

#: how long a remote profile answer is reused
PROFILE_CACHE_MS = 60_000
#: ``/keys/query`` and ``/keys/claim``: the spec's default ``timeout``
DEFAULT_KEYS_TIMEOUT_MS = 10_000
_PROFILE_CACHE_MAX = 10_000
_FED = "/_matrix/federation/v1"


class FederationRequests(Protocol):
    async def get_json(self, destination: str, path: str,
                       args: Mapping[str, Any] | None = None, *,
                       timeout: float | None = None) -> Any: ...

    async def post_json(self, destination: str, path: str, body: Any,
                        args: Mapping[str, Any] | None = None, *,
                        timeout: float | None = None) -> Any: ...


def translate(e: RemoteError, what: str) -> MatrixError:
    """Our error for a remote failure (module docstring)."""
    if isinstance(e, RemoteHttpError) and e.status == 404:
        return NotFound(f"{what} not found")
    return MatrixError(f"Could not ask {e.destination} for {what}", errcode="M_UNKNOWN",
                       status=502)


def failure_entry(e: Exception) -> dict[str, Any]:
    """A ``failures`` value: what went wrong with one server, in our words."""
    if isinstance(e, RemoteHttpError):
        return {"status": 502, "message": f"The server answered {e.status}"}
    return {"status": 503, "message": "The server could not be reached"}


def _objects(value: Any) -> dict[str, dict[str, Any]]:
    """The object-valued entries of a JSON object (anything else from a remote: none)."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, dict)}


class RemoteQueries:
    def __init__(self, *, client: FederationRequests, now_ms: Callable[[], int]) -> None:
        self._client = client
        self._now_ms = now_ms
        self._profiles: dict[str, tuple[int, dict[str, str]]] = {}

    # -- profiles -----------------------------------------------------------------------
    async def profile(self, user_id: str, domain: str) -> dict[str, str]:
        """A remote user's ``displayname``/``avatar_url`` (those set)."""
        now = self._now_ms()
        cached = self._profiles.get(user_id)
        if cached is not None and now - cached[0] < PROFILE_CACHE_MS:
            return dict(cached[1])
        try:
            body = await self._client.get_json(domain, _FED + "/query/profile",
                                               {"user_id": user_id})
        except RemoteError as e:
            raise translate(e, "Profile") from None
        profile = {k: v for k, v in (body if isinstance(body, dict) else {}).items()
                   if k in ("displayname", "avatar_url") and isinstance(v, str)}
        if len(self._profiles) >= _PROFILE_CACHE_MAX:
            self._profiles.clear()  # crude, but bounded; entries live a minute anyway
        self._profiles[user_id] = (now, profile)
        return dict(profile)

    # -- aliases and the room directory -------------------------------------------------
    async def resolve_alias(self, alias: str, domain: str) -> dict[str, Any]:
        """``{room_id, servers}`` for a remote alias, asked of its server."""
        try:
            body = await self._client.get_json(domain, _FED + "/query/directory",
                                               {"room_alias": alias})
        except RemoteError as e:
            raise translate(e, f"Room alias {alias}") from None
        room_id = body.get("room_id") if isinstance(body, dict) else None
        servers = body.get("servers") if isinstance(body, dict) else None
        if not isinstance(room_id, str) or not isinstance(servers, list):
            raise MatrixError(f"{domain} sent a malformed alias answer", status=502)
        servers = [s for s in servers if isinstance(s, str)]
        return {"room_id": room_id, "servers": servers or [domain]}

    async def public_rooms(self, server: str, *, limit: int | None, since: str | None,
                           search_term: str | None,
                           room_types: list[str | None] | None) -> dict[str, Any]:
        """A remote server's published rooms; a filter makes it a POST."""
        try:
            if search_term is None and room_types is None:
                args: dict[str, Any] = {}
                if limit:
                    args["limit"] = str(limit)
                if since:
                    args["since"] = since
                body = await self._client.get_json(server, _FED + "/publicRooms", args)
            else:
                request: dict[str, Any] = {"filter": {}}
                if search_term is not None:
                    request["filter"]["generic_search_term"] = search_term
                if room_types is not None:
                    request["filter"]["room_types"] = room_types
                if limit:
                    request["limit"] = limit
                if since:
                    request["since"] = since
                body = await self._client.post_json(server, _FED + "/publicRooms", request)
        except RemoteError as e:
            raise translate(e, f"The room directory of {server}") from None
        if not isinstance(body, dict) or not isinstance(body.get("chunk"), list):
            raise MatrixError(f"{server} sent a malformed room directory", status=502)
        out = {"chunk": [r for r in body["chunk"] if isinstance(r, dict)]}
        for key in ("next_batch", "prev_batch"):
            if isinstance(body.get(key), str):
                out[key] = body[key]
        estimate = body.get("total_room_count_estimate")
        if isinstance(estimate, int):
            out["total_room_count_estimate"] = estimate
        return out

    # -- keys -----------------------------------------------------------------------------
    async def query_keys(self, by_server: Mapping[str, Mapping[str, list[str]]],
                         timeout_ms: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Ask each server for its users' keys, in parallel, each within the timeout.

        Returns ``(merged, failures)``: merged has ``device_keys``, ``master_keys``,
        ``self_signing_keys`` for the users asked for (whatever else a server sends
        is dropped); failures maps each failed server to its ``failures`` entry."""
        async def ask(server: str, users: Mapping[str, list[str]]) -> Any:
            return await self._client.post_json(
                server, _FED + "/user/keys/query", {"device_keys": dict(users)},
                timeout=self._seconds(timeout_ms))

        answers = await self._fan_out(by_server, ask)
        merged: dict[str, Any] = {"device_keys": {}, "master_keys": {},
                                  "self_signing_keys": {}}
        failures: dict[str, Any] = {}
        for server, (ok, body) in answers.items():
            if not ok:
                failures[server] = failure_entry(body)
                continue
            asked = by_server[server]
            body = body if isinstance(body, dict) else {}
            for user_id, devices in _objects(body.get("device_keys")).items():
                if user_id in asked:
                    merged["device_keys"][user_id] = {
                        d: k for d, k in _objects(devices).items()
                        if k.get("user_id") == user_id and k.get("device_id") == d}
            for kind in ("master_keys", "self_signing_keys"):
                for user_id, key in _objects(body.get(kind)).items():
                    if user_id in asked and key.get("user_id") == user_id:
                        merged[kind][user_id] = key
        return merged, failures

    async def claim_keys(self, by_server: Mapping[str, Mapping[str, Mapping[str, str]]],
                         timeout_ms: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """One-time keys of remote devices, each server asked once: ``(keys, failures)``."""
        async def ask(server: str, users: Mapping[str, Mapping[str, str]]) -> Any:
            return await self._client.post_json(
                server, _FED + "/user/keys/claim",
                {"one_time_keys": {u: dict(d) for u, d in users.items()}},
                timeout=self._seconds(timeout_ms))

        answers = await self._fan_out(by_server, ask)
        claimed: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        for server, (ok, body) in answers.items():
            if not ok:
                failures[server] = failure_entry(body)
                continue
            asked = by_server[server]
            keys = body.get("one_time_keys") if isinstance(body, dict) else None
            for user_id, devices in _objects(keys).items():
                if user_id in asked:
                    claimed[user_id] = {d: k for d, k in _objects(devices).items()
                                        if d in asked[user_id]}
        return claimed, failures

    @staticmethod
    def _seconds(timeout_ms: int | None) -> float:
        ms = DEFAULT_KEYS_TIMEOUT_MS if timeout_ms is None else timeout_ms
        return max(ms, 1) / 1000

    @staticmethod
    async def _fan_out(by_server: Mapping[str, Any],
                       ask: Callable[[str, Any], Any]) -> dict[str, tuple[bool, Any]]:
        servers: Iterable[str] = list(by_server)
        results = await defer.DeferredList(
            [defer.ensureDeferred(ask(s, by_server[s])) for s in servers],
            consumeErrors=True)
        out: dict[str, tuple[bool, Any]] = {}
        for server, (ok, value) in zip(servers, results):
            if ok:
                out[server] = (True, value)
            elif value.check(RemoteError):
                out[server] = (False, value.value)
            else:
                value.raiseException()  # a bug of ours: not the remote's failure
        return out
