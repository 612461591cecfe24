"""The periodic job removing unused async-upload media IDs (media_repo.expiry)."""

from __future__ import annotations

from twisted.internet import task
from twisted.trial import unittest

from media_repo.expiry import PendingMediaExpiry


class FakeRepository:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False

    async def expire_unused(self) -> int:
        self.calls += 1
        if self.fail:
            raise RuntimeError("database gone")
        return 2


class ExpiryTests(unittest.TestCase):
    def test_runs_every_interval(self) -> None:
        """The job runs once per interval on the injected clock, not at start, keeps
        running after a failed run, and stops with the service."""
        clock, repo = task.Clock(), FakeRepository()
        job = PendingMediaExpiry(repo, clock, interval=60)
        job.startService()
        self.assertEqual(repo.calls, 0)
        clock.advance(60)
        self.assertEqual(repo.calls, 1)
        repo.fail = True
        clock.advance(60)
        self.assertEqual(repo.calls, 2)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        repo.fail = False
        clock.advance(60)
        self.assertEqual(repo.calls, 3)
        job.stopService()
        clock.advance(600)
        self.assertEqual(repo.calls, 3)
