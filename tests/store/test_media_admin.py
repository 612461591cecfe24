"""Administration queries over the media tables (homeserver.store.media_admin), on
SQLite and PostgreSQL."""

from __future__ import annotations

from homeserver.store.media import LocalMedia, RemoteMedia
from homeserver.store.media_admin import MediaAdminStore
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB, ADMIN = "@alice:test.local", "@bob:test.local", "@admin:test.local"
SHA_A, SHA_B = "a" * 64, "b" * 64


def local(media_id: str, sha256: str | None, user_id: str = ALICE, size: int = 10,
          ts: int = 1000, name: str | None = None) -> LocalMedia:
    return LocalMedia(media_id=media_id, user_id=user_id, content_type="text/plain",
                      upload_name=name, size=None if sha256 is None else size,
                      sha256=sha256, created_ts=ts, last_access_ts=ts, quarantined_by=None,
                      unused_expires_ts=None, authenticated=True)


def remote(origin: str, media_id: str, sha256: str, ts: int = 1000) -> RemoteMedia:
    return RemoteMedia(origin=origin, media_id=media_id, sha256=sha256, content_type=None,
                       upload_name=None, size=3, created_ts=ts, last_access_ts=ts,
                       quarantined_by=None, authenticated=True)


class MediaAdminStoreTests(StoreTests):
    def setUp(self):
        super().setUp()
        self.admin = MediaAdminStore(self.store.db)
        self.media = self.store.media

    async def quarantined(self, media_id: str) -> str | None:
        return (await self.media.get_local(media_id)).quarantined_by

    async def test_quarantine_item_follows_hash(self) -> None:
        """An item's quarantine spreads to local and remote rows with its bytes but
        not to protected ones; releasing releases them all; unknown is None."""
        for m in (local("one", SHA_A), local("two", SHA_A, BOB), local("safe", SHA_A),
                  local("other", SHA_B)):
            await self.media.add_uploaded(m)
        await self.media.add_remote(remote("r.example", "copy", SHA_A))
        await self.admin.set_protected("safe", True)
        self.assertEqual(await self.admin.quarantine_item(None, "one", ADMIN), 3)
        self.assertEqual([await self.quarantined(m) for m in ("one", "two", "safe", "other")],
                         [ADMIN, ADMIN, None, None])
        self.assertEqual((await self.media.get_remote("r.example", "copy")).quarantined_by,
                         ADMIN)
        self.assertEqual(await self.admin.quarantine_item("r.example", "copy", None), 4)
        self.assertEqual([await self.quarantined(m) for m in ("one", "two", "safe")],
                         [None, None, None])
        self.assertIsNone(await self.admin.quarantine_item(None, "nothere", ADMIN))
        self.assertIsNone(await self.admin.quarantine_item("r.example", "nothere", ADMIN))
        self.assertFalse(await self.admin.set_protected("nothere", True))

    async def test_quarantine_user_media_and_inherit(self) -> None:
        """A user's unprotected media and other users' copies of its bytes are
        quarantined; a new upload of those bytes inherits the quarantine."""
        await self.media.add_uploaded(local("a1", SHA_A))
        await self.media.add_uploaded(local("a2", SHA_B))
        await self.media.add_uploaded(local("b1", SHA_A, BOB))
        await self.admin.set_protected("a2", True)
        self.assertEqual(await self.admin.quarantine_user_media(ALICE, ADMIN), 2)
        self.assertEqual([await self.quarantined(m) for m in ("a1", "a2", "b1")],
                         [ADMIN, None, ADMIN])
        await self.media.add_uploaded(local("new", SHA_A, BOB))
        await self.media.add_uploaded(local("fine", SHA_B, BOB))
        self.assertTrue(await self.admin.inherit_quarantine("new", SHA_A))
        self.assertFalse(await self.admin.inherit_quarantine("fine", SHA_B))
        self.assertEqual(await self.quarantined("new"), ADMIN)

    async def test_user_media_page_orders(self) -> None:
        """Pages sort by the named column, ties by media_id, and count all rows."""
        await self.media.add_uploaded(local("m1", SHA_A, size=30, ts=3, name="c"))
        await self.media.add_uploaded(local("m2", SHA_B, size=10, ts=1, name="a"))
        await self.media.add_uploaded(local("m3", SHA_A, size=10, ts=2, name="b"))
        await self.media.add_uploaded(local("x", SHA_A, BOB))

        async def ids(**kw) -> list[str]:
            page, total = await self.admin.user_media_page(ALICE, **kw)
            self.assertEqual(total, 3)
            return [m.media_id for m in page]

        self.assertEqual(await ids(start=0, limit=10, order_by="created_ts",
                                   descending=True), ["m1", "m3", "m2"])
        self.assertEqual(await ids(start=0, limit=10, order_by="media_length",
                                   descending=False), ["m2", "m3", "m1"])
        self.assertEqual(await ids(start=1, limit=1, order_by="upload_name",
                                   descending=False), ["m3"])

    async def test_usage_page(self) -> None:
        """Counts and bytes per user, pending uploads left out, filtered by time and
        search term, with display names."""
        await self.store.accounts.create_user(ALICE)
        await self.store.accounts.set_displayname(ALICE, "Alice 100%")
        await self.media.add_uploaded(local("a1", SHA_A, size=5, ts=10))
        await self.media.add_uploaded(local("a2", SHA_B, size=7, ts=20))
        await self.media.add_uploaded(local("b1", SHA_A, BOB, size=5, ts=30))
        await self.media.create_pending("p", BOB, 40, 10_000, True)

        async def rows(**kw) -> list[tuple]:
            query = dict(start=0, limit=10, order_by="user_id", descending=False,
                         from_ts=None, until_ts=None, search_term=None)
            query.update(kw)
            users, _ = await self.admin.usage_page(**query)
            return [(u.user_id, u.displayname, u.media_count, u.media_length)
                    for u in users]

        self.assertEqual(await rows(), [(ALICE, "Alice 100%", 2, 12), (BOB, None, 1, 5)])
        self.assertEqual(await rows(order_by="media_length", descending=True, limit=1),
                         [(ALICE, "Alice 100%", 2, 12)])
        self.assertEqual(await rows(from_ts=15, until_ts=25), [(ALICE, "Alice 100%", 1, 7)])
        self.assertEqual(await rows(search_term="100%"), [(ALICE, "Alice 100%", 2, 12)])
        self.assertEqual(await rows(search_term="0_"), [])
        self.assertEqual(await rows(search_term="bob"), [(BOB, None, 1, 5)])

    async def test_old_media_and_access(self) -> None:
        """Old media is chosen by last access (never backwards) and size, sparing
        quarantined, protected and avatar media unless asked; remote likewise."""
        for m in (local("old", SHA_A, size=50), local("small", SHA_B, size=1),
                  local("read", SHA_A), local("q", "c" * 64), local("p", SHA_A),
                  local("avatar", SHA_A)):
            await self.media.add_uploaded(m)
        await self.media.create_pending("pending", ALICE, 1000, 10**12, True)
        await self.media.add_remote(remote("r.example", "old", SHA_A))
        await self.media.add_remote(remote("r.example", "read", SHA_B))
        await self.admin.quarantine_item(None, "q", ADMIN)
        await self.admin.set_protected("p", True)
        await self.store.accounts.create_user(ALICE)
        await self.store.accounts.set_avatar_url(ALICE, "mxc://test.local/avatar")
        await self.admin.record_access({"read": 5000}, {("r.example", "read"): 5000})
        await self.admin.record_access({"read": 2000}, {})
        self.assertEqual((await self.media.get_local("read")).last_access_ts, 5000)

        async def old(**kw) -> list[str]:
            args = dict(before_ts=3000, keep_profiles=True, profile_prefix="mxc://test.local/")
            args.update(kw)
            return await self.admin.old_local_media(**args)

        self.assertEqual(await old(), ["old", "small"])
        self.assertEqual(await old(size_gt=5), ["old"])
        self.assertEqual(await old(keep_profiles=False), ["avatar", "old", "small"])
        self.assertEqual(await old(include_quarantined=True, include_protected=True),
                         ["old", "p", "q", "small"])
        self.assertEqual(await self.admin.old_remote_media(before_ts=3000),
                         [("r.example", "old")])


MediaAdminStoreTestsSQLite, MediaAdminStoreTestsPostgres = on_both_backends(
    MediaAdminStoreTests)
