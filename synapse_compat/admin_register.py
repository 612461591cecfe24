"""Synapse's shared-secret registration: ``GET/POST /_synapse/admin/v1/register``.

This is what Synapse's ``register_new_matrix_user`` script (and many deployment tools)
speak, so an operator's usual way of creating the first admin works here unchanged:

1. ``GET`` returns ``{"nonce": …}``; a nonce is single-use and lives 60 seconds;
2. ``POST {nonce, username, password, admin, user_type?, displayname?, mac}`` where
   ``mac`` is the hex HMAC-SHA1, keyed with ``registration_shared_secret``, of
   ``nonce \\0 username \\0 password \\0 ("admin" | "notadmin") [\\0 user_type]``.

Status codes and errcodes are Synapse's: a missing field is 400 ``M_BAD_JSON``, an
unknown (or reused, or expired) nonce and invalid values 400 ``M_UNKNOWN``, a wrong
MAC 403 ``M_UNKNOWN``. The nonce is spent even when the request then fails.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from typing import Any, Callable, Mapping

from homeserver.errors import BadJson, MatrixError
from homeserver.http.server import ApiRequest, Router

NONCE_TIMEOUT_S = 60
#: Synapse's ``UserTypes.ALL_USER_TYPES``
USER_TYPES = frozenset({"support", "bot"})
_MAX_FIELD_LENGTH = 512


def _unknown(message: str, status: int = 400) -> MatrixError:
    return MatrixError(message, errcode="M_UNKNOWN", status=status)


def registration_mac(secret: str, nonce: str, username: str, password: str, admin: bool,
                     user_type: str | None = None) -> str:
    """The MAC a caller must send (hex HMAC-SHA1)."""
    parts = [nonce.encode("utf-8"), username.encode("utf-8"), password.encode("utf-8"),
             b"admin" if admin else b"notadmin"]
    if user_type:
        parts.append(user_type.encode("utf-8"))
    mac = hmac.new(secret.encode("utf-8"), b"\x00".join(parts), hashlib.sha1)
    return mac.hexdigest()


class Nonces:
    """Single-use nonces that expire ``timeout_s`` after they were handed out."""

    def __init__(self, seconds: Callable[[], float], *, timeout_s: float = NONCE_TIMEOUT_S,
                 max_outstanding: int = 10_000) -> None:
        self._seconds = seconds
        self._timeout = timeout_s
        self._max = max_outstanding
        self._issued: OrderedDict[str, float] = OrderedDict()

    def issue(self) -> str:
        self._expire()
        while len(self._issued) >= self._max:
            self._issued.popitem(last=False)
        nonce = secrets.token_hex(64)
        self._issued[nonce] = self._seconds()
        return nonce

    def spend(self, nonce: str) -> bool:
        """True if ``nonce`` was issued, is unexpired and unused; it is used up now."""
        self._expire()
        return self._issued.pop(nonce, None) is not None

    def _expire(self) -> None:
        now = self._seconds()
        while self._issued:
            nonce, issued = next(iter(self._issued.items()))
            if now - issued <= self._timeout:
                break
            del self._issued[nonce]


class SharedSecretRegistration:
    def __init__(self, secret: str | None, nonces: Nonces, registrar: Any, sessions: Any,
                 hasher: Any) -> None:
        self._secret = secret
        self._nonces = nonces
        self._registrar = registrar  # homeserver.accounts.registration.Registrar
        self._sessions = sessions  # homeserver.accounts.sessions.SessionIssuer
        self._hasher = hasher

    def _require_enabled(self) -> str:
        if not self._secret:
            raise _unknown("Shared secret registration is not enabled")
        return self._secret

    def new_nonce(self) -> dict[str, str]:
        self._require_enabled()
        return {"nonce": self._nonces.issue()}

    async def register(self, body: Mapping[str, Any]) -> dict[str, Any]:
        secret = self._require_enabled()
        if "nonce" not in body:
            raise BadJson("nonce must be specified")
        nonce = body["nonce"]
        if not isinstance(nonce, str) or not self._nonces.spend(nonce):
            raise _unknown("unrecognised nonce")
        username = self._field(body, "username")
        password = self._field(body, "password")
        admin = bool(body.get("admin"))
        user_type = body.get("user_type")
        if user_type is not None and user_type not in USER_TYPES:
            raise _unknown("Invalid user type")
        displayname = body.get("displayname")
        if displayname is not None and not isinstance(displayname, str):
            raise _unknown("Invalid displayname")
        if "mac" not in body:
            raise BadJson("mac must be specified")
        got = body["mac"]
        want = registration_mac(secret, nonce, username, password, admin, user_type)
        if not isinstance(got, str) or not hmac.compare_digest(
                want.encode("ascii"), got.encode("utf-8")):
            raise _unknown("HMAC incorrect", status=403)
        want_refresh = body.get("refresh_token", False)
        if not isinstance(want_refresh, bool):
            raise _unknown("refresh_token must be a boolean")

        user_id = self._registrar.user_id_for(username)
        password_hash = await self._hasher.hash(password)
        await self._registrar.create(user_id, password_hash, admin=admin,
                                     user_type=user_type, displayname=displayname)
        return await self._sessions.start_session(user_id, want_refresh=want_refresh)

    @staticmethod
    def _field(body: Mapping[str, Any], key: str) -> str:
        if key not in body:
            raise BadJson(f"{key} must be specified")
        value = body[key]
        if not isinstance(value, str) or len(value) > _MAX_FIELD_LENGTH or "\x00" in value:
            raise _unknown(f"Invalid {key}")
        return value


def register(router: Router, shared_secret_registration: SharedSecretRegistration) -> None:
    async def get_nonce(request: ApiRequest) -> tuple[int, Any]:
        return 200, shared_secret_registration.new_nonce()

    async def post_register(request: ApiRequest) -> tuple[int, Any]:
        return 200, await shared_secret_registration.register(request.json())

    router.add("GET", "/_synapse/admin/v1/register", get_nonce)
    router.add("POST", "/_synapse/admin/v1/register", post_register)
