"""Who may use Synapse's admin API (``/_synapse/admin/…``): a user whose account has
``is_admin`` set (Synapse: ``assert_requester_is_admin``), by access token.

Synapse answers anyone else 403 ``M_FORBIDDEN`` "You are not a server admin"; a
missing or unknown token is the usual 401.
"""

from __future__ import annotations

from typing import Any, Protocol

from homeserver.errors import Forbidden
from homeserver.http.server import ApiRequest


class Accounts(Protocol):
    async def get_user(self, user_id: str) -> Any | None: ...


async def require_admin(request: ApiRequest, *, auth: Any, accounts: Accounts) -> Any:
    """The requester, if their access token is valid and they are a server admin;
    raises 401 (no or bad token) or 403 M_FORBIDDEN otherwise."""
    requester = await auth.authenticate(request)
    info = await accounts.get_user(requester.user_id)
    if info is None or not info.is_admin:
        raise Forbidden("You are not a server admin")
    return requester
