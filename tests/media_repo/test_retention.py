"""``media_retention`` (media_repo.retention) and the access times it goes by
(media_repo.access), over a real SQLite store and blob store, with task.Clock time."""

from __future__ import annotations

import io
import tempfile

from twisted.internet import task
from twisted.trial import unittest

from homeserver.errors import NotFound
from homeserver.store.media import RemoteMedia
from homeserver.store.media_admin import MediaAdminStore
from media_repo.access import AccessTimes
from media_repo.admin import MediaAdmin
from media_repo.cas import LocalBlobStore
from media_repo.repository import MediaRepository
from media_repo.retention import MediaRetention
from tests.store.backends import SQLiteBackend, StoreTests

ALICE = "@alice:test.local"
DAY_MS = 86_400_000


class RetentionTests(StoreTests, unittest.TestCase):
    backend_class = SQLiteBackend
    _shared = None

    def setUp(self) -> None:
        super().setUp()
        self.blobs = LocalBlobStore(tempfile.mkdtemp(prefix="media-retention-test-"))
        self.blobs.prepare()
        self.clock = task.Clock()
        self.clock.advance(100 * 86_400)
        now_ms = lambda: int(self.clock.seconds() * 1000)  # noqa: E731
        self.repo = MediaRepository(store=self.store.media, blobs=self.blobs,
                                    server_name="test.local", clock=self.clock,
                                    now_ms=now_ms, max_upload_size=10_000)
        self.admin_store = MediaAdminStore(self.store.db)
        self.access = AccessTimes(self.admin_store, server_name="test.local",
                                  clock=self.clock, now_ms=now_ms)
        self.repo.access_observers.append(self.access.record)
        self.admin = MediaAdmin(repository=self.repo, media=self.store.media,
                                store=self.admin_store, accounts=self.store.accounts,
                                server_name="test.local", access=self.access)
        self.now_ms = now_ms

    def retention(self, local_days: int | None, remote_days: int | None) -> MediaRetention:
        return MediaRetention(
            self.admin, clock=self.clock, now_ms=self.now_ms,
            local_lifetime_ms=None if local_days is None else local_days * DAY_MS,
            remote_lifetime_ms=None if remote_days is None else remote_days * DAY_MS)

    async def upload(self, data: bytes) -> str:
        mxc = await self.repo.upload_from_file(ALICE, io.BytesIO(data),
                                               content_type="text/plain", upload_name=None)
        return mxc.media_id

    async def cache_remote(self, origin: str, media_id: str, data: bytes) -> str:
        staged = await self.blobs.stage(io.BytesIO(data))
        await self.blobs.commit(staged)
        now = self.now_ms()
        await self.store.media.add_remote(RemoteMedia(
            origin=origin, media_id=media_id, sha256=staged.sha256, content_type=None,
            upload_name=None, size=staged.size, created_ts=now, last_access_ts=now,
            quarantined_by=None, authenticated=True))
        return staged.sha256

    async def read(self, media_id: str) -> bytes:
        content = await self.repo.resolve("test.local", media_id, timeout_ms=0,
                                          allow_authenticated=True)
        with await self.repo.open_blob(content.sha256) as f:
            return f.read()

    def days(self, n: float) -> None:
        self.clock.advance(n * 86_400)

    async def test_remote_cache_not_accessed_is_purged(self) -> None:
        """Remote items not accessed for remote_media_lifetime go with their bytes;
        a recently accessed one, a quarantined one and a blob local media shares
        stay."""
        old_sha = await self.cache_remote("other.example", "old", b"old remote")
        await self.cache_remote("other.example", "fresh", b"fresh remote")
        await self.cache_remote("other.example", "bad", b"quarantined remote")
        shared_local = await self.upload(b"same bytes")
        await self.cache_remote("other.example", "shared", b"same bytes")
        await self.admin.set_quarantine("other.example", "bad", "@admin:test.local")
        self.days(10)
        self.access.record("other.example", "fresh")  # served from the cache now
        self.days(5)
        self.assertEqual(await self.retention(None, 14).apply(), (2, 0))
        media = self.store.media
        self.assertIsNone(await media.get_remote("other.example", "old"))
        self.assertIsNone(await media.get_remote("other.example", "shared"))
        self.assertIsNotNone(await media.get_remote("other.example", "fresh"))
        self.assertIsNotNone(await media.get_remote("other.example", "bad"))
        self.assertFalse(await self.blobs.exists(old_sha))
        self.assertEqual(await self.read(shared_local), b"same bytes")

    async def test_local_media_not_accessed_is_deleted(self) -> None:
        """Local media not accessed for local_media_lifetime is deleted, except
        recently downloaded, quarantined, protected and avatar media; an identical
        upload that is kept still downloads."""
        old = await self.upload(b"identical")
        quarantined = await self.upload(b"q")
        protected = await self.upload(b"p")
        avatar = await self.upload(b"avatar")
        read_later = await self.upload(b"identical")
        await self.admin.set_quarantine("test.local", quarantined, "@admin:test.local")
        await self.admin.set_protected(protected, True)
        await self.store.accounts.create_user(ALICE)
        await self.store.accounts.set_avatar_url(ALICE, f"mxc://test.local/{avatar}")
        self.days(20)
        self.assertEqual(await self.read(read_later), b"identical")
        self.days(15)
        self.assertEqual(await self.retention(30, None).apply(), (0, 1))
        with self.assertRaises(NotFound):
            await self.read(old)
        self.assertEqual(await self.read(read_later), b"identical")
        for kept in (quarantined, protected, avatar):
            self.assertIsNotNone(await self.store.media.get_local(kept))

    async def test_off_by_default(self) -> None:
        """With neither lifetime set nothing is deleted and no loop runs."""
        await self.upload(b"kept")
        await self.cache_remote("other.example", "kept", b"remote kept")
        self.days(3650)
        job = self.retention(None, None)
        self.assertEqual(await job.apply(), (0, 0))
        job.startService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        job.stopService()

    async def test_access_times_written_in_batches(self) -> None:
        """Downloads move last_access_ts forward only when the batch is written (a
        flush, or the service stopping), and never backwards."""
        media_id = await self.upload(b"x")
        created = self.now_ms()
        self.days(1)
        await self.read(media_id)
        self.assertEqual((await self.store.media.get_local(media_id)).last_access_ts, created)
        read_at = self.now_ms()
        await self.access.flush()
        self.assertEqual((await self.store.media.get_local(media_id)).last_access_ts, read_at)
        await self.admin_store.record_access({media_id: created}, {})
        self.assertEqual((await self.store.media.get_local(media_id)).last_access_ts, read_at)
        self.access.startService()
        self.days(1)
        await self.read(media_id)
        await self.access.stopService()
        self.assertEqual((await self.store.media.get_local(media_id)).last_access_ts,
                         self.now_ms())


    async def test_access_times_written_every_interval(self) -> None:
        """While the service runs, a download's time is written one interval later,
        without a flush."""
        media_id = await self.upload(b"x")
        self.access.startService()
        self.addCleanup(self.access.stopService)
        self.days(1)
        await self.read(media_id)
        read_at = self.now_ms()
        self.clock.advance(9)
        self.assertLess((await self.store.media.get_local(media_id)).last_access_ts, read_at)
        self.clock.advance(1)
        self.assertEqual((await self.store.media.get_local(media_id)).last_access_ts, read_at)

class FakeAdmin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.fail = False

    async def purge_remote_cache(self, *, before_ts: int) -> int:
        self.calls.append(("remote", before_ts))
        if self.fail:
            raise RuntimeError("database gone")
        return 1

    async def delete_old_local(self, *, before_ts: int, keep_profiles: bool) -> list[str]:
        self.calls.append(("local", before_ts))
        return ["a"]


class RetentionLoopTests(unittest.TestCase):
    def test_runs_every_hour_with_thresholds(self) -> None:
        """The rules run once an hour on the injected clock (not at start), with
        before_ts = now - lifetime, keep running after a failure and stop with the
        service."""
        clock, admin = task.Clock(), FakeAdmin()
        clock.advance(1_000_000)
        job = MediaRetention(admin, clock=clock, now_ms=lambda: int(clock.seconds() * 1000),
                             local_lifetime_ms=7 * DAY_MS, remote_lifetime_ms=DAY_MS)
        job.startService()
        self.assertEqual(admin.calls, [])
        clock.advance(3600)
        now = int(clock.seconds() * 1000)
        self.assertEqual(admin.calls, [("remote", now - DAY_MS), ("local", now - 7 * DAY_MS)])
        admin.fail = True
        clock.advance(3600)
        self.assertEqual(len(admin.calls), 3)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        admin.fail = False
        clock.advance(3600)
        self.assertEqual(len(admin.calls), 5)
        job.stopService()
        clock.advance(36000)
        self.assertEqual(len(admin.calls), 5)
