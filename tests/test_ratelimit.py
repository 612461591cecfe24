"""Token-bucket rate limiting."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from homeserver.config import RateLimit
from homeserver.errors import LimitExceeded
from homeserver.ratelimit import RateLimiter


class RateLimiterTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.limiter = RateLimiter({"rc_message": RateLimit(1.0, 3)}, self.clock.seconds)

    def test_burst_then_limited(self):
        """The burst is allowed, the next action gets retry_after_ms."""
        for _ in range(3):
            self.limiter.check("rc_message", "@a:b")
        with self.assertRaises(LimitExceeded) as cm:
            self.limiter.check("rc_message", "@a:b")
        self.assertEqual(cm.exception.status, 429)
        self.assertGreater(cm.exception.retry_after_ms, 0)
        self.assertEqual(cm.exception.to_json()["errcode"], "M_LIMIT_EXCEEDED")

    def test_refills(self):
        """Tokens come back at per_second."""
        for _ in range(3):
            self.limiter.check("rc_message", "@a:b")
        self.clock.advance(1.01)
        self.limiter.check("rc_message", "@a:b")

    def test_keys_independent(self):
        """One user's bucket does not limit another."""
        for _ in range(3):
            self.limiter.check("rc_message", "@a:b")
        self.limiter.check("rc_message", "@c:d")

    def test_unknown_action_unlimited(self):
        """An action with no configured limit is not limited."""
        for _ in range(100):
            self.limiter.check("rc_other", "x")
