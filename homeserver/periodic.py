"""Housekeeping that runs every so often: one service per job, on the injected clock.

Several tables only grow unless something deletes what is old (the /send dedup
records, remote to-device message IDs, federation outbox entries nobody will get).
Each such job is a :class:`PeriodicJob` in the service tree, so it starts after the
database and stops before it, and so a failed run is logged and retried at the next
interval instead of ending the loop.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.application import service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()


class PeriodicJob(service.Service):
    """Runs ``work()`` every ``interval`` seconds while the service runs (first run one
    interval after start). ``work`` returns how many rows it removed, or None; a
    non-zero count is logged."""

    def __init__(self, name: str, work: Callable[[], Awaitable[Any]], *,
                 clock: IReactorTime, interval: float) -> None:
        self.setName(name)
        self._work = work
        self._clock = clock
        self._interval = interval
        self._loop: task.LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = task.LoopingCall(self.run_once)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=False).addErrback(
            lambda f: log.failure("{job}: loop stopped", f, job=self.name))

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None

    def run_once(self) -> defer.Deferred[None]:
        """One run now; never fails (the next run picks up what this one left)."""
        d = defer.ensureDeferred(self._work())

        def done(count: Any) -> None:
            if count:
                log.info("{job}: removed {count}", job=self.name, count=count)
        d.addCallback(done)
        d.addErrback(lambda f: log.failure("{job} failed", f, job=self.name))
        return d
