"""The identity servers our users' third-party invites are looked up and stored on
(spec: Identity Service API v2, "Association lookup" and "Invitation storage";
Client-Server API, "Third-party invites" → "Server behaviour").

A client names the identity server (``id_server``) in its request, so a request to it
is a request to a host a user chose: it is made only to servers the operator trusts
(``trusted_third_party_id_servers``, Synapse's key; none by default, and then every
third-party invite is ``400 M_SERVER_NOT_TRUSTED``), and only through the SSRF-filtered
agent (:mod:`homeserver.http.outbound`), so an identity server on a private or loopback
address is reached only when ``ip_range_whitelist`` allows it. A trusted entry is a
host name (spoken to over HTTPS, as Synapse does) or, for tests, a full
``http(s)://host:port`` base URL whose host is the ``id_server`` name.

Lookups are hashed as the v2 API asks (``GET /hash_details``, then ``sha256`` of
``"<address> <medium> <pepper>"``, unpadded URL-safe base64; ``none`` only if the
server offers no ``sha256``). An identity server's failure is ``502 M_UNKNOWN`` for
our client, never its error passed on.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from typing import Any, Awaitable, Callable, Mapping

from homeserver.errors import MatrixError, ServerNotTrusted
from homeserver.http.outbound import AddressPolicy, FilteringReactor

#: ``await request(method, url, body, access_token) -> (status, json or None)``
Request = Callable[[str, str, Any, str | None], Awaitable[tuple[int, Any]]]
_V2 = "/_matrix/identity/v2"


def hashed_address(address: str, medium: str, pepper: str) -> str:
    """The v2 lookup hash of a third-party identifier (spec: "Hashing")."""
    digest = hashlib.sha256(f"{address} {medium} {pepper}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def trusted_base_urls(entries: tuple[str, ...]) -> dict[str, str]:
    """``id_server`` name → base URL, from ``trusted_third_party_id_servers``."""
    out: dict[str, str] = {}
    for entry in entries:
        if "://" in entry:
            parts = urllib.parse.urlsplit(entry)
            out[parts.netloc] = f"{parts.scheme}://{parts.netloc}"
        else:
            out[entry] = f"https://{entry}"
    return out


def _failed(id_server: str, what: str) -> MatrixError:
    return MatrixError(f"The identity server {id_server} could not {what}",
                       errcode="M_UNKNOWN", status=502)


class IdentityServers:
    """Lookups and stored invites on the trusted identity servers (module docstring)."""

    def __init__(self, *, trusted: Mapping[str, str], request: Request) -> None:
        self._trusted = dict(trusted)
        self._request = request

    def base_url(self, id_server: str) -> str:
        """The base URL of a trusted identity server; 400 M_SERVER_NOT_TRUSTED else."""
        base = self._trusted.get(id_server)
        if base is None:
            raise ServerNotTrusted(f"Untrusted identity server {id_server!r}", status=400)
        return base

    async def _call(self, id_server: str, method: str, path: str, body: Any,
                    token: str | None, what: str) -> dict[str, Any]:
        url = self.base_url(id_server) + _V2 + path
        try:
            status, answer = await self._request(method, url, body, token)
        except Exception:   # unreachable, refused by the address filter, timed out
            raise _failed(id_server, what) from None
        if status != 200 or not isinstance(answer, dict):
            raise _failed(id_server, what)
        return answer

    async def lookup(self, id_server: str, token: str | None, medium: str,
                     address: str) -> str | None:
        """The Matrix user ID bound to the identifier, or None."""
        details = await self._call(id_server, "GET", "/hash_details", None, token,
                                   "tell its hash details")
        algorithms = details.get("algorithms")
        pepper = details.get("lookup_pepper")
        if not isinstance(algorithms, list) or not isinstance(pepper, str):
            raise _failed(id_server, "tell its hash details")
        if "sha256" in algorithms:
            key, algorithm = hashed_address(address, medium, pepper), "sha256"
        elif "none" in algorithms:
            key, algorithm = f"{address} {medium}", "none"
        else:
            raise _failed(id_server, "offer a known hash algorithm")
        answer = await self._call(id_server, "POST", "/lookup", {
            "algorithm": algorithm, "pepper": pepper, "addresses": [key]}, token,
            "look the address up")
        mappings = answer.get("mappings")
        found = mappings.get(key) if isinstance(mappings, dict) else None
        return found if isinstance(found, str) and found.startswith("@") else None

    async def store_invite(self, id_server: str, token: str | None,
                           request: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /store-invite``: ``{"token", "content"}``, the stored invite's token
        (the state key) and the ``m.room.third_party_invite`` content to send."""
        answer = await self._call(id_server, "POST", "/store-invite", dict(request), token,
                                  "store the invite")
        token_value = answer.get("token")
        keys = [k for k in answer.get("public_keys") or () if isinstance(k, dict)
                and isinstance(k.get("public_key"), str)
                and isinstance(k.get("key_validity_url"), str)]
        if isinstance(answer.get("public_key"), str):   # the r0 answer's single key
            keys.insert(0, {"public_key": answer["public_key"],
                            "key_validity_url": answer.get("key_validity_url", "")})
        if not isinstance(token_value, str) or not token_value or not keys:
            raise _failed(id_server, "store the invite")
        display_name = answer.get("display_name")
        return {"token": token_value, "content": {
            "display_name": display_name if isinstance(display_name, str) else "",
            "public_keys": keys,
            # for servers that read only the first key (the spec keeps both)
            "public_key": keys[0]["public_key"],
            "key_validity_url": keys[0]["key_validity_url"],
        }}


def treq_request(reactor: Any, policy: AddressPolicy, timeout: float = 30.0) -> Request:
    """The real transport: treq over the SSRF-filtered reactor, JSON in and out;
    treq loads on first use (see homeserver/reactor.py)."""
    clients: list[Any] = []

    async def request(method: str, url: str, body: Any, token: str | None
                      ) -> tuple[int, Any]:
        import treq
        from treq.client import HTTPClient
        from twisted.web.client import Agent

        if not clients:
            clients.append(HTTPClient(Agent(FilteringReactor(reactor, policy))))
        headers = {"Authorization": [f"Bearer {token}"]} if token else {}
        extra = {} if body is None else {"json": body}
        response = await clients[0].request(method, url, headers=headers,
                                            timeout=timeout, **extra)
        try:
            return response.code, await treq.json_content(response)
        except Exception:
            return response.code, None

    return request


__all__ = ["IdentityServers", "hashed_address", "treq_request", "trusted_base_urls"]
