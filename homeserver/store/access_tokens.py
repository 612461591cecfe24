"""Access-token lookup for the Authenticator that tells *expired* from *unknown*
(spec: "Refreshing access tokens", "Soft logout").

``Devices.get_user_by_access_token`` answers None for both. A client whose refreshable
access token merely expired must get ``M_UNKNOWN_TOKEN`` with ``soft_logout: true``
(refresh, keep your state), while a revoked token is a hard logout; and the
Authenticator must learn ``valid_until_ms`` so its cache stops accepting the token on
time. This module reads the ``access_tokens`` table owned by
:mod:`homeserver.store.devices` and delegates the lookup itself to it.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.errors import UnknownToken
from homeserver.store.database import Database
from homeserver.store.devices import Devices, access_tokens, hash_token


class AccessTokenOwner(NamedTuple):
    """Who an access token belongs to, and until when it is valid."""
    user_id: str
    device_id: str | None
    token_id: int
    is_guest: bool
    valid_until_ms: int | None


class AccessTokens:
    def __init__(self, db: Database, devices: Devices) -> None:
        self._db = db
        self._devices = devices

    async def get_user_by_access_token(self, token: str) -> AccessTokenOwner | None:
        """The token's owner; None if unknown (or its user is deactivated).

        Raises ``UnknownToken`` with ``soft_logout`` true if the token exists but has
        expired (the Authenticator passes that on to the client unchanged).
        """
        token_hash = hash_token(token)

        def txn(conn: Connection) -> int | None:
            return conn.execute(sa.select(access_tokens.c.valid_until_ms).where(
                access_tokens.c.token_hash == token_hash)).scalar()

        valid_until_ms = await self._db.run(txn)
        if valid_until_ms is not None and valid_until_ms <= self._db.now_ms():
            raise UnknownToken("Access token has expired", soft_logout=True)
        owner = await self._devices.get_user_by_access_token(token)
        if owner is None:
            return None
        return AccessTokenOwner(owner.user_id, owner.device_id, owner.token_id,
                                owner.is_guest, valid_until_ms)
