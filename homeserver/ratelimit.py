"""Token-bucket rate limiting, keyed by (action, user or IP), configured by Synapse's rc_* keys.

A bucket holds ``burst_count`` tokens and refills at ``per_second``. An action that
finds it empty raises ``LimitExceeded`` with ``retry_after_ms``. The clock is injected.
"""

from __future__ import annotations

from typing import Callable, Mapping

from homeserver.config import RateLimit
from homeserver.errors import LimitExceeded


class RateLimiter:
    # buckets untouched for this long are full again and can be forgotten
    _SWEEP_EVERY = 10_000

    def __init__(self, limits: Mapping[str, RateLimit], now: Callable[[], float],
                 *, enabled: bool = True) -> None:
        self._limits = limits
        self._now = now
        self._enabled = enabled
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._ops = 0

    def check(self, action: str, key: str, *, cost: float = 1.0) -> None:
        """Take ``cost`` tokens for ``key`` doing ``action`` or raise LimitExceeded."""
        limit = self._limits.get(action)
        if not self._enabled or limit is None or limit.per_second <= 0 and limit.burst_count <= 0:
            return
        now = self._now()
        tokens, last = self._buckets.get((action, key), (limit.burst_count, now))
        tokens = min(limit.burst_count, tokens + (now - last) * limit.per_second)
        if tokens < cost:
            if limit.per_second <= 0:
                raise LimitExceeded(60_000)
            wait = (cost - tokens) / limit.per_second
            self._buckets[(action, key)] = (tokens, now)
            raise LimitExceeded(int(wait * 1000) + 1)
        self._buckets[(action, key)] = (tokens - cost, now)
        self._ops += 1
        if self._ops % self._SWEEP_EVERY == 0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for (action, key), (tokens, last) in list(self._buckets.items()):
            limit = self._limits[action]
            if limit.per_second > 0 and tokens + (now - last) * limit.per_second >= limit.burst_count:
                del self._buckets[(action, key)]
