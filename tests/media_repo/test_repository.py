"""MediaRepository over a real (SQLite) store and a LocalBlobStore on a temp dir."""

from __future__ import annotations

import io
import os
import tempfile

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from homeserver.errors import (
    CannotOverwriteMedia, Forbidden, LimitExceeded, NotFound, NotYetUploaded, TooLarge,
)
from media_repo.cas import LocalBlobStore
from media_repo.repository import MediaRepository
from tests.store.backends import SQLiteBackend, StoreTests

ALICE, BOB = "@alice:test.local", "@bob:test.local"


class RepositoryTests(StoreTests, unittest.TestCase):
    backend_class = SQLiteBackend
    _shared = None

    def setUp(self) -> None:
        super().setUp()
        self.root = tempfile.mkdtemp(prefix="media-repo-test-")
        self.blobs = LocalBlobStore(self.root)
        self.blobs.prepare()
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.repo = self.make_repo()

    def make_repo(self, **kw) -> MediaRepository:
        args = dict(store=self.store.media, blobs=self.blobs, server_name="test.local",
                    clock=self.clock, now_ms=lambda: int(self.clock.seconds() * 1000),
                    max_upload_size=1000, max_pending_uploads=2)
        args.update(kw)
        return MediaRepository(**args)

    def blob_count(self) -> int:
        return sum(len(n) for _, _, n in os.walk(os.path.join(self.root, "blobs")))

    async def upload(self, data: bytes, user: str = ALICE) -> str:
        mxc = await self.repo.upload_from_file(user, io.BytesIO(data),
                                               content_type="text/plain", upload_name=None)
        return mxc.media_id

    async def read(self, media_id: str) -> bytes:
        content = await self.repo.resolve("test.local", media_id, timeout_ms=0,
                                          allow_authenticated=True)
        f = await self.repo.open_blob(content.sha256)
        with f:
            return f.read()

    async def test_sweep_orphans(self) -> None:
        """A blob no row references (a kill between the rename and the row's commit)
        is deleted once older than the sweep's minimum age; referenced blobs and
        fresh orphans (an upload in progress) stay."""
        import hashlib
        import time

        kept = await self.upload(b"kept")
        old_orphan, _ = await self.blobs.write(io.BytesIO(b"orphan from a crash"))
        fresh_orphan, _ = await self.blobs.write(io.BytesIO(b"upload in progress"))
        hour_ago = time.time() - 7200
        for sha in (old_orphan, hashlib.sha256(b"kept").hexdigest()):
            os.utime(self.blobs.path_for(sha), (hour_ago, hour_ago))
        clock = task.Clock()
        clock.advance(time.time())
        repo = self.make_repo(clock=clock)
        self.assertEqual(await repo.sweep_orphans(min_age_s=3600), 1)
        self.assertFalse(await self.blobs.exists(old_orphan))
        self.assertTrue(await self.blobs.exists(fresh_orphan))
        self.assertEqual(await self.read(kept), b"kept")

    async def test_delete_keeps_shared_bytes(self) -> None:
        """Deleting one of two media IDs with the same bytes keeps the other readable;
        the blob goes with the last one."""
        one, two = await self.upload(b"shared"), await self.upload(b"shared")
        self.assertEqual(self.blob_count(), 1)
        self.assertTrue(await self.repo.delete_media(one))
        self.assertFalse(await self.repo.delete_media(one))
        with self.assertRaises(NotFound):
            await self.read(one)
        self.assertEqual(await self.read(two), b"shared")
        self.assertTrue(await self.repo.delete_media(two))
        self.assertEqual(self.blob_count(), 0)

    async def test_too_large(self) -> None:
        """Past max_upload_size: TooLarge, and no blob, row or temp file remains."""
        with self.assertRaises(TooLarge):
            await self.upload(b"x" * 1001)
        self.assertEqual(self.blob_count(), 0)
        self.assertEqual(await self.repo.usage_by_user(ALICE), (0, 0))

    async def test_async_upload_rules(self) -> None:
        """Only the creator fills a pending ID, once; past the pending limit, 429."""
        mxc, expires = await self.repo.create_pending(ALICE)
        self.assertEqual(expires, int(self.clock.seconds() * 1000) + 24 * 3600 * 1000)
        await self.repo.create_pending(ALICE)
        with self.assertRaises(LimitExceeded):
            await self.repo.create_pending(ALICE)
        await self.repo.create_pending(BOB)  # per user
        with self.assertRaises(Forbidden):
            await self.repo.complete_pending(BOB, mxc.media_id, io.BytesIO(b"x"),
                                             content_type=None, upload_name=None)
        await self.repo.complete_pending(ALICE, mxc.media_id, io.BytesIO(b"x"),
                                         content_type=None, upload_name=None)
        with self.assertRaises(CannotOverwriteMedia):
            await self.repo.complete_pending(ALICE, mxc.media_id, io.BytesIO(b"y"),
                                             content_type=None, upload_name=None)
        with self.assertRaises(NotFound):
            await self.repo.complete_pending(ALICE, "unknown", io.BytesIO(b"y"),
                                             content_type=None, upload_name=None)
        self.assertEqual(await self.read(mxc.media_id), b"x")
        self.assertEqual(self.blob_count(), 1)  # the refused "y" left nothing

    async def test_expired_pending_cannot_be_filled(self) -> None:
        """A created ID left empty past its expiry is gone for uploads too."""
        mxc, _ = await self.repo.create_pending(ALICE)
        self.clock.advance(24 * 3600 + 1)
        with self.assertRaises(NotFound):
            await self.repo.complete_pending(ALICE, mxc.media_id, io.BytesIO(b"late"),
                                             content_type=None, upload_name=None)
        self.assertEqual(self.blob_count(), 0)
        await self.repo.create_pending(ALICE)  # no longer counts against the limit
        await self.repo.create_pending(ALICE)

    async def test_list_and_usage(self) -> None:
        """Listing and usage per user, for the admin API."""
        a = await self.upload(b"12345")
        self.clock.advance(1)
        b = await self.upload(b"123")
        await self.upload(b"x", user=BOB)
        self.assertEqual([m.media_id for m in await self.repo.list_by_user(ALICE)], [b, a])
        self.assertEqual(await self.repo.usage_by_user(ALICE), (2, 8))

    async def test_wait_then_timeout(self) -> None:
        """A download of an empty ID waits timeout_ms (on the injected clock), then
        NotYetUploaded; after expiry the ID is unknown and the expiry job drops it."""
        mxc, _ = await self.repo.create_pending(ALICE)
        d = defer.ensureDeferred(self.repo.wait_for_local(mxc.media_id, 5000))
        for _ in range(100):  # the real reactor runs the DB thread's answer
            if self.repo._waiters:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(d.called)
        self.clock.advance(5)
        with self.assertRaises(NotYetUploaded):
            await d
        self.clock.advance(24 * 3600)
        with self.assertRaises(NotFound):
            await self.repo.wait_for_local(mxc.media_id, 5000)
        self.assertEqual(await self.repo.expire_unused(), 1)
        self.assertIsNone(await self.repo.get_local(mxc.media_id))

    async def test_legacy_rule(self) -> None:
        """Media stored with authenticated media on is hidden from the legacy
        endpoints; turning the setting off shows it again (Synapse's semantics)."""
        media_id = await self.upload(b"a")
        with self.assertRaises(NotFound):
            await self.repo.resolve("test.local", media_id, timeout_ms=0,
                                    allow_authenticated=False)
        relaxed = self.make_repo(enable_authenticated_media=False)
        await relaxed.resolve("test.local", media_id, timeout_ms=0, allow_authenticated=False)
        old_id = (await relaxed.upload_from_file(ALICE, io.BytesIO(b"b"), content_type=None,
                                                 upload_name=None)).media_id
        await self.repo.resolve("test.local", old_id, timeout_ms=0, allow_authenticated=False)

    async def test_remote_is_not_found(self) -> None:
        """Without a federation fetcher, remote media is not found."""
        with self.assertRaises(NotFound):
            await self.repo.resolve("other.example", "abc", timeout_ms=0,
                                    allow_authenticated=True)
