"""Removing async-upload media IDs that were created and never filled (spec:
Client-Server API, ``POST /_matrix/media/v1/create``: "the media ID … will expire"
at ``unused_expires_at``)."""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()


class PendingMediaExpiry(service.Service):
    """Every ``interval`` seconds, asks the repository to drop expired empty IDs.

    Downloads and PUTs treat an expired ID as unknown already; this only keeps the
    table from growing (and frees the user's pending allowance's rows).
    """

    name = "media-expiry"

    def __init__(self, repository: Any, clock: IReactorTime, interval: float = 3600) -> None:
        self._repository = repository
        self._clock = clock
        self._interval = interval
        self._loop: task.LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self._clock
        self._loop.start(self._interval, now=False).addErrback(
            lambda f: log.failure("media expiry loop stopped", f))

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None

    def _tick(self) -> defer.Deferred[None]:
        d = defer.ensureDeferred(self._repository.expire_unused())

        def done(n: int) -> None:
            if n:
                log.info("removed {n} unused media IDs", n=n)
        d.addCallback(done)
        # one failed run (a DB hiccup, or the DB stopping first) must not end the loop
        d.addErrback(lambda f: log.failure("media expiry failed", f))
        return d
