"""The federation media endpoints over real HTTP with signed requests: multipart
answers parsed back with our own reader, 401 unsigned, 404 for what is not ours."""

from __future__ import annotations

import io
import json

from PIL import Image

from federation import xmatrix
from homeserver.crypto.signing import SigningKey, sign_json
from homeserver.store.server_keys import ServerKey
from media_repo.multipart import (
    MultipartReader, PartData, PartEnd, PartStart, boundary_of, filename_from_disposition,
)
from tests.media_repo.test_resources import MediaTestCase

REMOTE = SigningKey.from_seed("r1", b"\x05" * 32)
FAR = 2 ** 50
PREFIX = "/_matrix/federation/v1/media"


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def parts(content_type: str, body: bytes) -> list[tuple[dict, bytes]]:
    """The (headers, bytes) of each part of a multipart/mixed body."""
    reader = MultipartReader(boundary_of(content_type))
    found: list[tuple[dict, bytes]] = []
    for event in reader.feed(body):
        if isinstance(event, PartStart):
            found.append((event.headers, b""))
        elif isinstance(event, PartData):
            found[-1] = (found[-1][0], found[-1][1] + event.data)
    reader.close()
    return found


class FederationMediaTests(MediaTestCase):
    config_overrides = {"trusted_key_servers": []}

    def setUp(self):
        super().setUp()
        body = sign_json({"server_name": "remote.example", "valid_until_ts": FAR,
                          "verify_keys": {REMOTE.key_id: {"key": REMOTE.verify_key_base64}},
                          "old_verify_keys": {}}, "remote.example", REMOTE)
        return self.c["store"].server_keys.store_server_keys([ServerKey(
            "remote.example", REMOTE.key_id, REMOTE.verify_key_base64, FAR, None,
            json.dumps(body).encode())])

    async def signed_get(self, path: str) -> tuple[int, object, bytes]:
        [header] = xmatrix.sign_request([REMOTE], method="GET", uri=path,
                                        origin="remote.example", destination="test.local")
        return await self.fetch("GET", path, headers={"Authorization": header})

    def content_type(self, headers) -> str:
        return headers.getRawHeaders(b"Content-Type")[0].decode()

    async def test_download_is_multipart(self):
        """A signed download gets {} then the bytes with their type and file name."""
        _, token = await self.register("alice")
        data = bytes(range(256)) * 500  # several producer chunks
        media_id = await self.upload(token, data, "application/pdf", "doc.pdf")
        status, headers, body = await self.signed_get(f"{PREFIX}/download/{media_id}")
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(self.last_length, len(body))
        [(meta_headers, meta), (file_headers, got)] = parts(self.content_type(headers), body)
        self.assertEqual(meta_headers["content-type"], "application/json")
        self.assertEqual(json.loads(meta), {})
        self.assertEqual(got, data)
        self.assertEqual(file_headers["content-type"], "application/pdf")
        self.assertEqual(filename_from_disposition(file_headers["content-disposition"]),
                         "doc.pdf")

    async def test_thumbnail_is_multipart(self):
        """A signed thumbnail request gets {} then an image of the asked size."""
        _, token = await self.register("alice")
        media_id = await self.upload(token, png(800, 600), "image/png")
        status, headers, body = await self.signed_get(
            f"{PREFIX}/thumbnail/{media_id}?width=96&height=96&method=crop")
        self.assertEqual(status, 200, body[:200])
        [_, (file_headers, got)] = parts(self.content_type(headers), body)
        self.assertTrue(file_headers["content-type"].startswith("image/"))
        self.assertEqual(Image.open(io.BytesIO(got)).size, (96, 96))

    async def test_errors(self):
        """Unsigned 401; unknown, quarantined or malformed 404/400; a thumbnail of a
        non-image the client endpoint's 400; bad width 400."""
        _, token = await self.register("alice")
        text_id = await self.upload(token, b"just text", "text/plain")
        status, _, body = await self.fetch("GET", f"{PREFIX}/download/{text_id}")
        self.assertEqual((status, json.loads(body)["errcode"]), (401, "M_UNAUTHORIZED"))
        status, _, body = await self.signed_get(f"{PREFIX}/download/nosuchmedia")
        self.assertEqual((status, json.loads(body)["errcode"]), (404, "M_NOT_FOUND"))
        status, _, body = await self.signed_get(f"{PREFIX}/download/bad%21id")
        self.assertEqual((status, json.loads(body)["errcode"]), (400, "M_INVALID_PARAM"))
        status, _, body = await self.signed_get(
            f"{PREFIX}/thumbnail/{text_id}?width=32&height=32")
        client_status, _, client_body = await self.fetch(
            "GET", f"/_matrix/client/v1/media/thumbnail/test.local/{text_id}"
                   "?width=32&height=32", token=token)
        self.assertEqual((status, json.loads(body)["errcode"]),
                         (client_status, json.loads(client_body)["errcode"]))
        self.assertEqual(status, 400)
        status, _, body = await self.signed_get(f"{PREFIX}/thumbnail/{text_id}?width=0&height=3")
        self.assertEqual((status, json.loads(body)["errcode"]), (400, "M_INVALID_PARAM"))
        await self.c["media_repository"].quarantine(text_id, "@admin:test.local")
        status, _, body = await self.signed_get(f"{PREFIX}/download/{text_id}")
        self.assertEqual((status, json.loads(body)["errcode"]), (404, "M_NOT_FOUND"))

    async def test_cached_remote_media_is_not_passed_on(self):
        """Media we cached from another server is not ours to serve: 404."""
        from homeserver.store.media import RemoteMedia

        repo = self.c["media_repository"]
        staged = await repo.blobs.stage(io.BytesIO(b"theirs"))
        await repo.blobs.commit(staged)
        await self.c["store"].media.add_remote(RemoteMedia(
            origin="remote.example", media_id="theirid", sha256=staged.sha256,
            content_type="text/plain", upload_name=None, size=staged.size, created_ts=1,
            last_access_ts=1, quarantined_by=None, authenticated=True))
        status, _, body = await self.signed_get(f"{PREFIX}/download/theirid")
        self.assertEqual((status, json.loads(body)["errcode"]), (404, "M_NOT_FOUND"))
