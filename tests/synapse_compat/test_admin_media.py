"""Synapse's admin API for media over real HTTP, against the whole service tree
(synapse_compat.admin_media, media_repo.admin)."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

import sqlalchemy as sa
from PIL import Image
from twisted.internet import defer

from homeserver.store.media import RemoteMedia, local_media
from tests.client_api.harness import ServerTestCase, q

A = "/_synapse/admin/v1"
UPLOAD = "/_matrix/media/v3/upload"
DOWNLOAD = "/_matrix/client/v1/media/download"
THUMBNAIL = "/_matrix/client/v1/media/thumbnail"
HOUR_MS = 3_600_000


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 90, 200)).save(out, "PNG")
    return out.getvalue()


class AdminMediaTestCase(ServerTestCase):
    def setUp(self):
        super().setUp()
        return defer.ensureDeferred(self._users())

    async def _users(self) -> None:
        self.admin_id, self.admin = await self.register("admin")
        await self.c["store"].accounts.set_admin(self.admin_id, True)
        self.alice_id, self.alice = await self.register("alice")

    async def fetch(self, method: str, path: str, *, token: str | None = None,
                    headers: dict[str, str] | None = None,
                    data: bytes | None = None) -> tuple[int, bytes]:
        hdrs: dict[str, list[str]] = {}
        if token:
            hdrs["Authorization"] = [f"Bearer {token}"]
        for k, v in (headers or {}).items():
            hdrs[k] = [v]
        resp = await self.http.request(method, self.base + path, data=data, headers=hdrs)
        return resp.code, await resp.content()

    async def upload(self, token: str, data: bytes, content_type: str = "text/plain",
                     filename: str | None = None) -> str:
        path = UPLOAD + (f"?filename={filename}" if filename else "")
        status, body = await self.fetch("POST", path, token=token, data=data,
                                        headers={"Content-Type": content_type})
        self.assertEqual(status, 200, body)
        return json.loads(body)["content_uri"].rsplit("/", 1)[1]

    async def download(self, media_id: str, server: str = "test.local") -> tuple[int, bytes]:
        return await self.fetch("GET", f"{DOWNLOAD}/{server}/{media_id}", token=self.alice)

    async def admin_call(self, method: str, path: str, token: str | None = None
                         ) -> tuple[int, Any]:
        return await self.request(method, A + path, {} if method == "POST" else None,
                                  token=token or self.admin)

    def assertError(self, result: tuple[int, Any], status: int, errcode: str,
                    message: str | None = None) -> None:
        code, body = result
        self.assertEqual((code, body["errcode"]), (status, errcode), body)
        if message is not None:
            self.assertEqual(body["error"], message)

    async def cache_remote(self, origin: str, media_id: str, data: bytes,
                           last_access_ts: int) -> str:
        """A remote item as the federation layer would cache it."""
        repo = self.c["media_repository"]
        staged = await repo.blobs.stage(io.BytesIO(data))
        await repo.blobs.commit(staged)
        await self.c["store"].media.add_remote(RemoteMedia(
            origin=origin, media_id=media_id, sha256=staged.sha256,
            content_type="image/png", upload_name="r.png", size=staged.size,
            created_ts=last_access_ts, last_access_ts=last_access_ts,
            quarantined_by=None, authenticated=True))
        return staged.sha256

    async def set_times(self, media_id: str, ts: int) -> None:
        """Pretend a local media ID was created and last read at ``ts``."""
        await self.c["media_access_times"].flush()

        def txn(conn):
            conn.execute(sa.update(local_media).where(local_media.c.media_id == media_id)
                         .values(created_ts=ts, last_access_ts=ts))
        await self.c["store"].db.run(txn)

    def now_ms(self) -> int:
        return self.c["now_ms"]()


class AuthTests(AdminMediaTestCase):
    async def test_non_admin_is_forbidden_everywhere(self) -> None:
        """Every endpoint answers a non-admin 403 M_FORBIDDEN "You are not a server
        admin", and a request without a token 401, changing nothing."""
        media_id = await self.upload(self.alice, b"mine")
        before = self.now_ms()
        calls = [
            ("GET", f"/media/test.local/{media_id}"),
            ("DELETE", f"/media/test.local/{media_id}"),
            ("POST", f"/media/quarantine/test.local/{media_id}"),
            ("POST", f"/media/unquarantine/test.local/{media_id}"),
            ("POST", f"/media/protect/{media_id}"),
            ("POST", f"/media/unprotect/{media_id}"),
            ("POST", f"/user/{q(self.alice_id)}/media/quarantine"),
            ("POST", f"/media/delete?before_ts={before + 10}"),
            ("POST", f"/media/test.local/delete?before_ts={before + 10}"),
            ("GET", f"/users/{q(self.alice_id)}/media"),
            ("DELETE", f"/users/{q(self.alice_id)}/media"),
            ("GET", "/statistics/users/media"),
            ("POST", f"/purge_media_cache?before_ts={before + 10}"),
        ]
        for method, path in calls:
            self.assertError(await self.admin_call(method, path, token=self.alice),
                             403, "M_FORBIDDEN", "You are not a server admin")
            status, body = await self.request(method, A + path)
            self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"), path)
        self.assertEqual(await self.download(media_id), (200, b"mine"))


class GarbageTests(AdminMediaTestCase):
    async def test_garbage_never_500(self) -> None:
        """Garbage bodies, query strings and path values on every endpoint, sent by
        an admin, give a Matrix error or success, never a 5xx."""
        media_id = await self.upload(self.alice, b"x")
        paths = [
            ("GET", f"/media/test.local/{media_id}"), ("GET", "/media/x..y/%00"),
            ("DELETE", "/media/test.local/%20"), ("POST", "/media/quarantine/%2F/x"),
            ("POST", "/media/unquarantine/test.local/%FF"), ("POST", "/media/protect/%25"),
            ("POST", "/media/unprotect/"), ("POST", "/user/%40%3A/media/quarantine"),
            ("POST", "/user/@x:test.local/media/quarantine"),
            ("POST", "/media/delete"), ("POST", "/media/test.local/delete"),
            ("GET", "/users/@x/media"), ("DELETE", f"/users/{q(self.alice_id)}/media"),
            ("GET", f"/users/{q(self.alice_id)}/media"), ("GET", "/statistics/users/media"),
            ("POST", "/purge_media_cache"),
        ]
        queries = ["", "?limit=abc&from=zzz&dir=q", "?before_ts=99999999999999999999999",
                   "?before_ts=1e12&size_gt=1.5&keep_profiles=TRUE", "?order_by=&dir=",
                   "?from_ts=9&until_ts=x&search_term=%25_%5C"]
        for method, path in paths:
            for query in queries:
                for raw in (b"{not json", b"[1]"):
                    status, body = await self.request(method, A + path + query, raw=raw,
                                                      token=self.admin)
                    self.assertLess(status, 500, (method, path, query, body))
                    if status >= 400:
                        self.assertIsInstance(body.get("errcode"), str,
                                              (method, path, query, body))


class QuarantineTests(AdminMediaTestCase):
    async def test_quarantined_media_is_not_served(self) -> None:
        """A quarantined media ID answers 404 on every download endpoint until it is
        unquarantined; the admin's ID is recorded."""
        media_id = await self.upload(self.alice, b"bad")
        self.assertEqual(await self.admin_call(
            "POST", f"/media/quarantine/test.local/{media_id}"), (200, {}))
        status, body = await self.download(media_id)
        self.assertEqual((status, json.loads(body)["errcode"]), (404, "M_NOT_FOUND"))
        status, _ = await self.fetch("GET", f"{DOWNLOAD}/test.local/{media_id}/name.txt",
                                     token=self.alice)
        self.assertEqual(status, 404)
        status, _ = await self.fetch("GET", f"/_matrix/media/v3/download/test.local/{media_id}")
        self.assertEqual(status, 404)
        _, info = await self.admin_call("GET", f"/media/test.local/{media_id}")
        self.assertEqual(info["media_info"]["quarantined_by"], self.admin_id)
        self.assertEqual(await self.admin_call(
            "POST", f"/media/unquarantine/test.local/{media_id}"), (200, {}))
        self.assertEqual(await self.download(media_id), (200, b"bad"))

    async def test_quarantined_image_has_no_thumbnails(self) -> None:
        """Thumbnails of quarantined media answer 404 too (v1 and legacy), and come
        back once it is unquarantined."""
        media_id = await self.upload(self.alice, png(200, 100), "image/png")
        await self.c["thumbnails"].wait_idle()
        query = "?width=32&height=32&method=scale"
        self.assertEqual((await self.fetch("GET", f"{THUMBNAIL}/test.local/{media_id}{query}",
                                           token=self.alice))[0], 200)
        await self.admin_call("POST", f"/media/quarantine/test.local/{media_id}")
        status, body = await self.fetch("GET", f"{THUMBNAIL}/test.local/{media_id}{query}",
                                        token=self.alice)
        self.assertEqual((status, json.loads(body)["errcode"]), (404, "M_NOT_FOUND"))
        status, _ = await self.fetch(
            "GET", f"/_matrix/media/v3/thumbnail/test.local/{media_id}{query}")
        self.assertEqual(status, 404)
        await self.admin_call("POST", f"/media/unquarantine/test.local/{media_id}")
        self.assertEqual((await self.fetch("GET", f"{THUMBNAIL}/test.local/{media_id}{query}",
                                           token=self.alice))[0], 200)

    async def test_quarantine_follows_the_bytes(self) -> None:
        """Quarantining one media ID quarantines every local and cached remote item
        with the same bytes, except protected media; later uploads of those bytes
        are quarantined on arrival; unquarantining releases them all."""
        one = await self.upload(self.alice, b"same bad bytes")
        two = await self.upload(self.alice, b"same bad bytes")
        kept = await self.upload(self.admin, b"same bad bytes")
        other = await self.upload(self.alice, b"other bytes")
        await self.admin_call("POST", f"/media/protect/{kept}")
        await self.cache_remote("other.example", "copy", b"same bad bytes", self.now_ms())
        self.assertEqual(await self.admin_call(
            "POST", f"/media/quarantine/test.local/{one}"), (200, {}))
        for media_id in (one, two):
            self.assertEqual((await self.download(media_id))[0], 404)
        self.assertEqual(await self.download(kept), (200, b"same bad bytes"))
        self.assertEqual(await self.download(other), (200, b"other bytes"))
        remote = await self.c["store"].media.get_remote("other.example", "copy")
        self.assertEqual(remote.quarantined_by, self.admin_id)
        again = await self.upload(self.alice, b"same bad bytes")
        self.assertEqual((await self.download(again))[0], 404)
        _, info = await self.admin_call("GET", f"/media/test.local/{again}")
        self.assertEqual(info["media_info"]["quarantined_by"], self.admin_id)
        self.assertEqual(await self.admin_call(
            "POST", f"/media/unquarantine/test.local/{two}"), (200, {}))
        for media_id in (one, two, again):
            self.assertEqual(await self.download(media_id), (200, b"same bad bytes"))
        remote = await self.c["store"].media.get_remote("other.example", "copy")
        self.assertIsNone(remote.quarantined_by)
        fresh = await self.upload(self.alice, b"same bad bytes")
        self.assertEqual(await self.download(fresh), (200, b"same bad bytes"))

    async def test_explicit_quarantine_overrides_protection(self) -> None:
        """Naming a protected media ID quarantines it (protection guards against
        the bulk endpoints only)."""
        media_id = await self.upload(self.alice, b"protected")
        await self.admin_call("POST", f"/media/protect/{media_id}")
        await self.admin_call("POST", f"/media/quarantine/test.local/{media_id}")
        self.assertEqual((await self.download(media_id))[0], 404)

    async def test_quarantine_remote_media(self) -> None:
        """Cached remote media can be quarantined and released; uncached is 404."""
        await self.cache_remote("other.example", "remote1", b"r", self.now_ms())
        self.assertEqual(await self.admin_call(
            "POST", "/media/quarantine/other.example/remote1"), (200, {}))
        remote = await self.c["store"].media.get_remote("other.example", "remote1")
        self.assertEqual(remote.quarantined_by, self.admin_id)
        self.assertEqual(await self.admin_call(
            "POST", "/media/unquarantine/other.example/remote1"), (200, {}))
        remote = await self.c["store"].media.get_remote("other.example", "remote1")
        self.assertIsNone(remote.quarantined_by)
        self.assertError(await self.admin_call(
            "POST", "/media/quarantine/other.example/nothere"), 404, "M_NOT_FOUND")

    async def test_bad_input(self) -> None:
        """Unknown media is 404 M_NOT_FOUND; a malformed server name or media ID is
        400 M_INVALID_PARAM."""
        for path in ("/media/quarantine/test.local/unknown",
                     "/media/unquarantine/test.local/unknown",
                     "/media/protect/unknown", "/media/unprotect/unknown"):
            self.assertError(await self.admin_call("POST", path), 404, "M_NOT_FOUND",
                             "Unknown media")
        for path in ("/media/quarantine/bad_server!/abc",
                     "/media/quarantine/test.local/a%2Bb",
                     "/media/protect/a%2Bb"):
            self.assertError(await self.admin_call("POST", path), 400, "M_INVALID_PARAM")

    async def test_user_quarantine_spares_protected_media(self) -> None:
        """Quarantining a user's media counts and quarantines all of it but the
        protected item, which still downloads; other users' media is untouched."""
        one = await self.upload(self.alice, b"1")
        two = await self.upload(self.alice, b"2")
        sticker = await self.upload(self.alice, b"sticker")
        admins = await self.upload(self.admin, b"admin's")
        self.assertEqual(await self.admin_call("POST", f"/media/protect/{sticker}"),
                         (200, {}))
        self.assertEqual(await self.admin_call(
            "POST", f"/user/{q(self.alice_id)}/media/quarantine"),
            (200, {"num_quarantined": 2}))
        for media_id in (one, two):
            self.assertEqual((await self.download(media_id))[0], 404)
        self.assertEqual(await self.download(sticker), (200, b"sticker"))
        self.assertEqual(await self.download(admins), (200, b"admin's"))
        _, info = await self.admin_call("GET", f"/media/test.local/{sticker}")
        self.assertIs(info["media_info"]["safe_from_quarantine"], True)
        # unprotected, the next bulk quarantine takes it too
        self.assertEqual(await self.admin_call("POST", f"/media/unprotect/{sticker}"),
                         (200, {}))
        self.assertEqual(await self.admin_call(
            "POST", f"/user/{q(self.alice_id)}/media/quarantine"),
            (200, {"num_quarantined": 3}))
        self.assertEqual((await self.download(sticker))[0], 404)
        # bytes another user uploaded too are quarantined with them
        copy = await self.upload(self.admin, b"1")
        self.assertEqual((await self.download(copy))[0], 404)
        self.assertError(await self.admin_call("POST", "/user/not-a-user/media/quarantine"),
                         400, "M_INVALID_PARAM")


class MediaInfoTests(AdminMediaTestCase):
    async def test_local_and_remote_info(self) -> None:
        """Local and cached remote media come in Synapse's media_info shape;
        unknown media is 404."""
        media_id = await self.upload(self.alice, b"hello", "text/plain", "h.txt")
        status, body = await self.admin_call("GET", f"/media/test.local/{media_id}")
        self.assertEqual(status, 200)
        info = body["media_info"]
        self.assertEqual({k: info[k] for k in (
            "media_origin", "user_id", "media_id", "media_type", "media_length",
            "upload_name", "url_cache", "quarantined_by", "safe_from_quarantine",
            "authenticated", "filesystem_id")},
            {"media_origin": None, "user_id": self.alice_id, "media_id": media_id,
             "media_type": "text/plain", "media_length": 5, "upload_name": "h.txt",
             "url_cache": None, "quarantined_by": None, "safe_from_quarantine": False,
             "authenticated": True, "filesystem_id": None})
        self.assertEqual(info["sha256"],
                         "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        self.assertIsInstance(info["created_ts"], int)
        ts = self.now_ms() - HOUR_MS
        sha = await self.cache_remote("other.example", "rem", b"png", ts)
        status, body = await self.admin_call("GET", "/media/other.example/rem")
        self.assertEqual(status, 200)
        info = body["media_info"]
        self.assertEqual((info["media_origin"], info["user_id"], info["media_length"],
                          info["last_access_ts"], info["safe_from_quarantine"],
                          info["sha256"]),
                         ("other.example", None, 3, ts, None, sha))
        self.assertError(await self.admin_call("GET", "/media/test.local/unknown"),
                         404, "M_NOT_FOUND", "Unknown media")
        self.assertError(await self.admin_call("GET", "/media/other.example/unknown"),
                         404, "M_NOT_FOUND")


    async def test_downloads_move_last_access_ts(self) -> None:
        """A download shows in last_access_ts once access times are written."""
        media_id = await self.upload(self.alice, b"read me")
        await self.set_times(media_id, self.now_ms() - HOUR_MS)
        before = self.now_ms()
        self.assertEqual(await self.download(media_id), (200, b"read me"))
        await self.c["media_access_times"].flush()
        _, body = await self.admin_call("GET", f"/media/test.local/{media_id}")
        self.assertGreaterEqual(body["media_info"]["last_access_ts"], before)


class DeleteTests(AdminMediaTestCase):
    async def test_delete_keeps_bytes_of_identical_upload(self) -> None:
        """Deleting one of two media IDs with identical bytes answers Synapse's shape,
        the deleted one 404s, the other still downloads; a second delete is 404."""
        one = await self.upload(self.alice, b"identical bytes")
        two = await self.upload(self.admin, b"identical bytes")
        self.assertEqual(await self.admin_call("DELETE", f"/media/test.local/{one}"),
                         (200, {"deleted_media": [one], "total": 1}))
        self.assertEqual((await self.download(one))[0], 404)
        self.assertEqual(await self.download(two), (200, b"identical bytes"))
        self.assertTrue(await self.c["media_repository"].blobs.exists(
            hashlib.sha256(b"identical bytes").hexdigest()))
        self.assertError(await self.admin_call("DELETE", f"/media/test.local/{one}"),
                         404, "M_NOT_FOUND", "Unknown media")
        self.assertEqual(await self.admin_call("DELETE", f"/media/test.local/{two}"),
                         (200, {"deleted_media": [two], "total": 1}))
        self.assertFalse(await self.c["media_repository"].blobs.exists(
            hashlib.sha256(b"identical bytes").hexdigest()))

    async def test_delete_keeps_thumbnails_of_identical_image(self) -> None:
        """Thumbnails belong to the bytes: deleting one of two identical images keeps
        them for the other; deleting the last frees them with the image."""
        image = png(300, 200)
        one = await self.upload(self.alice, image, "image/png")
        two = await self.upload(self.alice, image, "image/png")
        await self.c["thumbnails"].wait_idle()
        media = self.c["store"].media
        blobs = self.c["media_repository"].blobs
        thumbs = await media.thumbnails_of(hashlib.sha256(image).hexdigest())
        self.assertTrue(thumbs)
        await self.admin_call("DELETE", f"/media/test.local/{one}")
        query = "?width=32&height=32&method=crop"
        self.assertEqual((await self.fetch("GET", f"{THUMBNAIL}/test.local/{two}{query}",
                                           token=self.alice))[0], 200)
        self.assertEqual((await self.fetch("GET", f"{THUMBNAIL}/test.local/{one}{query}",
                                           token=self.alice))[0], 404)
        for t in thumbs:
            self.assertTrue(await blobs.exists(t.thumbnail_sha256))
        await self.admin_call("DELETE", f"/media/test.local/{two}")
        self.assertEqual(await media.thumbnails_of(hashlib.sha256(image).hexdigest()), [])
        for t in thumbs:
            self.assertFalse(await blobs.exists(t.thumbnail_sha256))

    async def test_delete_remote_is_refused(self) -> None:
        """Deleting remote media is 400 "Can only delete local media" and keeps it."""
        await self.cache_remote("other.example", "rem", b"r", self.now_ms())
        self.assertError(await self.admin_call("DELETE", "/media/other.example/rem"),
                         400, "M_UNKNOWN", "Can only delete local media")
        self.assertIsNotNone(await self.c["store"].media.get_remote("other.example", "rem"))

    async def test_delete_by_date_and_size(self) -> None:
        """POST /media/delete removes local media last used before before_ts and
        larger than size_gt; quarantined, protected and avatar media stay unless
        keep_profiles=false frees the avatar."""
        now = self.now_ms()
        old_small = await self.upload(self.alice, b"s")
        old_big = await self.upload(self.alice, b"b" * 100)
        recent = await self.upload(self.alice, b"r" * 100)
        quarantined = await self.upload(self.alice, b"q" * 100)
        protected = await self.upload(self.alice, b"p" * 100)
        avatar = await self.upload(self.alice, b"a" * 100)
        for media_id in (old_small, old_big, quarantined, protected, avatar):
            await self.set_times(media_id, now - 2 * HOUR_MS)
        await self.admin_call("POST", f"/media/quarantine/test.local/{quarantined}")
        await self.admin_call("POST", f"/media/protect/{protected}")
        await self.c["store"].accounts.set_avatar_url(self.alice_id,
                                                      f"mxc://test.local/{avatar}")
        cutoff = now - HOUR_MS
        self.assertEqual(await self.admin_call(
            "POST", f"/media/delete?before_ts={cutoff}&size_gt=10"),
            (200, {"deleted_media": [old_big], "total": 1}))
        self.assertEqual(await self.admin_call(
            "POST", f"/media/test.local/delete?before_ts={cutoff}&keep_profiles=false"),
            (200, {"deleted_media": sorted([old_small, avatar]), "total": 2}))
        for media_id in (recent, protected):
            self.assertEqual((await self.download(media_id))[0], 200)
        self.assertIsNotNone(await self.c["store"].media.get_local(quarantined))

    async def test_delete_by_date_bad_input(self) -> None:
        """Missing before_ts is 400 M_MISSING_PARAM; a timestamp in seconds, a bad
        number or boolean 400 M_INVALID_PARAM; another server's name 400."""
        ts = self.now_ms()
        self.assertError(await self.admin_call("POST", "/media/delete"),
                         400, "M_MISSING_PARAM")
        for query in ("before_ts=1700000000", "before_ts=soon", "before_ts=-5",
                      "before_ts=99999999999999999999",
                      f"before_ts={ts}&size_gt=-1", f"before_ts={ts}&keep_profiles=maybe"):
            self.assertError(await self.admin_call("POST", f"/media/delete?{query}"),
                             400, "M_INVALID_PARAM")
        self.assertError(await self.admin_call(
            "POST", f"/media/other.example/delete?before_ts={ts}"),
            400, "M_UNKNOWN", "Can only delete local media")


class PurgeRemoteCacheTests(AdminMediaTestCase):
    async def test_purge_old_remote_media(self) -> None:
        """purge_media_cache drops remote items last accessed before before_ts (not
        quarantined ones), frees their bytes unless local media shares them, and
        leaves local media alone."""
        now = self.now_ms()
        blobs = self.c["media_repository"].blobs
        old_sha = await self.cache_remote("other.example", "old", b"old", now - 2 * HOUR_MS)
        await self.cache_remote("other.example", "new", b"new", now)
        await self.cache_remote("other.example", "bad", b"bad", now - 2 * HOUR_MS)
        await self.admin_call("POST", "/media/quarantine/other.example/bad")
        local = await self.upload(self.alice, b"shared")
        await self.set_times(local, now - 2 * HOUR_MS)
        await self.cache_remote("other.example", "shared", b"shared", now - 2 * HOUR_MS)
        self.assertEqual(await self.admin_call(
            "POST", f"/purge_media_cache?before_ts={now - HOUR_MS}"), (200, {"deleted": 2}))
        media = self.c["store"].media
        self.assertIsNone(await media.get_remote("other.example", "old"))
        self.assertIsNone(await media.get_remote("other.example", "shared"))
        self.assertIsNotNone(await media.get_remote("other.example", "new"))
        self.assertIsNotNone(await media.get_remote("other.example", "bad"))
        self.assertFalse(await blobs.exists(old_sha))
        self.assertEqual(await self.download(local), (200, b"shared"))
        self.assertError(await self.admin_call("POST", "/purge_media_cache"),
                         400, "M_MISSING_PARAM")
        self.assertError(await self.admin_call("POST", "/purge_media_cache?before_ts=12"),
                         400, "M_INVALID_PARAM")


class UserMediaTests(AdminMediaTestCase):
    async def upload_three(self) -> list[str]:
        """Three uploads of alice's, created one hour apart (oldest first), sizes 3,
        1 and 2."""
        now = self.now_ms()
        ids = []
        for i, data in enumerate((b"aaa", b"b", b"cc")):
            media_id = await self.upload(self.alice, data, filename=f"f{i}.txt")
            await self.set_times(media_id, now - (3 - i) * HOUR_MS)
            ids.append(media_id)
        return ids

    async def test_list_and_paginate(self) -> None:
        """The list is newest first by default with Synapse's fields, pages with
        from/limit/next_token, and sorts by order_by and dir."""
        ids = await self.upload_three()
        await self.upload(self.admin, b"not alice's")
        status, body = await self.admin_call("GET", f"/users/{q(self.alice_id)}/media")
        self.assertEqual(status, 200)
        self.assertEqual([m["media_id"] for m in body["media"]], ids[::-1])
        self.assertEqual((body["total"], "next_token" in body), (3, False))
        self.assertEqual(set(body["media"][0]), {
            "created_ts", "last_access_ts", "media_id", "media_length", "media_type",
            "quarantined_by", "safe_from_quarantine", "upload_name"})
        self.assertEqual(body["media"][0]["upload_name"], "f2.txt")
        path = f"/users/{q(self.alice_id)}/media"
        _, page1 = await self.admin_call("GET", path + "?limit=2")
        self.assertEqual(([m["media_id"] for m in page1["media"]], page1["next_token"]),
                         (ids[:0:-1], 2))
        _, page2 = await self.admin_call("GET", path + "?limit=2&from=2")
        self.assertEqual(([m["media_id"] for m in page2["media"]], "next_token" in page2),
                         ([ids[0]], False))
        _, by_size = await self.admin_call("GET", path + "?order_by=media_length")
        self.assertEqual([m["media_length"] for m in by_size["media"]], [1, 2, 3])
        _, by_size = await self.admin_call("GET", path + "?order_by=media_length&dir=b")
        self.assertEqual([m["media_length"] for m in by_size["media"]], [3, 2, 1])
        _, oldest = await self.admin_call("GET", path + "?dir=f")
        self.assertEqual([m["media_id"] for m in oldest["media"]], ids)

    async def test_delete_user_media(self) -> None:
        """DELETE removes the page the same query would list (here the newest two)."""
        ids = await self.upload_three()
        self.assertEqual(await self.admin_call(
            "DELETE", f"/users/{q(self.alice_id)}/media?limit=2"),
            (200, {"deleted_media": ids[:0:-1], "total": 2}))
        _, body = await self.admin_call("GET", f"/users/{q(self.alice_id)}/media")
        self.assertEqual([m["media_id"] for m in body["media"]], [ids[0]])
        self.assertEqual(await self.download(ids[0]), (200, b"aaa"))

    async def test_bad_input(self) -> None:
        """Remote users, unknown users, malformed IDs and bad paging parameters are
        refused with Synapse's codes on both GET and DELETE."""
        for method in ("GET", "DELETE"):
            self.assertError(await self.admin_call(
                method, f"/users/{q('@bob:other.example')}/media"),
                400, "M_UNKNOWN", "Can only look up local users")
            self.assertError(await self.admin_call(
                method, f"/users/{q('@nobody:test.local')}/media"),
                404, "M_NOT_FOUND", "Unknown user")
            self.assertError(await self.admin_call(method, "/users/nobody/media"),
                             400, "M_INVALID_PARAM")
            for query in ("limit=-1", "from=-1", "from=x", "order_by=size", "dir=up"):
                self.assertError(await self.admin_call(
                    method, f"/users/{q(self.alice_id)}/media?{query}"),
                    400, "M_INVALID_PARAM")


class StatisticsTests(AdminMediaTestCase):
    async def test_usage_per_user(self) -> None:
        """Per-user media_count and media_length, with displayname, ordering,
        paging, search_term and a created_ts window."""
        now = self.now_ms()
        await self.c["store"].accounts.set_displayname(self.alice_id, "Alice Liddell")
        old = await self.upload(self.alice, b"12345")
        await self.set_times(old, now - 2 * HOUR_MS)
        await self.upload(self.alice, b"123")
        await self.upload(self.admin, b"1234567890")
        status, body = await self.admin_call("GET", "/statistics/users/media")
        self.assertEqual(status, 200)
        self.assertEqual(body, {"users": [
            {"user_id": self.admin_id, "displayname": "admin", "media_count": 1,
             "media_length": 10},
            {"user_id": self.alice_id, "displayname": "Alice Liddell", "media_count": 2,
             "media_length": 8}], "total": 2})
        _, body = await self.admin_call(
            "GET", "/statistics/users/media?order_by=media_count&dir=b&limit=1")
        self.assertEqual(([u["user_id"] for u in body["users"]], body["next_token"]),
                         ([self.alice_id], 1))
        _, body = await self.admin_call("GET", "/statistics/users/media?search_term=liddell")
        self.assertEqual([u["user_id"] for u in body["users"]], [self.alice_id])
        _, body = await self.admin_call(
            "GET", f"/statistics/users/media?from_ts={now - HOUR_MS}&order_by=media_length")
        self.assertEqual([(u["user_id"], u["media_length"]) for u in body["users"]],
                         [(self.alice_id, 3), (self.admin_id, 10)])
        _, body = await self.admin_call(
            "GET", f"/statistics/users/media?until_ts={now - HOUR_MS}")
        self.assertEqual([(u["user_id"], u["media_count"]) for u in body["users"]],
                         [(self.alice_id, 1)])

    async def test_bad_input(self) -> None:
        """Bad numbers, an unknown order_by, until_ts before from_ts and an empty
        search_term are 400 M_INVALID_PARAM."""
        for query in ("limit=-1", "from=x", "from_ts=-1", "order_by=size", "dir=x",
                      "from_ts=100&until_ts=50", "search_term="):
            self.assertError(await self.admin_call(
                "GET", f"/statistics/users/media?{query}"), 400, "M_INVALID_PARAM")


class RetentionWiringTests(AdminMediaTestCase):
    config_overrides = {"media_retention": {"remote_media_lifetime": "1h"}}

    async def test_configured_retention_runs(self) -> None:
        """media_retention in the config reaches the running job: remote media not
        accessed for an hour goes, local media stays (no local lifetime)."""
        now = self.now_ms()
        await self.cache_remote("other.example", "old", b"old", now - 2 * HOUR_MS)
        await self.cache_remote("other.example", "new", b"new", now)
        local = await self.upload(self.alice, b"local")
        await self.set_times(local, now - 1000 * HOUR_MS)
        job = self.hs.getServiceNamed("media-retention")
        self.assertEqual(await job.apply(), (1, 0))
        self.assertIsNone(await self.c["store"].media.get_remote("other.example", "old"))
        self.assertEqual(await self.download(local), (200, b"local"))
