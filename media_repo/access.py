"""When media was last served: ``last_access_ts``, which the admin API shows and by
which ``media_retention`` and the admin purges decide what is old (Synapse keeps
the same column, updated in batches the same way).

Writing a row per download would put a database write on every image a client
shows; instead downloads are noted in memory and written together every
``interval`` seconds, and on shutdown. A crash loses at most one interval of
access times, which only makes media look up to that much older.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime

from homeserver.periodic import PeriodicJob
from homeserver.store.media_admin import MediaAdminStore


class AccessTimes(PeriodicJob):
    """Collects ``(server_name, media_id)`` accesses (a ``MediaRepository`` access
    observer) and writes them every ``interval`` seconds."""

    def __init__(self, store: MediaAdminStore, *, server_name: str, clock: IReactorTime,
                 now_ms: Callable[[], int], interval: float = 10.0) -> None:
        super().__init__("media-access-times", self.flush, clock=clock, interval=interval)
        self._store = store
        self._server_name = server_name
        self._now_ms = now_ms
        self._local: dict[str, int] = {}
        self._remote: dict[tuple[str, str], int] = {}

    def record(self, server_name: str, media_id: str) -> None:
        """Note that the media was served now."""
        now = self._now_ms()
        if server_name == self._server_name:
            self._local[media_id] = now
        else:
            self._remote[(server_name, media_id)] = now

    async def flush(self) -> None:
        """Write what was noted since the last flush."""
        local, remote = self._local, self._remote
        self._local, self._remote = {}, {}
        await self._store.record_access(local, remote)

    def stopService(self) -> Any:
        super().stopService()
        # the last interval's accesses, before the database (started earlier) stops
        return self.run_once()
