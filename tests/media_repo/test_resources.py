"""The content repository's endpoints over real HTTP (spec: Client-Server API,
"Content repository"), against the whole service tree."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet import reactor
from twisted.web.iweb import UNKNOWN_LENGTH

from tests.client_api.harness import ServerTestCase

UPLOAD = "/_matrix/media/v3/upload"
CREATE = "/_matrix/media/v1/create"
DOWNLOAD = "/_matrix/client/v1/media/download"
LEGACY_DOWNLOAD = "/_matrix/media/v3/download"


class MediaTestCase(ServerTestCase):
    async def fetch(self, method: str, path: str, *, token: str | None = None,
                    headers: dict[str, str] | None = None,
                    data: bytes | None = None) -> tuple[int, Any, bytes]:
        """``(status, response headers, body bytes)`` of one request."""
        hdrs: dict[str, list[str]] = {}
        if token:
            hdrs["Authorization"] = [f"Bearer {token}"]
        for k, v in (headers or {}).items():
            hdrs[k] = [v]
        resp = await self.http.request(method, self.base + path, data=data, headers=hdrs)
        # twisted's client takes Content-Length out of the headers into .length
        self.last_length = resp.length
        return resp.code, resp.headers, await resp.content()

    async def upload(self, token: str, data: bytes, content_type: str | None = "text/plain",
                     filename: str | None = None) -> str:
        """Upload ``data``; returns the media ID."""
        path = UPLOAD + (f"?filename={filename}" if filename else "")
        headers = {"Content-Type": content_type} if content_type else {}
        status, _, body = await self.fetch("POST", path, token=token, headers=headers,
                                           data=data)
        self.assertEqual(status, 200, body)
        import json
        uri = json.loads(body)["content_uri"]
        self.assertTrue(uri.startswith("mxc://test.local/"), uri)
        return uri.rsplit("/", 1)[1]


class UploadDownloadTests(MediaTestCase):
    async def test_round_trip_is_byte_identical(self) -> None:
        """Uploaded bytes come back unchanged, with the upload's type and name."""
        _, token = await self.register("alice")
        data = os.urandom(300_000)
        media_id = await self.upload(token, data, "application/x-thing", "blob.bin")
        status, headers, body = await self.fetch(
            "GET", f"{DOWNLOAD}/test.local/{media_id}", token=token)
        self.assertEqual(status, 200)
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(data).hexdigest())
        h = headers.getRawHeaders
        self.assertEqual(h("Content-Type"), ["application/x-thing"])
        self.assertEqual(h("Content-Disposition"), ["attachment; filename=blob.bin"])
        self.assertEqual(self.last_length, len(data))

    async def test_safe_headers(self) -> None:
        """Downloads carry immutable caching, the sandbox CSP, nosniff, CORP and CORS;
        an inline-safe type is inline, and a non-token name uses filename*."""
        _, token = await self.register("alice")
        media_id = await self.upload(token, b"hello", "text/plain", "h%C3%A9llo%20w.txt")
        status, headers, body = await self.fetch(
            "GET", f"{DOWNLOAD}/test.local/{media_id}", token=token)
        self.assertEqual((status, body), (200, b"hello"))
        h = lambda name: headers.getRawHeaders(name, [None])[0]  # noqa: E731
        self.assertEqual(h("Cache-Control"), "public, max-age=31536000, immutable")
        self.assertEqual(h("Content-Type"), "text/plain; charset=UTF-8")
        self.assertEqual(h("Content-Disposition"),
                         "inline; filename*=utf-8''h%C3%A9llo%20w.txt")
        self.assertTrue(h("Content-Security-Policy").startswith("sandbox;"))
        self.assertEqual(h("X-Content-Type-Options"), "nosniff")
        self.assertEqual(h("Cross-Origin-Resource-Policy"), "cross-origin")
        self.assertEqual(h("Access-Control-Allow-Origin"), "*")

    async def test_svg_and_html_are_attachments(self) -> None:
        """Types a browser could run script in are never served inline."""
        _, token = await self.register("alice")
        for ctype in ("image/svg+xml", "text/html", "application/javascript"):
            media_id = await self.upload(token, b"<svg/>", ctype)
            _, headers, _ = await self.fetch("GET", f"{DOWNLOAD}/test.local/{media_id}",
                                             token=token)
            self.assertEqual(headers.getRawHeaders("Content-Disposition"), ["attachment"])

    async def test_file_name_in_path_overrides(self) -> None:
        """``…/download/{server}/{id}/{fileName}`` names the download."""
        _, token = await self.register("alice")
        media_id = await self.upload(token, b"x", "image/png", "a.png")
        _, headers, _ = await self.fetch(
            "GET", f"{DOWNLOAD}/test.local/{media_id}/other.png", token=token)
        self.assertEqual(headers.getRawHeaders("Content-Disposition"),
                         ["inline; filename=other.png"])

    async def test_default_content_type(self) -> None:
        """An upload without Content-Type is application/octet-stream."""
        _, token = await self.register("alice")
        media_id = await self.upload(token, b"raw", content_type=None)
        _, headers, _ = await self.fetch("GET", f"{DOWNLOAD}/test.local/{media_id}",
                                         token=token)
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["application/octet-stream"])

    async def test_head_and_range(self) -> None:
        """HEAD answers headers only; one Range gets 206 with those bytes; a range past
        the end gets 416."""
        _, token = await self.register("alice")
        data = bytes(range(256)) * 4
        media_id = await self.upload(token, data, "application/octet-stream")
        path = f"{DOWNLOAD}/test.local/{media_id}"
        status, headers, body = await self.fetch("HEAD", path, token=token)
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers.getRawHeaders("Accept-Ranges"), ["bytes"])
        status, headers, body = await self.fetch("GET", path, token=token,
                                                 headers={"Range": "bytes=10-19"})
        self.assertEqual((status, body), (206, data[10:20]))
        self.assertEqual(headers.getRawHeaders("Content-Range"), [f"bytes 10-19/{len(data)}"])
        status, _, body = await self.fetch("GET", path, token=token,
                                           headers={"Range": "bytes=-5"})
        self.assertEqual((status, body), (206, data[-5:]))
        status, headers, _ = await self.fetch("GET", path, token=token,
                                              headers={"Range": "bytes=5000-"})
        self.assertEqual(status, 416)
        self.assertEqual(headers.getRawHeaders("Content-Range"), [f"bytes */{len(data)}"])

    async def test_same_bytes_distinct_ids(self) -> None:
        """Two uploads of the same bytes get different media IDs and one blob."""
        _, token = await self.register("alice")
        a = await self.upload(token, b"same bytes")
        b = await self.upload(token, b"same bytes")
        self.assertNotEqual(a, b)
        self.assertGreaterEqual(len(a), 24)
        self.assertNotIn(hashlib.sha256(b"same bytes").hexdigest()[:16], a)
        sha = hashlib.sha256(b"same bytes").hexdigest()
        self.assertEqual(await self.c["store"].media.blob_refcount(sha), 2)

    async def test_delete_one_of_two_sharing_bytes(self) -> None:
        """Deleting one media ID leaves another with the same bytes downloadable."""
        _, token = await self.register("alice")
        a = await self.upload(token, b"shared bytes")
        b = await self.upload(token, b"shared bytes")
        self.assertTrue(await self.c["media_repository"].delete_media(a))
        status, _ = await self.request("GET", f"{DOWNLOAD}/test.local/{a}", token=token)
        self.assertEqual(status, 404)
        status, _, got = await self.fetch("GET", f"{DOWNLOAD}/test.local/{b}", token=token)
        self.assertEqual((status, got), (200, b"shared bytes"))

    async def test_config(self) -> None:
        """Both config endpoints answer m.upload.size and need an access token."""
        _, token = await self.register("alice")
        for path in ("/_matrix/client/v1/media/config", "/_matrix/media/v3/config"):
            status, body = await self.request("GET", path, token=token)
            self.assertEqual((status, body), (200, {"m.upload.size": 50 * 1024 * 1024}))
            status, body = await self.request("GET", path)
            self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"))

    async def test_large_upload(self) -> None:
        """A 20 MB upload round-trips intact."""
        _, token = await self.register("alice")
        data = os.urandom(20 * 1024 * 1024)
        media_id = await self.upload(token, data, "video/mp4")
        status, _, body = await self.fetch("GET", f"{DOWNLOAD}/test.local/{media_id}",
                                           token=token)
        self.assertEqual(status, 200)
        self.assertEqual(hashlib.sha256(body).digest(), hashlib.sha256(data).digest())


class BadInputTests(MediaTestCase):
    config_overrides = {"max_upload_size": "1M"}

    async def test_too_large(self) -> None:
        """An upload past max_upload_size is 413 M_TOO_LARGE (with Content-Length and
        chunked alike), and media/config reports the limit."""
        _, token = await self.register("alice")
        status, _, body = await self.fetch("POST", UPLOAD, token=token,
                                           data=b"x" * (1024 * 1024 + 1))
        self.assertEqual(status, 413)
        self.assertIn(b"M_TOO_LARGE", body)
        from twisted.web.client import FileBodyProducer
        import io
        producer = FileBodyProducer(io.BytesIO(b"z" * (1024 * 1024 + 10)))
        producer.length = UNKNOWN_LENGTH  # the body goes chunked
        status, _, body = await self.fetch("POST", UPLOAD, token=token, data=producer)
        self.assertEqual(status, 413, body)
        status, body = await self.request("GET", "/_matrix/client/v1/media/config",
                                          token=token)
        self.assertEqual(body, {"m.upload.size": 1024 * 1024})

    async def test_chunked_upload_within_limit(self) -> None:
        """A chunked body (no Content-Length) within the limit is stored whole."""
        import io
        from twisted.web.client import FileBodyProducer
        _, token = await self.register("alice")
        data = os.urandom(500_000)
        producer = FileBodyProducer(io.BytesIO(data))
        producer.length = UNKNOWN_LENGTH
        status, _, body = await self.fetch("POST", UPLOAD, token=token, data=producer)
        self.assertEqual(status, 200, body)
        import json
        media_id = json.loads(body)["content_uri"].rsplit("/", 1)[1]
        status, _, got = await self.fetch("GET", f"{DOWNLOAD}/test.local/{media_id}",
                                          token=token)
        self.assertEqual((status, got == data), (200, True))

    async def test_unknown_media(self) -> None:
        """Unknown local media is 404; media of a server we cannot reach is 502
        M_UNKNOWN (as Synapse), never a 500."""
        _, token = await self.register("alice")
        for path in (f"{DOWNLOAD}/test.local/nosuchmedia",
                     f"{LEGACY_DOWNLOAD}/test.local/nosuchmedia"):
            status, body = await self.request("GET", path, token=token)
            self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"), path)
        status, body = await self.request("GET", f"{DOWNLOAD}/other.invalid/abc", token=token)
        self.assertEqual((status, body["errcode"]), (502, "M_UNKNOWN"))

    async def test_bad_mxc_parts(self) -> None:
        """A server name or media ID that cannot be in an mxc URI is 400."""
        _, token = await self.register("alice")
        for path in (f"{DOWNLOAD}/bad_server!/abc", f"{DOWNLOAD}/test.local/a.b",
                     f"{DOWNLOAD}/test.local/", f"{DOWNLOAD}//abc"):
            status, body = await self.request("GET", path, token=token)
            self.assertEqual((status, body["errcode"]), (400, "M_INVALID_PARAM"), path)
        status, body = await self.request("GET", f"{DOWNLOAD}/test.local/abc?timeout_ms=x",
                                          token=token)
        self.assertEqual(status, 400)

    async def test_authenticated_endpoints_need_token(self) -> None:
        """Upload, create and the v1 download answer 401 M_MISSING_TOKEN without one."""
        for method, path in (("POST", UPLOAD), ("POST", CREATE),
                             ("GET", f"{DOWNLOAD}/test.local/abc"),
                             ("PUT", "/_matrix/media/v3/upload/test.local/abc")):
            status, body = await self.request(method, path, raw=b"x")
            self.assertEqual((status, body["errcode"]), (401, "M_MISSING_TOKEN"), path)

    async def test_quarantined_is_not_found(self) -> None:
        """Quarantined media answers 404 as if unknown."""
        _, token = await self.register("alice")
        media_id = await self.upload(token, b"bad")
        self.assertTrue(await self.c["media_repository"].quarantine(media_id, "@admin:x"))
        status, body = await self.request("GET", f"{DOWNLOAD}/test.local/{media_id}",
                                          token=token)
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))


class AsyncUploadTests(MediaTestCase):
    config_overrides = {"max_pending_media_uploads": 2}

    async def create(self, token: str) -> tuple[int, Any]:
        return await self.request("POST", CREATE, token=token, raw=b"")

    async def test_create_then_put(self) -> None:
        """A created media ID takes its creator's PUT once; a second is 409."""
        _, token = await self.register("alice")
        status, body = await self.create(token)
        self.assertEqual(status, 200, body)
        now_ms = int(reactor.seconds() * 1000)
        self.assertLess(abs(body["unused_expires_at"] - (now_ms + 24 * 3600 * 1000)),
                        60_000)
        media_id = body["content_uri"].rsplit("/", 1)[1]
        path = f"/_matrix/media/v3/upload/test.local/{media_id}?filename=a.txt"
        status, body = await self.request("PUT", path, token=token, raw=b"later",
                                          headers={"Content-Type": "text/plain"})
        self.assertEqual((status, body), (200, {}))
        status, headers, got = await self.fetch(
            "GET", f"{DOWNLOAD}/test.local/{media_id}", token=token)
        self.assertEqual((status, got), (200, b"later"))
        self.assertEqual(headers.getRawHeaders("Content-Disposition"),
                         ["inline; filename=a.txt"])
        status, body = await self.request("PUT", path, token=token, raw=b"again")
        self.assertEqual((status, body["errcode"]), (409, "M_CANNOT_OVERWRITE_MEDIA"))

    async def test_put_errors(self) -> None:
        """Another user's PUT is 403, an unknown ID 404, another server's 404."""
        _, alice = await self.register("alice")
        _, bob = await self.register("bob")
        _, body = await self.create(alice)
        media_id = body["content_uri"].rsplit("/", 1)[1]
        base = "/_matrix/media/v3/upload"
        status, body = await self.request("PUT", f"{base}/test.local/{media_id}", token=bob,
                                          raw=b"x")
        self.assertEqual((status, body["errcode"]), (403, "M_FORBIDDEN"))
        status, body = await self.request("PUT", f"{base}/test.local/unknownid", token=bob,
                                          raw=b"x")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))
        status, body = await self.request("PUT", f"{base}/other.example/{media_id}",
                                          token=alice, raw=b"x")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))

    async def test_pending_limit(self) -> None:
        """Past max_pending_media_uploads empty IDs, create is 429 M_LIMIT_EXCEEDED."""
        _, token = await self.register("alice")
        for _ in range(2):
            self.assertEqual((await self.create(token))[0], 200)
        status, body = await self.create(token)
        self.assertEqual((status, body["errcode"]), (429, "M_LIMIT_EXCEEDED"))
        self.assertGreater(body["retry_after_ms"], 0)

    async def test_not_yet_uploaded(self) -> None:
        """Downloading an empty media ID waits timeout_ms, then 504 M_NOT_YET_UPLOADED."""
        _, token = await self.register("alice")
        _, body = await self.create(token)
        media_id = body["content_uri"].rsplit("/", 1)[1]
        started = reactor.seconds()
        status, body = await self.request(
            "GET", f"{DOWNLOAD}/test.local/{media_id}?timeout_ms=300", token=token)
        self.assertEqual((status, body["errcode"]), (504, "M_NOT_YET_UPLOADED"))
        self.assertGreaterEqual(reactor.seconds() - started, 0.25)

    async def test_waiting_download_gets_bytes(self) -> None:
        """A download waiting on an empty ID answers as soon as the PUT lands."""
        from twisted.internet import defer, task
        _, token = await self.register("alice")
        _, body = await self.create(token)
        media_id = body["content_uri"].rsplit("/", 1)[1]
        waiting = defer.ensureDeferred(self.fetch(
            "GET", f"{DOWNLOAD}/test.local/{media_id}?timeout_ms=10000", token=token))
        await task.deferLater(reactor, 0.2, lambda: None)
        self.assertFalse(waiting.called)
        status, _ = await self.request(
            "PUT", f"/_matrix/media/v3/upload/test.local/{media_id}", token=token,
            raw=b"arrived")
        self.assertEqual(status, 200)
        status, _, got = await waiting
        self.assertEqual((status, got), (200, b"arrived"))


class LegacyEndpointTests(MediaTestCase):
    async def test_authenticated_media_not_on_legacy(self) -> None:
        """With enable_authenticated_media on (the default), new media answers 404 on
        the legacy unauthenticated download (Synapse's semantics)."""
        _, token = await self.register("alice")
        media_id = await self.upload(token, b"secret")
        status, body = await self.request("GET", f"{LEGACY_DOWNLOAD}/test.local/{media_id}")
        self.assertEqual((status, body["errcode"]), (404, "M_NOT_FOUND"))


class LegacyEnabledTests(MediaTestCase):
    config_overrides = {"enable_authenticated_media": False}

    async def test_legacy_download_without_token(self) -> None:
        """With enable_authenticated_media off, the legacy download serves media
        without an access token; the v1 endpoint still needs one."""
        _, token = await self.register("alice")
        media_id = await self.upload(token, b"public")
        status, _, got = await self.fetch("GET", f"{LEGACY_DOWNLOAD}/test.local/{media_id}")
        self.assertEqual((status, got), (200, b"public"))
        status, _, got = await self.fetch(
            "GET", f"/_matrix/media/r0/download/test.local/{media_id}/n.txt")
        self.assertEqual((status, got), (200, b"public"))
        status, body = await self.request("GET", f"{DOWNLOAD}/test.local/{media_id}")
        self.assertEqual(status, 401)


class RestartTests(MediaTestCase):
    async def test_media_survives_restart(self) -> None:
        """Media stays downloadable after the server stops and starts on the same data."""
        from homeserver.app import build_service
        _, token = await self.register("alice")
        media_id = await self.upload(token, b"durable bytes")
        old = self.hs
        await old.stopService()
        # the harness's cleanup stops the old tree again: leave it nothing to stop twice
        for child in list(old):
            child.disownServiceParent()
        self.hs = build_service(self.config, reactor)
        self.hs.startService()
        self.addCleanup(self.hs.stopService)
        status, _, got = await self.fetch("GET", f"{DOWNLOAD}/test.local/{media_id}",
                                          token=token)
        self.assertEqual((status, got), (200, b"durable bytes"))
