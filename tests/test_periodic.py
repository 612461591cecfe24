"""PeriodicJob: runs its work every interval on the injected clock, survives a failed
run, and stops with the service."""

from twisted.internet import task
from twisted.trial import unittest

from homeserver.periodic import PeriodicJob


class PeriodicJobTest(unittest.TestCase):
    def test_runs_every_interval_until_stopped(self):
        """The first run is one interval after start, then every interval; none after
        stopService."""
        clock, runs = task.Clock(), []

        async def work():
            runs.append(clock.seconds())
            return 0

        job = PeriodicJob("job", work, clock=clock, interval=10)
        job.startService()
        clock.advance(9)
        self.assertEqual(runs, [])
        clock.advance(1)
        clock.advance(10)
        self.assertEqual(runs, [10, 20])
        job.stopService()
        clock.advance(100)
        self.assertEqual(runs, [10, 20])

    def test_a_failed_run_does_not_end_the_loop(self):
        """A run that raises is logged; the next interval runs again."""
        clock, runs = task.Clock(), []

        async def work():
            runs.append(clock.seconds())
            if len(runs) == 1:
                raise RuntimeError("db hiccup")
            return 3

        job = PeriodicJob("job", work, clock=clock, interval=5)
        job.startService()
        clock.advance(5)
        clock.advance(5)
        self.assertEqual(runs, [5, 10])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        job.stopService()
