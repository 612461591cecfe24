"""Password login (spec: "Login", ``m.login.password``, "Identifier types"), token
login (``m.login.token``, spent from :mod:`homeserver.accounts.login_tokens` when
``login_via_existing_session`` is enabled) and the password check the
User-Interactive Authentication ``m.login.password`` stage shares.

Rate limits, with Synapse's names and meaning:

- ``rc_login.address``: every login attempt, per client IP;
- ``rc_login.account``: successful logins, per account;
- ``rc_login.failed_attempts``: wrong passwords, per account. Once its bucket is empty
  the account is *locked* until one token has refilled: further attempts are refused
  with 429 before the password is even looked at, so guessing goes no faster than
  the configured rate, right or wrong.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from homeserver.accounts.devices import check_display_name
from homeserver.accounts.sessions import check_device_id
from homeserver.errors import (
    BadJson, Forbidden, LimitExceeded, MatrixError, MissingParam, UserDeactivated,
)
from homeserver.http.validate import optional, require
from homeserver.ids import InvalidId, UserID

LOGIN_TYPE_PASSWORD = "m.login.password"
LOGIN_TYPE_TOKEN = "m.login.token"
_BAD_CREDENTIALS = "Invalid username or password"


def user_from_identifier(body: Mapping[str, Any]) -> str:
    """The ``user`` a login or UIA dict names: ``identifier`` (``m.id.user``) or the
    deprecated top-level ``user``. Third-party IDs are unknown here: 403 (spec)."""
    identifier = body.get("identifier")
    if identifier is None:
        if body.get("user") is not None:
            return require(body, "user", str)
        if body.get("medium") is not None or body.get("address") is not None:
            raise Forbidden("Unknown third-party identifier")
        raise MissingParam("Missing parameter: identifier")
    if not isinstance(identifier, dict):
        raise BadJson("identifier must be an object")
    kind = identifier.get("type")
    if kind == "m.id.user":
        return require(identifier, "user", str)
    if kind in ("m.id.thirdparty", "m.id.phone"):
        raise Forbidden("Unknown third-party identifier")
    raise MatrixError("Unknown login identifier type", errcode="M_UNKNOWN", status=400)


class FailedAttempts:
    """The ``rc_login.failed_attempts`` lock described in the module docstring."""

    _MAX_LOCKS = 100_000

    def __init__(self, ratelimiter: Any, now_ms: Callable[[], int]) -> None:
        self._ratelimiter = ratelimiter
        self._now_ms = now_ms
        self._locked_until: dict[str, int] = {}

    def check(self, key: str) -> None:
        """Raise 429 while ``key`` is locked."""
        until = self._locked_until.get(key)
        if until is None:
            return
        now = self._now_ms()
        if until > now:
            raise LimitExceeded(until - now)
        del self._locked_until[key]

    def failed(self, key: str) -> None:
        """Record a wrong password; raise 429 (and lock) once the bucket is empty."""
        try:
            self._ratelimiter.check("rc_login.failed_attempts", key)
        except LimitExceeded as e:
            if len(self._locked_until) >= self._MAX_LOCKS:
                now = self._now_ms()
                self._locked_until = {k: v for k, v in self._locked_until.items() if v > now}
            self._locked_until[key] = self._now_ms() + e.retry_after_ms
            raise


class PasswordVerifier:
    """Turns (user, password) into a local user ID, or raises."""

    def __init__(self, accounts: Any, server_name: str, failed_attempts: FailedAttempts) -> None:
        self._accounts = accounts
        self._server_name = server_name
        self._failed = failed_attempts

    def qualify(self, user: str) -> str | None:
        """A full user ID for a localpart or user ID; None if it cannot be ours."""
        if user.startswith("@"):
            try:
                parsed = UserID.parse(user)
            except InvalidId:
                return None
            return user if parsed.domain == self._server_name else None
        return f"@{user}:{self._server_name}"

    async def resolve(self, user_id: str) -> Any:
        """The account (``UserInfo``) by exact ID, else by a unique case-insensitive match."""
        info = await self._accounts.get_user(user_id)
        if info is not None:
            return info
        matches = await self._accounts.find_user_ids_case_insensitive(user_id)
        if len(matches) == 1:
            return await self._accounts.get_user(matches[0])
        return None

    async def verify(self, user: str, password: str) -> str:
        """The user ID if ``password`` is right; 403 M_FORBIDDEN / M_USER_DEACTIVATED,
        or 429 once ``rc_login.failed_attempts`` is exhausted."""
        user_id = self.qualify(user)
        if user_id is None:
            raise Forbidden(_BAD_CREDENTIALS)
        key = user_id.lower()
        self._failed.check(key)
        info = await self.resolve(user_id)
        if info is not None and info.deactivated:
            raise UserDeactivated("This account has been deactivated")
        if info is None or not await self._accounts.check_password(info.user_id, password):
            self._failed.failed(key)
            raise Forbidden(_BAD_CREDENTIALS)
        return info.user_id


class PasswordLogin:
    """``POST /login`` with ``m.login.password``, or ``m.login.token`` when a
    :class:`~homeserver.accounts.login_tokens.LoginTokenService` is given and enabled."""

    def __init__(self, verifier: PasswordVerifier, sessions: Any, ratelimiter: Any, *,
                 public_baseurl: str | None = None, login_tokens: Any = None) -> None:
        self._verifier = verifier
        self._sessions = sessions  # homeserver.accounts.sessions.SessionIssuer
        self._ratelimiter = ratelimiter
        self._public_baseurl = public_baseurl
        self._tokens = login_tokens

    def _tokens_enabled(self) -> bool:
        return self._tokens is not None and self._tokens.enabled

    def flows(self) -> list[dict[str, Any]]:
        """``GET /login``: ``m.login.token`` carries ``get_login_token: true`` because
        its tokens come from ``POST /login/get_token`` (spec v1.7, login.yaml)."""
        flows: list[dict[str, Any]] = [{"type": LOGIN_TYPE_PASSWORD}]
        if self._tokens_enabled():
            flows.append({"type": LOGIN_TYPE_TOKEN, "get_login_token": True})
        return flows

    async def login(self, body: Mapping[str, Any], *, ip: str,
                    user_agent: str | None = None) -> dict[str, Any]:
        self._ratelimiter.check("rc_login.address", ip)
        login_type = require(body, "type", str)
        if login_type == LOGIN_TYPE_TOKEN and self._tokens_enabled():
            token = require(body, "token", str)
        elif login_type == LOGIN_TYPE_PASSWORD:
            user = user_from_identifier(body)
            password = require(body, "password", str)
        else:
            raise MatrixError("Unknown login type", errcode="M_UNKNOWN", status=400)
        device_id = check_device_id(body.get("device_id"))
        display_name = check_display_name(body.get("initial_device_display_name"))
        want_refresh = optional(body, "refresh_token", bool, False)

        if login_type == LOGIN_TYPE_TOKEN:
            user_id = await self._tokens.redeem(token)
        else:
            user_id = await self._verifier.verify(user, password)
        self._ratelimiter.check("rc_login.account", user_id.lower())
        response = await self._sessions.start_session(
            user_id, device_id=device_id, display_name=display_name,
            want_refresh=want_refresh, ip=ip, user_agent=user_agent)
        if self._public_baseurl:
            response["well_known"] = {"m.homeserver": {"base_url": self._public_baseurl}}
        return response
