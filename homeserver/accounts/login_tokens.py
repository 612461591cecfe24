"""Signing in a new device from an existing session (spec v1.7: Client-Server API,
"Login", ``POST /login/get_token`` and the ``m.login.token`` login type; MSC3882).

A logged-in device asks for a login token (after re-entering its password, when
``require_ui_auth``), shows it to the new device (typically as a QR code), and the new
device spends it on ``POST /login``. Tokens are random, stored hashed
(:mod:`homeserver.store.login_tokens`), expire after ``token_timeout`` and are
single-use. The feature is Synapse's ``login_via_existing_session`` and, as in
Synapse, off by default: a token is as good as the password for a few minutes. While
it is off ``get_token`` answers 404 M_UNRECOGNIZED (as Synapse, whose route is then
unregistered), ``m.login.token`` is not offered by ``GET /login`` and the
``m.get_login_token`` capability is false — which is how the spec tells clients
whether the endpoint is usable; the route itself stays, so ``/versions`` may list v1.7.
"""

from __future__ import annotations

import secrets
from typing import Any, Callable

from homeserver.config import LoginViaExistingSession
from homeserver.errors import Forbidden, Unrecognized, UserDeactivated


class LoginTokenService:
    def __init__(self, settings: LoginViaExistingSession, *, tokens: Any, accounts: Any,
                 ratelimiter: Any, now_ms: Callable[[], int]) -> None:
        self._settings = settings
        self._tokens = tokens  # homeserver.store.login_tokens.LoginTokens
        self._accounts = accounts
        self._ratelimiter = ratelimiter
        self._now_ms = now_ms

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    @property
    def require_ui_auth(self) -> bool:
        return self._settings.require_ui_auth

    def check_enabled(self) -> None:
        """404 M_UNRECOGNIZED while the feature is off (the spec's answer for an
        endpoint a server does not offer; clients read ``m.get_login_token`` first)."""
        if not self._settings.enabled:
            raise Unrecognized("Login via an existing session is not enabled on this server")

    async def issue(self, user_id: str) -> dict[str, Any]:
        """A new token for ``user_id``: ``{"login_token", "expires_in_ms"}``.

        Rate limited per user by ``rc_login_token_request`` (the spec suggests at
        most one a minute, as Synapse), and, since each token opens a new session,
        by the account's ``rc_login.account`` like the logins it stands for."""
        self.check_enabled()
        self._ratelimiter.check("rc_login_token_request", user_id)
        self._ratelimiter.check("rc_login.account", user_id.lower())
        token = secrets.token_urlsafe(32)
        now = self._now_ms()
        lifetime = self._settings.token_timeout_ms
        await self._tokens.add(token, user_id, expires_ts=now + lifetime, now_ms=now)
        return {"login_token": token, "expires_in_ms": lifetime}

    async def redeem(self, token: str) -> str:
        """The user a live token was issued to, spending it. An unknown, expired or
        already used token is 403 M_FORBIDDEN (spec: login.yaml, 403); a deactivated
        account's is 403 M_USER_DEACTIVATED."""
        user_id = await self._tokens.consume(token, self._now_ms()) if token else None
        if user_id is None:
            raise Forbidden("Invalid login token")
        info = await self._accounts.get_user(user_id)
        if info is None:
            raise Forbidden("Invalid login token")
        if info.deactivated:
            raise UserDeactivated("This account has been deactivated")
        return user_id
