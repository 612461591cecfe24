"""Synapse's ``media_retention``: media nobody has fetched for a configured time is
deleted (Synapse docs: config ``media_retention``, ``local_media_lifetime`` and
``remote_media_lifetime``; both off by default).

Remote media is only a cache and is fetched again when next asked for. Local media
goes for good, so it follows the rules of Synapse's retention: quarantined and
protected media and avatars (profiles, the user directory, rooms) are kept. Either
way a blob goes only when no other media ID or thumbnail references it.
"""

from __future__ import annotations

from typing import Callable

from twisted.application import service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from homeserver.periodic import PeriodicJob
from media_repo.admin import MediaAdmin

log = Logger()

#: how often the rules run (Synapse: ``MEDIA_RETENTION_CHECK_PERIOD``, one hour)
CHECK_INTERVAL_S = 3600.0


class MediaRetention(PeriodicJob):
    """Every ``interval`` seconds, deletes remote media not accessed for
    ``remote_lifetime_ms`` and local media not accessed for ``local_lifetime_ms``
    (either None: kept forever)."""

    def __init__(self, admin: MediaAdmin, *, clock: IReactorTime, now_ms: Callable[[], int],
                 local_lifetime_ms: int | None, remote_lifetime_ms: int | None,
                 interval: float = CHECK_INTERVAL_S) -> None:
        super().__init__("media-retention", self._run, clock=clock, interval=interval)
        self._admin = admin
        self._now_ms = now_ms
        self._local_ms = local_lifetime_ms
        self._remote_ms = remote_lifetime_ms

    async def apply(self) -> tuple[int, int]:
        """One run of the rules; returns ``(remote items, local media IDs)`` deleted."""
        now = self._now_ms()
        remote = local = 0
        if self._remote_ms is not None:
            remote = await self._admin.purge_remote_cache(before_ts=now - self._remote_ms)
        if self._local_ms is not None:
            local = len(await self._admin.delete_old_local(
                before_ts=now - self._local_ms, keep_profiles=True))
        return remote, local

    async def _run(self) -> None:
        remote, local = await self.apply()
        if remote or local:
            log.info("media retention removed {remote} remote and {local} local "
                     "media", remote=remote, local=local)

    def startService(self) -> None:
        if self._local_ms is None and self._remote_ms is None:
            service.Service.startService(self)   # nothing to do: no loop
            return
        super().startService()
