"""Rate limits: Synapse's ``rc_*`` keys and the defaults Synapse ships with."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from homeserver.config.values import ConfigError


@dataclasses.dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst_count: float


# Synapse's rate-limit keys and the defaults Synapse ships with.
_RATE_LIMIT_DEFAULTS: Mapping[str, RateLimit] = {
    "rc_message": RateLimit(0.2, 10),
    "rc_registration": RateLimit(0.17, 3),
    "rc_login.address": RateLimit(0.003, 5),
    "rc_login.account": RateLimit(0.003, 5),
    "rc_login.failed_attempts": RateLimit(0.17, 3),
    "rc_joins.local": RateLimit(0.1, 10),
    "rc_joins.remote": RateLimit(0.01, 10),
    "rc_invites.per_room": RateLimit(0.3, 10),
    "rc_invites.per_user": RateLimit(0.003, 5),
    "rc_admin_redaction": RateLimit(1, 50),
    "rc_3pid_validation": RateLimit(0.003, 5),
    "rc_presence.per_user": RateLimit(0.1, 1),
    # ours: POST /login/get_token per user. The spec suggests at most one a minute,
    # which Synapse hard-codes; here it can be changed like the others
    "rc_login_token_request": RateLimit(1 / 60, 1),
    # MSC4140: listing, restarting, cancelling and sending delayed events (Synapse's
    # default; a MatrixRTC client restarts its one delayed leave every few seconds)
    "rc_delayed_event_mgmt": RateLimit(1, 5),
}


def parse_rate_limits(raw: Mapping[str, Any]) -> dict[str, RateLimit]:
    limits = dict(_RATE_LIMIT_DEFAULTS)
    for key, value in raw.items():
        if not key.startswith("rc_"):
            continue
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping")
        nested = {k: v for k, v in value.items() if isinstance(v, Mapping)}
        groups = {f"{key}.{k}": v for k, v in nested.items()} if nested else {key: value}
        for name, group in groups.items():
            ps, bc = group.get("per_second", 1.0), group.get("burst_count", 1.0)
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                       for x in (ps, bc)):
                raise ConfigError(f"{name}: per_second and burst_count must be numbers >= 0")
            limits[name] = RateLimit(float(ps), float(bc))
    return limits
