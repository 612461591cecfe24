"""The media tables (homeserver.store.media): reference counts move with the rows
that point at blobs, in the same transaction."""

from __future__ import annotations

from homeserver.store.media import CannotOverwrite, LocalMedia, RemoteMedia, Thumbnail
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"
SHA_A, SHA_B, SHA_T = "a" * 64, "b" * 64, "c" * 64


def media(media_id: str, sha256: str, user_id: str = ALICE, size: int = 10,
          ts: int = 1000) -> LocalMedia:
    return LocalMedia(media_id=media_id, user_id=user_id, content_type="text/plain",
                      upload_name=None, size=size, sha256=sha256, created_ts=ts,
                      last_access_ts=ts, quarantined_by=None, unused_expires_ts=None,
                      authenticated=True)


def thumb(source: str, thumb_sha: str, width: int = 32) -> Thumbnail:
    return Thumbnail(source_sha256=source, width=width, height=width, method="crop",
                     content_type="image/png", animated=False, thumbnail_sha256=thumb_sha,
                     size=5, thumbnail_width=width, thumbnail_height=width)


class MediaStoreTests(StoreTests):
    async def test_shared_blob_refcount(self) -> None:
        """Two media IDs on one blob count 2; deleting one frees nothing, deleting
        the last frees the blob."""
        m = self.store.media
        await m.add_uploaded(media("one", SHA_A))
        await m.add_uploaded(media("two", SHA_A))
        self.assertEqual(await m.blob_refcount(SHA_A), 2)
        self.assertEqual(await m.delete_local("one"), [])
        self.assertIsNone(await m.get_local("one"))
        self.assertEqual((await m.get_local("two")).sha256, SHA_A)
        self.assertEqual(await m.delete_local("two"), [SHA_A])
        self.assertEqual(await m.blob_refcount(SHA_A), 0)
        self.assertEqual(await m.delete_local("two"), [])

    async def test_thumbnails_go_with_their_source(self) -> None:
        """Thumbnails count a reference to their own blob and are dropped (freeing
        that blob) when the source blob loses its last reference."""
        m = self.store.media
        await m.add_uploaded(media("one", SHA_A))
        await m.add_uploaded(media("other", SHA_B))
        self.assertTrue(await m.add_thumbnail(thumb(SHA_A, SHA_T, 32)))
        self.assertFalse(await m.add_thumbnail(thumb(SHA_A, SHA_T, 32)))  # same key
        self.assertTrue(await m.add_thumbnail(thumb(SHA_A, SHA_T, 96)))
        self.assertTrue(await m.add_thumbnail(thumb(SHA_B, SHA_T, 32)))
        self.assertEqual(await m.blob_refcount(SHA_T), 3)
        self.assertEqual(len(await m.thumbnails_of(SHA_A)), 2)
        self.assertEqual(await m.delete_local("one"), [SHA_A])
        self.assertEqual(await m.thumbnails_of(SHA_A), [])
        self.assertEqual(await m.blob_refcount(SHA_T), 1)
        self.assertEqual(sorted(await m.delete_local("other")), [SHA_B, SHA_T])

    async def test_thumbnail_needs_live_source(self) -> None:
        """A thumbnail of a blob nobody references (or of itself) is not recorded."""
        m = self.store.media
        self.assertFalse(await m.add_thumbnail(thumb(SHA_A, SHA_T)))
        await m.add_uploaded(media("one", SHA_A))
        self.assertFalse(await m.add_thumbnail(thumb(SHA_A, SHA_A)))
        self.assertEqual(await m.blob_refcount(SHA_T), 0)

    async def test_pending_fill_and_overwrite(self) -> None:
        """A pending ID takes its bytes once; a second fill raises CannotOverwrite and
        leaves the count alone."""
        m = self.store.media
        await m.create_pending("p", ALICE, 1000, 5000, True)
        self.assertEqual(await m.pending_count(ALICE, 2000), (1, 5000))
        self.assertEqual(await m.pending_count(ALICE, 6000), (0, None))
        self.assertFalse((await m.get_local("p")).uploaded)
        await m.fill_pending("p", "image/png", "x.png", SHA_A, 10)
        got = await m.get_local("p")
        self.assertEqual((got.sha256, got.size, got.unused_expires_ts), (SHA_A, 10, None))
        with self.assertRaises(CannotOverwrite):
            await m.fill_pending("p", "image/png", "x.png", SHA_B, 10)
        self.assertEqual((await m.blob_refcount(SHA_A), await m.blob_refcount(SHA_B)), (1, 0))
        self.assertEqual(await m.pending_count(ALICE, 2000), (0, None))

    async def test_expire_pending(self) -> None:
        """Only empty IDs past their expiry are removed."""
        m = self.store.media
        await m.create_pending("old", ALICE, 1000, 5000, True)
        await m.create_pending("new", ALICE, 1000, 9000, True)
        await m.add_uploaded(media("full", SHA_A))
        self.assertEqual(await m.expire_pending(6000), ["old"])
        self.assertIsNone(await m.get_local("old"))
        self.assertIsNotNone(await m.get_local("new"))
        self.assertIsNotNone(await m.get_local("full"))

    async def test_quarantine_list_usage(self) -> None:
        """Quarantine marks the row; listing is newest first; usage sums sizes."""
        m = self.store.media
        await m.add_uploaded(media("m1", SHA_A, size=10, ts=1))
        await m.add_uploaded(media("m2", SHA_B, size=32, ts=2))
        await m.add_uploaded(media("b1", SHA_A, user_id=BOB, size=10, ts=3))
        self.assertTrue(await m.quarantine_local("m1", "@admin:example.org"))
        self.assertFalse(await m.quarantine_local("nope", "@admin:example.org"))
        self.assertEqual((await m.get_local("m1")).quarantined_by, "@admin:example.org")
        self.assertEqual([x.media_id for x in await m.list_by_user(ALICE)], ["m2", "m1"])
        self.assertEqual([x.media_id for x in await m.list_by_user(ALICE, before_ts=2)],
                         ["m1"])
        self.assertEqual(await m.usage_by_user(ALICE), (2, 42))
        self.assertEqual(await m.usage_by_user("@nobody:example.org"), (0, 0))

    async def test_remote_cache(self) -> None:
        """Cached remote media counts a reference like local media does."""
        m = self.store.media
        remote = RemoteMedia(origin="other.example", media_id="r", sha256=SHA_A,
                             content_type="image/png", upload_name=None, size=10,
                             created_ts=1, last_access_ts=1, quarantined_by=None,
                             authenticated=True)
        await m.add_uploaded(media("local", SHA_A))
        self.assertTrue(await m.add_remote(remote))
        self.assertFalse(await m.add_remote(remote))
        self.assertEqual(await m.get_remote("other.example", "r"), remote)
        self.assertEqual(await m.blob_refcount(SHA_A), 2)
        self.assertEqual(await m.delete_remote("other.example", "r"), [])
        self.assertIsNone(await m.get_remote("other.example", "r"))
        self.assertEqual(await m.delete_local("local"), [SHA_A])


MediaStoreTestsSQLite, MediaStoreTestsPostgres = on_both_backends(MediaStoreTests)
