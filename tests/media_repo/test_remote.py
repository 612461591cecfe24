"""FederationMediaFetcher with a fake federation client, over a real (SQLite) store,
a LocalBlobStore on a temp dir and a real MediaRepository."""

from __future__ import annotations

import hashlib
import tempfile

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from federation.client import RemoteHttpError, RemoteUnreachable
from homeserver.errors import NotFound
from media_repo.cas import LocalBlobStore
from media_repo.remote import FederationMediaFetcher, RemoteMediaFailed, RemoteMediaTooLarge
from media_repo.repository import MediaRepository
from tests.store.backends import SQLiteBackend, StoreTests

ORIGIN = "remote.example"
BOUNDARY = b"b0undary"


def multipart(data: bytes, content_type: bytes = b"image/png",
              extra: bytes = b"Content-Disposition: inline; filename=cat.png\r\n",
              metadata: bytes = b"{}") -> bytes:
    return (b"\r\n--" + BOUNDARY + b"\r\nContent-Type: application/json\r\n\r\n" + metadata
            + b"\r\n--" + BOUNDARY + b"\r\nContent-Type: " + content_type + b"\r\n" + extra
            + b"\r\n" + data + b"\r\n--" + BOUNDARY + b"--\r\n")


class _Transport:
    def __init__(self) -> None:
        self.stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class FakeResponse:
    """An IResponse delivering ``body`` in ``chunk``-sized pieces."""

    def __init__(self, body: bytes, headers: dict[bytes, bytes], *, code: int = 200,
                 chunk: int = 5, truncated: bool = False) -> None:
        self.code, self.body, self.chunk, self.truncated = code, body, chunk, truncated
        self.headers = Headers({k: [v] for k, v in headers.items()})
        self.length = len(body)
        self.transport = _Transport()

    def deliverBody(self, proto) -> None:
        proto.makeConnection(self.transport)
        for i in range(0, len(self.body), self.chunk):
            if self.transport.stopped:
                return
            proto.dataReceived(self.body[i:i + self.chunk])
        if self.transport.stopped:
            return
        reason = ConnectionError("lost") if self.truncated else ResponseDone()
        proto.connectionLost(Failure(reason))


class FakeFederationClient:
    """Answers ``get_response`` from a dict of path → response or exception."""

    def __init__(self) -> None:
        self.answers: dict[str, object] = {}
        self.calls: list[tuple[str, str, dict]] = []
        self.gate: defer.Deferred | None = None

    async def get_response(self, destination, path, args=None, *, timeout=None):
        self.calls.append((destination, path, dict(args or {})))
        if self.gate is not None:
            await self.gate
        answer = self.answers.get(path)
        if answer is None:
            raise RemoteHttpError(destination, 404, b'{"errcode":"M_NOT_FOUND"}')
        if isinstance(answer, Exception):
            raise answer
        return answer


FED = "/_matrix/federation/v1/media/download/"
LEGACY = "/_matrix/media/v3/download/remote.example/"


class FetcherTests(StoreTests, unittest.TestCase):
    backend_class = SQLiteBackend
    _shared = None

    def setUp(self) -> None:
        super().setUp()
        self.blobs = LocalBlobStore(tempfile.mkdtemp(prefix="remote-media-test-"))
        self.blobs.prepare()
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.client = FakeFederationClient()
        self.repo = MediaRepository(store=self.store.media, blobs=self.blobs,
                                    server_name="test.local", clock=self.clock,
                                    now_ms=self.now_ms, max_upload_size=1000)
        self.fetcher = FederationMediaFetcher(
            client=self.client, store=self.store.media, store_blob=self.repo.store_derived,
            now_ms=self.now_ms, clock=self.clock, max_size=1000)
        self.repo.remote = self.fetcher

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def answer(self, path: str, body: bytes, **kw) -> None:
        headers = kw.pop("headers", {b"Content-Type": b"multipart/mixed; boundary=" + BOUNDARY})
        self.client.answers[path] = FakeResponse(body, headers, **kw)

    async def read(self, media_id: str) -> tuple[bytes, object]:
        content = await self.repo.resolve(ORIGIN, media_id, timeout_ms=1000,
                                          allow_authenticated=True)
        with await self.repo.open_blob(content.sha256) as f:
            return f.read(), content

    async def test_fetch_then_cached(self) -> None:
        """The multipart answer is stored byte-identical with its type and name; the
        second read comes from the cache (no request) and updates last_access_ts."""
        data = bytes(range(256)) * 3
        self.answer(FED + "abc", multipart(data))
        got, content = await self.read("abc")
        self.assertEqual(got, data)
        self.assertEqual((content.content_type, content.upload_name), ("image/png", "cat.png"))
        self.assertEqual(content.sha256, hashlib.sha256(data).hexdigest())
        self.assertEqual(self.client.calls, [(ORIGIN, FED + "abc", {"timeout_ms": "1000"})])
        self.clock.advance(60)
        got, _ = await self.read("abc")
        self.assertEqual(got, data)
        self.assertEqual(len(self.client.calls), 1)
        row = await self.store.media.get_remote(ORIGIN, "abc")
        self.assertEqual(row.last_access_ts, self.now_ms())
        self.assertEqual(row.size, len(data))

    async def test_observers_hear_of_new_items_only(self) -> None:
        """Fetch observers (default thumbnails) are told of a fetched item once, not
        of cache hits."""
        seen = []
        self.fetcher.fetch_observers.append(lambda *a: seen.append(a))
        self.answer(FED + "abc", multipart(b"img"))
        _, content = await self.read("abc")
        await self.read("abc")
        self.assertEqual(seen, [(content.sha256, "image/png", "abc")])

    async def test_concurrent_first_requests_share_one_fetch(self) -> None:
        """Three reads of uncached media while the origin is slow make one request."""
        self.answer(FED + "abc", multipart(b"shared"))
        self.client.gate = defer.Deferred()
        reads = [defer.ensureDeferred(self.read("abc")) for _ in range(3)]
        self.client.gate.callback(None)
        results = await defer.gatherResults(reads)
        self.assertEqual([r[0] for r in results], [b"shared"] * 3)
        self.assertEqual(len(self.client.calls), 1)

    async def test_legacy_fallback(self) -> None:
        """An origin without the federation endpoint (404 M_UNRECOGNIZED) is asked the
        legacy download with allow_remote=false; its headers give type and name."""
        self.client.answers[FED + "old"] = RemoteHttpError(
            ORIGIN, 404, b'{"errcode":"M_UNRECOGNIZED"}')
        self.answer(LEGACY + "old", b"legacy bytes", headers={
            b"Content-Type": b"text/plain",
            b"Content-Disposition": b"attachment; filename*=utf-8''n%C3%A9.txt"})
        got, content = await self.read("old")
        self.assertEqual(got, b"legacy bytes")
        self.assertEqual((content.content_type, content.upload_name), ("text/plain", "né.txt"))
        self.assertEqual(self.client.calls[1][2]["allow_remote"], "false")

    async def test_fallback_only_for_unknown_endpoint(self) -> None:
        """405 falls back too; 404 M_NOT_FOUND does not (our 404), nor does a 500 (502)."""
        self.client.answers[FED + "a"] = RemoteHttpError(ORIGIN, 405, b"")
        self.answer(LEGACY + "a", b"x", headers={b"Content-Type": b"text/plain"})
        self.assertEqual((await self.read("a"))[0], b"x")
        self.client.calls.clear()
        with self.assertRaises(NotFound):
            await self.read("missing")
        self.assertEqual(len(self.client.calls), 1)
        self.client.answers[FED + "boom"] = RemoteHttpError(ORIGIN, 500, b"{}")
        with self.assertRaises(RemoteMediaFailed) as caught:
            await self.read("boom")
        self.assertEqual((caught.exception.status, caught.exception.errcode), (502, "M_UNKNOWN"))
        self.assertIsNone(await self.store.media.get_remote(ORIGIN, "boom"))

    async def test_unreachable_and_garbage_are_502(self) -> None:
        """Unreachable origin, non-multipart, a broken or truncated multipart, a
        metadata part that is not JSON, three parts → 502 M_UNKNOWN and nothing cached."""
        self.client.answers[FED + "down"] = RemoteUnreachable(ORIGIN, "no response in 10s")
        self.answer(FED + "plain", b"hello", headers={b"Content-Type": b"text/plain"})
        self.answer(FED + "junk", b"not multipart at all" * 10)
        self.answer(FED + "cut", multipart(b"data")[:-20])
        self.answer(FED + "lost", multipart(b"data"), truncated=True)
        self.answer(FED + "meta", multipart(b"data", metadata=b"[1, 2"))
        self.answer(FED + "three", multipart(b"data")[:-4] + b"\r\n\r\nmore\r\n--"
                    + BOUNDARY + b"--")
        for media_id in ("down", "plain", "junk", "cut", "lost", "meta", "three"):
            with self.assertRaises(RemoteMediaFailed, msg=media_id):
                await self.read(media_id)
            self.assertIsNone(await self.store.media.get_remote(ORIGIN, media_id))

    async def test_too_large(self) -> None:
        """Bytes over max_upload_size fail with 502 M_TOO_LARGE, in either protocol,
        and the transfer is stopped."""
        self.answer(FED + "big", multipart(b"x" * 1001))
        with self.assertRaises(RemoteMediaTooLarge) as caught:
            await self.read("big")
        self.assertEqual((caught.exception.status, caught.exception.errcode),
                         (502, "M_TOO_LARGE"))
        self.assertTrue(self.client.answers[FED + "big"].transport.stopped)
        self.client.answers[FED + "big2"] = RemoteHttpError(ORIGIN, 404, b"")
        self.answer(LEGACY + "big2", b"y" * 1001, headers={b"Content-Type": b"text/plain"})
        with self.assertRaises(RemoteMediaTooLarge):
            await self.read("big2")
        self.assertIsNone(await self.store.media.get_remote(ORIGIN, "big2"))
        self.answer(FED + "fits", multipart(b"z" * 1000))
        self.assertEqual(len((await self.read("fits"))[0]), 1000)

    async def test_location_without_agent_is_refused(self) -> None:
        """A Location part needs the HTTPS agent; without one it is 502, not a crash."""
        body = (b"--" + BOUNDARY + b"\r\n\r\n{}\r\n--" + BOUNDARY
                + b"\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--" + BOUNDARY + b"--")
        self.answer(FED + "loc", body)
        with self.assertRaises(RemoteMediaFailed):
            await self.read("loc")

    async def test_location_followed(self) -> None:
        """A Location part is fetched with the agent; its bytes and type are stored."""
        requested = []

        class Agent:
            def request(self, method, uri, headers=None, body=None):
                requested.append((method, uri))
                return defer.succeed(FakeResponse(b"from the cdn",
                                                  {b"Content-Type": b"image/gif"}))

        self.fetcher._make_agent = Agent
        body = (b"--" + BOUNDARY + b"\r\n\r\n{}\r\n--" + BOUNDARY
                + b"\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--" + BOUNDARY + b"--")
        self.answer(FED + "loc", body)
        got, content = await self.read("loc")
        self.assertEqual((got, content.content_type), (b"from the cdn", "image/gif"))
        self.assertEqual(requested, [(b"GET", b"https://cdn.example/x")])

    async def test_quarantined_cached_media_is_not_found(self) -> None:
        """A cached remote item that is quarantined answers 404 and is not refetched."""
        self.answer(FED + "q", multipart(b"bad"))
        await self.read("q")
        from homeserver.store.media import remote_media_cache
        import sqlalchemy as sa

        await self.store.media._db.run(lambda conn: conn.execute(
            sa.update(remote_media_cache).values(quarantined_by="@admin:test.local")))
        with self.assertRaises(NotFound):
            await self.read("q")
        self.assertEqual(len(self.client.calls), 1)
