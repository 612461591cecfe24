"""The media repository's domain (DESIGN.md §6; spec: Client-Server API, "Content
repository").

:class:`MediaRepository` owns media IDs and their bytes: uploads (plain and async:
create, then PUT), lookups that wait for a pending upload, deletion and quarantine.
The servlets (``media_repo.resources``) and, later, admin and federation endpoints
call it; it never touches HTTP.

Bytes live in a :class:`media_repo.cas.BlobStore` by their SHA-256; rows live in
``homeserver.store.media``. The order that keeps them consistent:

- upload: stage the bytes (hash known, not yet visible), then under the blob's lock
  commit them and insert the row that references them (refcount + 1, one transaction);
- delete: drop the row (refcount − 1, same transaction); for each blob left with no
  reference, take its lock, check the count is still 0 (an upload of the same bytes
  may have come in between) and only then delete the bytes.

The lock is per process: a server whose processes share one media store needs it in
the database instead (DESIGN.md §8). A crash between committing bytes and committing
the row leaves an unreferenced blob on disk, never a row without bytes.
"""

from __future__ import annotations

import dataclasses
import io
import secrets
from typing import Any, BinaryIO, Callable, Protocol

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from homeserver.errors import (
    CannotOverwriteMedia, Forbidden, LimitExceeded, NotFound, NotYetUploaded, TooLarge,
)
from homeserver.ids import MxcUri
from homeserver.store.media import CannotOverwrite, LocalMedia, Media, RemoteMedia
from media_repo.cas import BlobMissing, BlobStore, BlobTooLarge, StagedBlob

log = Logger()

#: Synapse's defaults for ``timeout_ms`` of downloads and its ceiling
DEFAULT_TIMEOUT_MS = 20_000
MAX_TIMEOUT_MS = 60_000
#: how long an async-upload media ID stays usable without bytes (Synapse:
#: ``unused_expiration_time``, 24h)
UNUSED_EXPIRATION_MS = 24 * 3600 * 1000
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_MEDIA_ID_BYTES = 18  # 24 URL-safe characters


@dataclasses.dataclass(frozen=True)
class MediaContent:
    """What a download serves, local or remote alike."""

    sha256: str
    size: int
    content_type: str
    upload_name: str | None


class RemoteMediaFetcher(Protocol):
    """How media of another server is found (spec: Server-Server API, "Content
    repository", ``GET /_matrix/federation/v1/media/download``).

    ``media_repo.remote.FederationMediaFetcher`` implements this: it asks the origin
    server, stores the bytes through the repository (``store_derived``) and caches the
    row (``Media.add_remote``). Without it (tests, no federation) :class:`NoRemoteMedia`
    answers every remote request with "not found".
    """

    async def fetch(self, origin: str, media_id: str, *, timeout_ms: int) -> RemoteMedia | None:
        """The cached (or freshly fetched) remote media, or None if the origin does
        not have it."""


class NoRemoteMedia:
    """A :class:`RemoteMediaFetcher` for a server without federation: nothing is
    found, so remote media answers 404 M_NOT_FOUND."""

    async def fetch(self, origin: str, media_id: str, *, timeout_ms: int) -> RemoteMedia | None:
        return None


class MediaRepository:
    def __init__(self, *, store: Media, blobs: BlobStore, server_name: str,
                 clock: IReactorTime, now_ms: Callable[[], int], max_upload_size: int,
                 enable_authenticated_media: bool = True, max_pending_uploads: int = 5,
                 unused_expiration_ms: int = UNUSED_EXPIRATION_MS,
                 remote: RemoteMediaFetcher | None = None) -> None:
        self._store = store
        self.blobs = blobs
        self.server_name = server_name
        self._clock = clock
        self._now_ms = now_ms
        self.max_upload_size = max_upload_size
        self._authenticated = enable_authenticated_media
        self._max_pending = max_pending_uploads
        self._unused_ms = unused_expiration_ms
        #: set after construction by the composition root when the fetcher stores
        #: through this repository (media_repo.remote)
        self.remote: RemoteMediaFetcher = remote or NoRemoteMedia()
        self._locks = _KeyedLocks()
        # downloads waiting for an async upload, woken when its bytes arrive
        self._waiters: dict[str, list[defer.Deferred[None]]] = {}
        #: called with (sha256, content_type, media_id) after an upload commits
        self.upload_observers: list[Callable[[str, str, str], Any]] = []
        #: called with (server_name, media_id) whenever media is served (resolved):
        #: media_repo.access keeps last_access_ts from it for retention
        self.access_observers: list[Callable[[str, str], Any]] = []

    # -- uploading -------------------------------------------------------------------
    async def upload_from_file(self, user_id: str, source: BinaryIO, *,
                               content_type: str | None, upload_name: str | None) -> MxcUri:
        """Store ``source`` (read to its end, off the reactor thread) under a new
        media ID owned by ``user_id`` (``POST /_matrix/media/v3/upload``).
        Raises TooLarge (413) past ``max_upload_size``."""
        media_id = new_media_id()
        staged = await self._stage(source)
        now = self._now_ms()
        content_type = content_type or DEFAULT_CONTENT_TYPE
        async with self._locks.lock(staged.sha256):
            await self.blobs.commit(staged)
            await self._store.add_uploaded(LocalMedia(
                media_id=media_id, user_id=user_id, content_type=content_type,
                upload_name=upload_name, size=staged.size, sha256=staged.sha256,
                created_ts=now, last_access_ts=now, quarantined_by=None,
                unused_expires_ts=None, authenticated=self._authenticated))
        self._uploaded(media_id, staged.sha256, content_type)
        return MxcUri(self.server_name, media_id)

    async def create_pending(self, user_id: str) -> tuple[MxcUri, int]:
        """A media ID to upload to later (``POST /_matrix/media/v1/create``); returns
        it and when it expires unused. Raises LimitExceeded (429) when the user holds
        ``max_pending_uploads`` unexpired empty IDs already."""
        now = self._now_ms()
        pending, first_expiry = await self._store.pending_count(user_id, now)
        if pending >= self._max_pending:
            raise LimitExceeded(max(0, (first_expiry or now) - now),
                                "Too many pending media uploads")
        media_id = new_media_id()
        expires = now + self._unused_ms
        await self._store.create_pending(media_id, user_id, now, expires, self._authenticated)
        return MxcUri(self.server_name, media_id), expires

    async def complete_pending(self, user_id: str, media_id: str, source: BinaryIO, *,
                               content_type: str | None, upload_name: str | None) -> None:
        """Give a created media ID its bytes (``PUT /_matrix/media/v3/upload/…``).

        404 for an unknown or expired ID, 403 unless ``user_id`` created it, 409
        M_CANNOT_OVERWRITE_MEDIA once it has bytes, 413 past ``max_upload_size``.
        """
        media = await self._store.get_local(media_id)
        self._check_can_fill(media, user_id)
        staged = await self._stage(source)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        async with self._locks.lock(staged.sha256):
            await self.blobs.commit(staged)
            try:
                await self._store.fill_pending(media_id, content_type, upload_name,
                                               staged.sha256, staged.size)
            except CannotOverwrite:
                # a concurrent PUT won; our committed bytes may be referenced by no one
                await self._free_unreferenced_locked(staged.sha256)
                raise CannotOverwriteMedia("Media ID already has content") from None
        self._uploaded(media_id, staged.sha256, content_type)

    def _check_can_fill(self, media: LocalMedia | None, user_id: str) -> None:
        if media is None or media.quarantined_by is not None:
            raise NotFound("Unknown media ID")
        if media.user_id != user_id:
            raise Forbidden("Only the creator of the media ID can upload to it")
        if media.uploaded:
            raise CannotOverwriteMedia("Media ID already has content")
        if media.unused_expires_ts is not None and media.unused_expires_ts <= self._now_ms():
            raise NotFound("Media ID has expired")

    async def _stage(self, source: BinaryIO) -> StagedBlob:
        try:
            return await self.blobs.stage(source, max_size=self.max_upload_size)
        except BlobTooLarge:
            raise TooLarge("Upload request body is too large") from None

    def _uploaded(self, media_id: str, sha256: str, content_type: str) -> None:
        for waiter in self._waiters.pop(media_id, []):
            waiter.callback(None)
        for observer in self.upload_observers:
            try:
                observer(sha256, content_type, media_id)
            except Exception:
                log.failure("media upload observer failed")

    # -- reading -----------------------------------------------------------------------
    async def get_local(self, media_id: str) -> LocalMedia | None:
        """A local media ID's row (metadata and ``sha256``), whatever its state."""
        return await self._store.get_local(media_id)

    async def resolve(self, server_name: str, media_id: str, *, timeout_ms: int,
                      allow_authenticated: bool) -> MediaContent:
        """What ``mxc://server_name/media_id`` serves. Raises NotFound (404) for
        unknown, quarantined, expired or (with ``allow_authenticated`` False, the
        legacy endpoints) authenticated media; NotYetUploaded (504) when a local
        async upload stays empty for ``timeout_ms``."""
        if server_name == self.server_name:
            media = await self.wait_for_local(media_id, timeout_ms)
            authenticated = media.authenticated
            content = MediaContent(media.sha256 or "", media.size or 0,
                                   media.content_type or DEFAULT_CONTENT_TYPE,
                                   media.upload_name)
        else:
            remote = await self.remote.fetch(server_name, media_id, timeout_ms=timeout_ms)
            if remote is None or remote.quarantined_by is not None:
                raise NotFound("Not found")
            authenticated = remote.authenticated
            content = MediaContent(remote.sha256, remote.size,
                                   remote.content_type or DEFAULT_CONTENT_TYPE,
                                   remote.upload_name)
        # Synapse's rule for the unauthenticated endpoints: only media stored while
        # enable_authenticated_media was off, unless it is off now
        if self._authenticated and authenticated and not allow_authenticated:
            raise NotFound("Not found")
        self._accessed(server_name, media_id)
        return content

    def _accessed(self, server_name: str, media_id: str) -> None:
        for observer in self.access_observers:
            try:
                observer(server_name, media_id)
            except Exception:
                log.failure("media access observer failed")

    async def wait_for_local(self, media_id: str, timeout_ms: int) -> LocalMedia:
        """The row of an uploaded local media ID, waiting up to ``timeout_ms`` for
        the bytes of an async upload (spec: ``timeout_ms`` of ``/download``)."""
        deadline = self._now_ms() + max(0, timeout_ms)
        while True:
            media = await self._store.get_local(media_id)
            if media is None or media.quarantined_by is not None:
                raise NotFound("Not found")
            if media.uploaded:
                return media
            now = self._now_ms()
            if media.unused_expires_ts is not None and media.unused_expires_ts <= now:
                raise NotFound("Not found")
            if now >= deadline:
                raise NotYetUploaded("Media has not been uploaded yet")
            waiter: defer.Deferred[None] = defer.Deferred()
            self._waiters.setdefault(media_id, []).append(waiter)
            waiter.addTimeout((deadline - now) / 1000, self._clock,
                              onTimeoutCancel=lambda result, timeout: None)
            try:
                await waiter
            finally:
                waiting = self._waiters.get(media_id, [])
                if waiter in waiting:
                    waiting.remove(waiter)
                if not waiting:
                    self._waiters.pop(media_id, None)

    async def open_blob(self, sha256: str) -> BinaryIO:
        """The bytes of a blob, as a file object the caller closes; NotFound if the
        bytes are gone (deleted after the row was read)."""
        try:
            return await self.blobs.open(sha256)
        except BlobMissing:
            raise NotFound("Not found") from None

    # -- administration --------------------------------------------------------------
    async def delete_media(self, media_id: str) -> bool:
        """Delete a local media ID; its bytes (and thumbnails) go only once nothing
        references them. False if the ID was unknown."""
        if await self._store.get_local(media_id) is None:
            return False
        for sha256 in await self._store.delete_local(media_id):
            async with self._locks.lock(sha256):
                await self._free_unreferenced_locked(sha256)
        return True

    async def delete_remote_media(self, origin: str, media_id: str) -> bool:
        """Drop a cached remote item; its bytes go only once nothing references
        them. False if it was not cached."""
        if await self._store.get_remote(origin, media_id) is None:
            return False
        for sha256 in await self._store.delete_remote(origin, media_id):
            async with self._locks.lock(sha256):
                await self._free_unreferenced_locked(sha256)
        return True

    async def quarantine(self, media_id: str, by: str | None) -> bool:
        """Quarantine a local media ID (``by``: the admin's user ID), or lift it with
        None. Quarantined media answers 404 as if unknown. False if unknown."""
        return await self._store.quarantine_local(media_id, by)

    async def list_by_user(self, user_id: str, *, limit: int = 100,
                           before_ts: int | None = None) -> list[LocalMedia]:
        """A user's media IDs, newest first."""
        return await self._store.list_by_user(user_id, limit=limit, before_ts=before_ts)

    async def usage_by_user(self, user_id: str) -> tuple[int, int]:
        """``(media count, bytes)`` uploaded by ``user_id``."""
        return await self._store.usage_by_user(user_id)

    async def expire_unused(self) -> int:
        """Drop async-upload media IDs that stayed empty past their expiry; returns
        how many (``media_repo.expiry`` calls this periodically)."""
        return len(await self._store.expire_pending(self._now_ms()))

    async def sweep_orphans(self, min_age_s: float = 3600.0) -> int:
        """Delete blobs no row references that are older than ``min_age_s``; returns
        how many went. A process killed after a blob was renamed into place but
        before its row committed leaves such a file (never visible: no media ID
        names it). The age keeps the sweep off blobs of uploads in progress, whose
        row commits moments after the rename; each deletion re-checks under the
        blob's lock."""
        candidates = await self.blobs.stored_before(
            self._clock.seconds() - min_age_s)
        removed = 0
        for start in range(0, len(candidates), 500):
            batch = candidates[start:start + 500]
            for sha256 in set(batch) - await self._store.referenced(batch):
                async with self._locks.lock(sha256):
                    if await self._store.blob_refcount(sha256) == 0:
                        await self.blobs.delete(sha256)
                        removed += 1
        return removed

    async def _free_unreferenced_locked(self, sha256: str) -> None:
        # caller holds the blob's lock, so no upload can count a reference meanwhile
        if await self._store.blob_refcount(sha256) == 0:
            await self.blobs.delete(sha256)

    # -- for thumbnails ------------------------------------------------------------------
    async def store_derived(self, source: BinaryIO,
                            record: Callable[[StagedBlob], Any]) -> StagedBlob:
        """Stage bytes derived from a blob (a thumbnail) and commit them together
        with the row ``record(staged)`` inserts; frees them if the row was not
        added (``record`` returned False)."""
        staged = await self.blobs.stage(source)
        async with self._locks.lock(staged.sha256):
            await self.blobs.commit(staged)
            if not await record(staged):
                await self._free_unreferenced_locked(staged.sha256)
        return staged


def new_media_id() -> str:
    """24 random URL-safe characters: per upload, never derived from the bytes, so
    knowing a file's hash never lets anyone fetch it."""
    return secrets.token_urlsafe(_MEDIA_ID_BYTES)


class BytesSink:
    """Stores a small payload already in memory (a URL preview's image, capped by
    ``max_spider_size``) as new local media: the ``MediaSink`` of url_preview.py."""

    def __init__(self, repository: MediaRepository) -> None:
        self._repository = repository

    async def store(self, data: bytes, content_type: str, filename: str | None,
                    user_id: str) -> str:
        mxc = await self._repository.upload_from_file(
            user_id, io.BytesIO(data), content_type=content_type, upload_name=filename)
        return str(mxc)


class _KeyedLocks:
    """One DeferredLock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, defer.DeferredLock] = {}

    def lock(self, key: str) -> "_Held":
        return _Held(self, key)


class _Held:
    def __init__(self, owner: _KeyedLocks, key: str) -> None:
        self._owner, self._key = owner, key

    async def __aenter__(self) -> None:
        lock = self._owner._locks.setdefault(self._key, defer.DeferredLock())
        await lock.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        lock = self._owner._locks[self._key]
        lock.release()
        if not lock.locked and not lock.waiting:
            del self._owner._locks[self._key]
