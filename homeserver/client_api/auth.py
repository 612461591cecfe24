"""Who is asking: access-token authentication for client endpoints.

Tokens come from ``Authorization: Bearer`` (or the deprecated ``access_token`` query
parameter). The store keeps only token hashes; lookups go through a small in-memory
cache so a busy client does not cost a database round trip per request.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any, Protocol

from homeserver.errors import GuestAccessForbidden, MissingToken, UnknownToken
from homeserver.http.server import ApiRequest


@dataclasses.dataclass(frozen=True)
class Requester:
    user_id: str
    device_id: str | None
    token_id: int | None
    is_guest: bool = False
    access_token: str | None = dataclasses.field(default=None, repr=False)


class TokenLookup(Protocol):
    async def get_user_by_access_token(self, token: str) -> Any: ...


class Authenticator:
    _CACHE_SIZE = 10_000

    def __init__(self, tokens: TokenLookup, now_ms) -> None:
        self._tokens = tokens
        self._now_ms = now_ms
        self._cache: OrderedDict[str, Requester] = OrderedDict()
        self._expiry: dict[str, int | None] = {}

    @staticmethod
    def token_from(request: ApiRequest) -> str | None:
        header = request.header("Authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise MissingToken("Invalid Authorization header")
        return request.arg("access_token")

    async def authenticate(self, request: ApiRequest, *, allow_guest: bool = False,
                           optional: bool = False) -> Requester | None:
        token = self.token_from(request)
        if token is None:
            if optional:
                return None
            raise MissingToken("Missing access token")
        requester = self._cached(token)
        if requester is None:
            info = await self._tokens.get_user_by_access_token(token)
            if info is None:
                raise UnknownToken("Unknown access token", soft_logout=False)
            requester = Requester(info.user_id, info.device_id, info.token_id,
                                  bool(getattr(info, "is_guest", False)), token)
            self._remember(token, requester, getattr(info, "valid_until_ms", None))
        if requester.is_guest and not allow_guest:
            raise GuestAccessForbidden("Guest access not allowed")
        request.requester = requester
        return requester

    def _cached(self, token: str) -> Requester | None:
        requester = self._cache.get(token)
        if requester is None:
            return None
        expiry = self._expiry.get(token)
        if expiry is not None and expiry <= self._now_ms():
            self.forget_token(token)
            raise UnknownToken("Access token has expired", soft_logout=True)
        self._cache.move_to_end(token)
        return requester

    def _remember(self, token: str, requester: Requester, valid_until_ms: int | None) -> None:
        self._cache[token] = requester
        self._expiry[token] = valid_until_ms
        while len(self._cache) > self._CACHE_SIZE:
            old, _ = self._cache.popitem(last=False)
            self._expiry.pop(old, None)

    # -- invalidation (logout, device deletion, deactivation, password change) ---------
    def forget_token(self, token: str) -> None:
        self._cache.pop(token, None)
        self._expiry.pop(token, None)

    def forget_user(self, user_id: str, *, except_token: str | None = None,
                    device_id: str | None = None) -> None:
        for token, req in list(self._cache.items()):
            if req.user_id == user_id and token != except_token and (
                    device_id is None or req.device_id == device_id):
                self.forget_token(token)
