"""Signing in: ``login_via_existing_session`` (MSC3882). Registration's keys are single
values read with the rest in :mod:`.parse`."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from homeserver.config.values import ConfigError, Reader, parse_duration_ms


@dataclasses.dataclass(frozen=True)
class LoginViaExistingSession:
    """Synapse's ``login_via_existing_session`` (spec v1.7, "Login",
    ``POST /login/get_token``, MSC3882): a logged-in device may mint a short-lived,
    single-use ``m.login.token`` for signing in another device. Off by default, as in
    Synapse: the token is as powerful as a password."""

    enabled: bool = False
    #: ask for the password again (User-Interactive Auth) before handing out a token
    require_ui_auth: bool = True
    token_timeout_ms: int = 5 * 60 * 1000


def parse_login_via_existing_session(raw: Mapping[str, Any]) -> LoginViaExistingSession:
    """``login_via_existing_session: {enabled, require_ui_auth, token_timeout}``."""
    r = Reader(raw)
    try:
        enabled = r.get("enabled", bool, False)
        require_ui_auth = r.get("require_ui_auth", bool, True)
    except ConfigError as e:
        raise ConfigError(f"login_via_existing_session.{e}") from None
    return LoginViaExistingSession(
        enabled=enabled, require_ui_auth=require_ui_auth,
        token_timeout_ms=parse_duration_ms("login_via_existing_session.token_timeout",
                                            raw.get("token_timeout", "5m")))
