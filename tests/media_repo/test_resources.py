"""The content repository's endpoints over real HTTP (spec: Client-Server API,
"Content repository"), against the whole service tree."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from twisted.internet import reactor

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
