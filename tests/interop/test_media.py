"""Media over federation against a real Synapse on loopback (spec: Server-Server API,
"Content Repository"; Matrix 1.11 authenticated media).

Shows that we fetch Synapse's media over its federation endpoint (signed, multipart)
and cache it, that Synapse fetches ours from our endpoint and reads our multipart
answer, that thumbnails work both ways, and that unknown media is 404 both ways.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import sqlite3
import urllib.error
import urllib.request

from PIL import Image
from twisted.internet import reactor
from twisted.trial import unittest

from federation.client import build_federation_client, read_body
from homeserver.crypto.signing import read_signing_keys
from homeserver.http.outbound import AddressPolicy
from media_repo.multipart import (
    MultipartReader, PartData, PartStart, boundary_of, filename_from_disposition,
)
from tests.interop.synapse import LOOPBACK, Federation


def png(width: int, height: int, colour=(30, 90, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def http(method: str, url: str, data: bytes | None = None, token: str | None = None,
         content_type: str | None = None) -> tuple[int, dict, bytes]:
    """A blocking request: (status, headers, body bytes)."""
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class MediaInteropTest(unittest.TestCase):
    timeout = 300

    def setUp(self):
        self.fed = Federation.get()
        self.syn = self.fed.synapse
        self.ours = self.fed.ours
        # registered by the first test; later ones just log in
        self.syn.sh("register", "mediauser", "media-password", check=False)
        self.syn_token = self.syn.login("mediauser", "media-password")
        self.our_token = self._our_user("mediafan", "fan-password")

    def _our_user(self, user: str, password: str) -> str:
        status, body = self.ours.request("POST", "/_matrix/client/v3/register", {
            "username": user, "password": password, "auth": {"type": "m.login.dummy"}})
        if status == 400 and body.get("errcode") == "M_USER_IN_USE":
            status, body = self.ours.request("POST", "/_matrix/client/v3/login", {
                "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                "password": password})
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def _upload(self, base_url: str, token: str, data: bytes, content_type: str,
                filename: str) -> str:
        status, _, body = http("POST", f"{base_url}/_matrix/media/v3/upload?filename={filename}",
                               data, token, content_type)
        self.assertEqual(status, 200, body)
        uri = json.loads(body)["content_uri"]
        server_name, media_id = uri[len("mxc://"):].split("/")
        return media_id

    def _remote_cache_row(self, origin: str, media_id: str):
        [db] = [p for p in glob.glob(os.path.join(self.ours.data_dir, "*.db"))]
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT sha256, content_type, upload_name, size, last_access_ts "
                "FROM remote_media_cache WHERE origin = ? AND media_id = ?",
                (origin, media_id)).fetchone()

    def _blob_on_disk(self, sha256: str) -> bool:
        return any(sha256 in files for _, _, files in os.walk(self.ours.data_dir))

    def test_we_fetch_synapse_media(self):
        """A Synapse upload downloads byte-identical through our client API, is cached
        (row + blob on disk) and served again from the cache after Synapse deleted
        it; our thumbnails of it have the asked size."""
        data = png(640, 480)
        media_id = self._upload(self.syn.base_url, self.syn_token, data, "image/png",
                                "photo.png")
        path = f"/_matrix/client/v1/media/download/{self.syn.server_name}/{media_id}"
        status, headers, body = http("GET", self.ours.base_url + path, token=self.our_token)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, data)
        self.assertEqual(headers.get("Content-Type"), "image/png")
        self.assertIn("photo.png", headers.get("Content-Disposition", ""))
        row = self._remote_cache_row(self.syn.server_name, media_id)
        self.assertIsNotNone(row)
        sha256, content_type, upload_name, size, first_access = row
        self.assertEqual((sha256, content_type, upload_name, size),
                         (hashlib.sha256(data).hexdigest(), "image/png", "photo.png",
                          len(data)))
        self.assertTrue(self._blob_on_disk(sha256))
        # delete it on Synapse: the second download can only come from our cache
        self.syn.sh("register", "mediaadmin", "admin-password", "admin", check=False)
        admin = self.syn.login("mediaadmin", "admin-password")
        status, body = self.syn.request(
            "DELETE", f"/_synapse/admin/v1/media/{self.syn.server_name}/{media_id}",
            token=admin)
        self.assertEqual(status, 200, body)
        status, _, _ = http("GET", f"{self.syn.base_url}/_matrix/client/v1/media/download/"
                                   f"{self.syn.server_name}/{media_id}", token=self.syn_token)
        self.assertEqual(status, 404)
        status, _, again = http("GET", self.ours.base_url + path, token=self.our_token)
        self.assertEqual((status, again), (200, data))
        self.assertGreaterEqual(self._remote_cache_row(self.syn.server_name, media_id)[4],
                                first_access)
        for query, size in (("width=96&height=96&method=crop", (96, 96)),
                            ("width=320&height=240&method=scale", (320, 240))):
            status, headers, thumb = http(
                "GET", f"{self.ours.base_url}/_matrix/client/v1/media/thumbnail/"
                       f"{self.syn.server_name}/{media_id}?{query}", token=self.our_token)
            self.assertEqual(status, 200, thumb[:300])
            self.assertEqual(Image.open(io.BytesIO(thumb)).size, size)

    def test_synapse_fetches_our_media(self):
        """Our user's upload downloads byte-identical through Synapse's client API
        (Synapse read our multipart answer), and Synapse serves a thumbnail of it."""
        data = os.urandom(200_000)
        media_id = self._upload(self.ours.base_url, self.our_token, data,
                                "application/octet-stream", "blob.bin")
        status, _, body = http(
            "GET", f"{self.syn.base_url}/_matrix/client/v1/media/download/"
                   f"{self.fed.our_name}/{media_id}", token=self.syn_token)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, data)
        image = png(800, 600, (200, 40, 40))
        image_id = self._upload(self.ours.base_url, self.our_token, image, "image/png",
                                "red.png")
        status, headers, thumb = http(
            "GET", f"{self.syn.base_url}/_matrix/client/v1/media/thumbnail/"
                   f"{self.fed.our_name}/{image_id}?width=96&height=96&method=crop",
            token=self.syn_token)
        self.assertEqual(status, 200, thumb[:300])
        self.assertTrue(headers.get("Content-Type", "").startswith("image/"), headers)
        self.assertEqual(Image.open(io.BytesIO(thumb)).size, (96, 96))
        status, _, body = http(
            "GET", f"{self.syn.base_url}/_matrix/client/v1/media/download/"
                   f"{self.fed.our_name}/{image_id}", token=self.syn_token)
        self.assertEqual((status, body), (200, image))

    def test_unknown_media_both_ways(self):
        """Media neither server has is 404 M_NOT_FOUND through either server."""
        status, _, body = http(
            "GET", f"{self.ours.base_url}/_matrix/client/v1/media/download/"
                   f"{self.syn.server_name}/nosuchmediaid", token=self.our_token)
        self.assertEqual((status, json.loads(body)["errcode"]), (404, "M_NOT_FOUND"))
        self.assertIsNone(self._remote_cache_row(self.syn.server_name, "nosuchmediaid"))
        status, _, body = http(
            "GET", f"{self.syn.base_url}/_matrix/client/v1/media/download/"
                   f"{self.fed.our_name}/nosuchmediaid", token=self.syn_token)
        self.assertEqual((status, json.loads(body)["errcode"]), (404, "M_NOT_FOUND"))

    async def test_our_reader_parses_synapse_multipart(self):
        """Synapse's own federation download answer, fetched with our signed client,
        parses with our multipart reader: {} then the bytes, type and file name."""
        data = b"plain text from synapse\r\n--not a boundary\r\n" * 100
        media_id = self._upload(self.syn.base_url, self.syn_token, data, "text/plain",
                                "notes.txt")
        client = build_federation_client(
            reactor=reactor, server_name=self.fed.our_name,
            signing_keys=read_signing_keys(self.fed.signing_keys_path()),
            verify_certificates=True, custom_ca_paths=[self.fed.ca_path],
            address_policy=AddressPolicy(whitelist=LOOPBACK))
        self.addCleanup(client.close)
        response = await client.get_response(
            self.syn.server_name, f"/_matrix/federation/v1/media/download/{media_id}")
        [content_type] = response.headers.getRawHeaders(b"Content-Type")
        reader = MultipartReader(boundary_of(content_type.decode()))
        parts: list[list] = []
        for event in reader.feed(await read_body(response, 10 * 1024 * 1024)):
            if isinstance(event, PartStart):
                parts.append([event.headers, b""])
            elif isinstance(event, PartData):
                parts[-1][1] += event.data
        reader.close()
        [(_, metadata), (headers, got)] = parts
        self.assertEqual(json.loads(metadata), {})
        self.assertEqual(got, data)
        self.assertTrue(headers["content-type"].startswith("text/plain"), headers)
        self.assertEqual(filename_from_disposition(headers.get("content-disposition")),
                         "notes.txt")
