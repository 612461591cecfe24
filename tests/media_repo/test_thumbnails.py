"""Thumbnails over real HTTP (spec: Client-Server API, "Thumbnails"): defaults made
after upload, on-demand renders, sharing by source blob, WebP only when accepted."""

from __future__ import annotations

import io
import os

from PIL import Image

from tests.media_repo.test_resources import MediaTestCase

THUMB = "/_matrix/client/v1/media/thumbnail/test.local"


def png(width: int, height: int, colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 64), (i * 80, 0, 0)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100,
                   loop=0)
    return out.getvalue()


class ThumbnailTests(MediaTestCase):
    async def setUp(self) -> None:
        super().setUp()
        _, self.token = await self.register("alice")

    async def upload_image(self, data: bytes, content_type: str = "image/png") -> str:
        media_id = await self.upload(self.token, data, content_type)
        await self.c["thumbnails"].wait_idle()
        return media_id

    async def thumb(self, media_id: str, query: str, accept: str | None = None):
        headers = {"Accept": accept} if accept else {}
        return await self.fetch("GET", f"{THUMB}/{media_id}?{query}", token=self.token,
                                headers=headers)

    async def rows(self, data: bytes):
        import hashlib
        return await self.c["store"].media.thumbnails_of(hashlib.sha256(data).hexdigest())

    async def test_defaults_after_upload(self) -> None:
        """An image upload gets the spec's five default sizes in the background."""
        data = png(1000, 800)
        await self.upload_image(data)
        got = sorted((t.width, t.height, t.method, t.content_type) for t in await self.rows(data))
        self.assertEqual(got, sorted([(32, 32, "crop", "image/png"), (96, 96, "crop", "image/png"),
                                      (320, 240, "scale", "image/png"),
                                      (640, 480, "scale", "image/png"),
                                      (800, 600, "scale", "image/png")]))

    async def test_crop_and_scale(self) -> None:
        """crop returns exactly the box; scale keeps the aspect ratio within it."""
        media_id = await self.upload_image(png(1000, 800))
        status, headers, body = await self.thumb(media_id, "width=32&height=32&method=crop")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["image/png"])
        self.assertEqual(Image.open(io.BytesIO(body)).size, (32, 32))
        self.assertEqual(headers.getRawHeaders("Cache-Control"),
                         ["public, max-age=31536000, immutable"])
        status, _, body = await self.thumb(media_id, "width=320&height=240&method=scale")
        self.assertEqual(Image.open(io.BytesIO(body)).size, (300, 240))

    async def test_on_demand_is_stored_once(self) -> None:
        """A size nothing stored fits is rendered, stored, and reused."""
        data = png(1000, 800)
        media_id = await self.upload_image(data)
        before = len(await self.rows(data))
        status, _, first = await self.thumb(media_id, "width=900&height=900&method=crop")
        self.assertEqual(status, 200)
        self.assertEqual(Image.open(io.BytesIO(first)).size, (800, 800))  # no upscaling
        self.assertEqual(len(await self.rows(data)), before + 1)
        _, _, again = await self.thumb(media_id, "width=900&height=900&method=crop")
        self.assertEqual((again, len(await self.rows(data))), (first, before + 1))

    async def test_source_no_larger_than_asked(self) -> None:
        """A PNG no larger than the box re-encodes to its own bytes; the answer is then
        the source itself (it used to be 400 "Cannot generate thumbnails")."""
        data = png(640, 400)
        media_id = await self.upload_image(data)
        status, headers, body = await self.thumb(media_id, "width=800&height=600&method=scale")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["image/png"])
        self.assertEqual(Image.open(io.BytesIO(body)).size, (640, 400))

    async def test_stored_size_serves_smaller_requests(self) -> None:
        """A request smaller than a stored size is answered from it, not rendered."""
        data = png(1000, 800)
        media_id = await self.upload_image(data)
        before = len(await self.rows(data))
        status, _, body = await self.thumb(media_id, "width=300&height=200&method=scale")
        self.assertEqual(status, 200)
        self.assertEqual(Image.open(io.BytesIO(body)).size, (300, 240))
        self.assertEqual(len(await self.rows(data)), before)

    async def test_webp_only_when_accepted(self) -> None:
        """An on-demand thumbnail is WebP only if Accept lists image/webp."""
        media_id = await self.upload_image(png(1000, 800))
        _, headers, _ = await self.thumb(media_id, "width=200&height=200&method=crop",
                                         accept="image/webp,*/*")
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["image/webp"])
        _, headers, _ = await self.thumb(media_id, "width=200&height=200&method=crop",
                                         accept="image/png,*/*")
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["image/png"])

    async def test_shared_by_source_bytes(self) -> None:
        """Two media IDs with the same bytes share thumbnails; deleting one keeps
        them, deleting both removes them."""
        data = png(400, 300, (1, 2, 3))
        first = await self.upload_image(data)
        rows = await self.rows(data)
        second = await self.upload_image(data)
        self.assertEqual(await self.rows(data), rows)
        repo = self.c["media_repository"]
        await repo.delete_media(first)
        status, _, _ = await self.thumb(second, "width=32&height=32&method=crop")
        self.assertEqual(status, 200)
        await repo.delete_media(second)
        self.assertEqual(await self.rows(data), [])
        for t in rows:
            self.assertFalse(await repo.blobs.exists(t.thumbnail_sha256))

    async def test_animated(self) -> None:
        """animated=true on an animated GIF gives an animated GIF (no WebP accepted);
        without it the thumbnail is still."""
        media_id = await self.upload_image(animated_gif(), "image/gif")
        status, headers, body = await self.thumb(
            media_id, "width=32&height=32&method=crop&animated=true")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.getRawHeaders("Content-Type"), ["image/gif"])
        self.assertTrue(getattr(Image.open(io.BytesIO(body)), "is_animated", False))
        _, _, body = await self.thumb(media_id, "width=32&height=32&method=crop")
        self.assertFalse(getattr(Image.open(io.BytesIO(body)), "is_animated", False))

    async def test_not_an_image(self) -> None:
        """Thumbnails of a non-image (or a broken image) are 400 M_UNKNOWN."""
        for data, ctype in ((b"plain text", "text/plain"), (os.urandom(100), "image/png")):
            media_id = await self.upload_image(data, ctype)
            status, _, body = await self.thumb(media_id, "width=32&height=32")
            self.assertEqual(status, 400, body)
            self.assertIn(b"M_UNKNOWN", body)

    async def test_bad_parameters(self) -> None:
        """Missing or bad width/height/method/animated are 400; unknown media 404."""
        media_id = await self.upload_image(png(100, 100))
        for query, code in (("height=32", b"M_MISSING_PARAM"),
                            ("width=x&height=32", b"M_INVALID_PARAM"),
                            ("width=0&height=32", b"M_INVALID_PARAM"),
                            ("width=32&height=32&method=zoom", b"M_INVALID_PARAM"),
                            ("width=32&height=32&animated=maybe", b"M_INVALID_PARAM")):
            status, _, body = await self.thumb(media_id, query)
            self.assertEqual(status, 400, query)
            self.assertIn(code, body)
        status, _, _ = await self.thumb("unknownmedia", "width=32&height=32")
        self.assertEqual(status, 404)
        status, _, body = await self.fetch(
            "GET", f"/_matrix/media/v3/thumbnail/test.local/{media_id}?width=32&height=32")
        self.assertEqual(status, 404, body)  # authenticated media: not on legacy
        status, _, body = await self.fetch(
            "GET", f"{THUMB}/{media_id}?width=32&height=32")
        self.assertEqual(status, 401, body)
