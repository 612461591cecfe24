"""End to end: the media repository through matrix-nio against the real server process.

Uploads and downloads round-trip byte-identical (plain and nio's encrypted attachments),
thumbnails come in the requested sizes and types, identical uploads share one blob on
disk, media survive a restart, and a kill -9 in the middle of an upload leaves no half
blob anywhere a download could find it (issue 13, "Proof").
"""

from __future__ import annotations

import hashlib
import io
import os
import socket

import nio
from PIL import Image

from tests.e2e.harness import as_deferred
from tests.e2e.nio_case import NioServerTestCase


def _png(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata([(x % 256, y % 256, (x * y) % 256) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _blob_files(media_root: str) -> list[str]:
    """Every file under the media store whose name is a SHA-256: the stored blobs."""
    found = []
    for directory, _dirs, files in os.walk(media_root):
        for name in files:
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                found.append(os.path.join(directory, name))
    return found


class NioMedia(NioServerTestCase):
    timeout = 240

    @property
    def media_root(self) -> str:
        return os.path.join(self.server.data_dir, "media_store")

    async def _user(self, name: str) -> nio.AsyncClient:
        client = self.client(name)
        await self._ok(client.register(name, name + "-password"), nio.RegisterResponse)
        return client

    async def _upload(self, client, data: bytes, content_type: str, filename: str,
                      encrypt: bool = False):
        resp, keys = await client.upload(lambda *_: io.BytesIO(data), content_type=content_type,
                                         filename=filename, filesize=len(data), encrypt=encrypt)
        self.assertIsInstance(resp, nio.UploadResponse, f"{resp!r}")
        return resp.content_uri, keys

    async def _download(self, client, mxc: str):
        server_name, media_id = mxc[len("mxc://"):].split("/")
        return await self._ok(client.download(server_name=server_name, media_id=media_id),
                              nio.DownloadResponse)

    def test_round_trips_and_thumbnails(self):
        """A PNG and an encrypted attachment come back byte-identical for another user;
        crop and scale thumbnails have the requested sizes and an image type."""
        return as_deferred(self._round_trips())

    async def _round_trips(self):
        alice, bob = await self._user("alice"), await self._user("bob")
        png = _png(640, 400)
        mxc, _ = await self._upload(alice, png, "image/png", "picture.png")
        self.assertTrue(mxc.startswith("mxc://localhost/"), mxc)
        got = await self._download(bob, mxc)
        self.assertEqual(got.body, png)
        self.assertEqual(got.content_type, "image/png")
        self.assertEqual(got.filename, "picture.png")

        server_name, media_id = mxc[len("mxc://"):].split("/")
        for width, height, method, expected in ((32, 32, "crop", (32, 32)),
                                                (96, 96, "crop", (96, 96)),
                                                (320, 240, "scale", (320, 200)),
                                                (800, 600, "scale", (640, 400))):
            thumb = await self._ok(bob.thumbnail(server_name, media_id, width, height,
                                                 nio.ResizingMethod(method)),
                                   nio.ThumbnailResponse)
            self.assertIn(thumb.content_type, ("image/png", "image/jpeg"), (width, method))
            self.assertEqual(Image.open(io.BytesIO(thumb.body)).size, expected,
                             (width, height, method))

        # nio encrypts client side; the server stores and returns ciphertext untouched
        secret = os.urandom(300_000)
        mxc, keys = await self._upload(alice, secret, "application/octet-stream",
                                       "secret.bin", encrypt=True)
        got = await self._download(bob, mxc)
        self.assertNotEqual(got.body, secret)
        plain = nio.crypto.attachments.decrypt_attachment(
            got.body, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"])
        self.assertEqual(plain, secret)

    def test_identical_uploads_share_one_blob(self):
        """The same bytes uploaded 100 times get 100 media IDs and occupy one blob."""
        return as_deferred(self._dedup())

    async def _dedup(self):
        alice = await self._user("alice")
        data = os.urandom(50_000)
        uris = set()
        for i in range(100):
            mxc, _ = await self._upload(alice, data, "application/octet-stream", f"copy{i}.bin")
            uris.add(mxc)
        self.assertEqual(len(uris), 100)
        digest = hashlib.sha256(data).hexdigest()
        blobs = _blob_files(self.media_root)
        self.assertEqual([os.path.basename(b) for b in blobs], [digest])
        got = await self._download(alice, sorted(uris)[42])
        self.assertEqual(got.body, data)

    def test_deleting_one_of_two_identical_uploads(self):
        """An admin deletes one of two media IDs holding the same bytes: the other still
        downloads, and the blob goes only with the last of them."""
        return as_deferred(self._delete_shared())

    def _admin_token(self) -> str:
        """Register an admin through Synapse's shared-secret endpoint, as an operator's
        register_new_matrix_user does."""
        import hmac

        import yaml

        with open(self.server.config_path) as f:
            secret = yaml.safe_load(f)["registration_shared_secret"]
        _, body = self.server.request("GET", "/_synapse/admin/v1/register")
        nonce = body["nonce"]
        mac = hmac.new(secret.encode(), b"\0".join(
            [nonce.encode(), b"root", b"root-password", b"admin"]), "sha1").hexdigest()
        status, body = self.server.request("POST", "/_synapse/admin/v1/register", {
            "nonce": nonce, "username": "root", "password": "root-password",
            "admin": True, "mac": mac})
        self.assertEqual(status, 200, body)
        return body["access_token"]

    async def _delete_shared(self):
        alice = await self._user("alice")
        data = os.urandom(120_000)
        first, _ = await self._upload(alice, data, "application/octet-stream", "one.bin")
        second, _ = await self._upload(alice, data, "application/octet-stream", "two.bin")
        admin = self._admin_token()
        status, body = self.server.request(
            "DELETE", "/_synapse/admin/v1/media/localhost/" + first.rsplit("/", 1)[1],
            token=admin)
        self.assertEqual((status, body["total"]), (200, 1), body)
        server_name, media_id = first[len("mxc://"):].split("/")
        gone = await alice.download(server_name=server_name, media_id=media_id)
        self.assertIsInstance(gone, nio.DownloadError)
        got = await self._download(alice, second)
        self.assertEqual(got.body, data)
        self.assertEqual(len(_blob_files(self.media_root)), 1)
        status, _ = self.server.request(
            "DELETE", "/_synapse/admin/v1/media/localhost/" + second.rsplit("/", 1)[1],
            token=admin)
        self.assertEqual(status, 200)
        self.assertEqual(_blob_files(self.media_root), [])

    def test_restart_and_kill_mid_upload(self):
        """Media survive a restart; a kill -9 during an upload leaves no blob of the
        partial bytes and the server answers 404 for nothing and serves the rest."""
        return as_deferred(self._restart())

    async def _restart(self):
        alice = await self._user("alice")
        data = os.urandom(200_000)
        mxc, _ = await self._upload(alice, data, "application/octet-stream", "keep.bin")

        # half of a 10 MB upload, then the process dies
        partial = os.urandom(5_000_000)
        sock = socket.create_connection(("127.0.0.1", self.server.port))
        sock.sendall(b"POST /_matrix/media/v3/upload?filename=big.bin HTTP/1.1\r\n"
                     b"Host: localhost\r\nContent-Type: application/octet-stream\r\n"
                     + f"Authorization: Bearer {alice.access_token}\r\n".encode()
                     + b"Content-Length: 10000000\r\n\r\n" + partial)
        self.server.kill()
        sock.close()
        self.server.start()

        blobs = [os.path.basename(b) for b in _blob_files(self.media_root)]
        self.assertEqual(blobs, [hashlib.sha256(data).hexdigest()])
        got = await self._download(alice, mxc)
        self.assertEqual(got.body, data)

    def test_bad_input(self):
        """Bad media requests get the spec's error codes, never a 500."""
        return as_deferred(self._bad_input())

    async def _bad_input(self):
        alice = await self._user("alice")
        token = alice.access_token
        req = self.server.request
        mxc, _ = await self._upload(alice, b"not an image at all", "text/plain", "a.txt")
        media_id = mxc.rsplit("/", 1)[1]

        cases = [
            # (method, path, token, raw body, headers, status, errcode)
            ("GET", f"/_matrix/client/v1/media/download/localhost/{media_id}", None, None, {},
             401, "M_MISSING_TOKEN"),
            ("GET", "/_matrix/client/v1/media/download/localhost/nosuchmedia", token, None, {},
             404, "M_NOT_FOUND"),
            ("GET", f"/_matrix/client/v1/media/thumbnail/localhost/{media_id}"
             "?width=32&height=32&method=crop", token, None, {}, 400, None),
            ("GET", f"/_matrix/client/v1/media/thumbnail/localhost/{media_id}"
             "?width=abc&height=32", token, None, {}, 400, None),
            ("POST", "/_matrix/media/v3/upload", None, b"x", {}, 401, "M_MISSING_TOKEN"),
            ("PUT", f"/_matrix/media/v3/upload/localhost/{media_id}", token, b"x", {},
             409, "M_CANNOT_OVERWRITE_MEDIA"),
            ("PUT", "/_matrix/media/v3/upload/localhost/nosuchmedia", token, b"x", {},
             404, "M_NOT_FOUND"),
        ]
        for method, path, tok, raw, headers, status, errcode in cases:
            got_status, body = req(method, path, token=tok, raw=raw,
                                   headers={"Content-Type": "application/octet-stream", **headers})
            self.assertEqual(got_status, status, (method, path, body))
            self.assertIsInstance(body, dict, (method, path, body))
            self.assertIn("errcode", body, (method, path))
            if errcode is not None:
                self.assertEqual(body["errcode"], errcode, (method, path, body))

        status, config = req("GET", "/_matrix/client/v1/media/config", token=token)
        self.assertEqual(status, 200)
        limit = config["m.upload.size"]
        status, body = req("POST", "/_matrix/media/v3/upload", token=token,
                           raw=b"\0" * (limit + 1))
        self.assertEqual((status, body["errcode"]), (413, "M_TOO_LARGE"))
