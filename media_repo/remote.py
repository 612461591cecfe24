"""Media of other servers, fetched over federation and cached (spec: Server-Server
API, "Content Repository"; Client-Server API, "Content repository"; DESIGN.md §6).

:class:`FederationMediaFetcher` is the repository's ``RemoteMediaFetcher``:

1. a cached ``(origin, media_id)`` is answered from ``remote_media_cache`` and the
   blob store, without contacting the origin (its ``last_access_ts`` is updated, for
   retention);
2. otherwise ``GET /_matrix/federation/v1/media/download/{mediaId}`` (signed) is read
   as it arrives through :class:`media_repo.multipart.MultipartReader`: the JSON
   metadata part, then the bytes, or a ``Location`` that is fetched with a plain
   HTTPS GET through the SSRF filter. An origin without that endpoint (404/405
   M_UNRECOGNIZED, 400 M_UNRECOGNIZED) is asked the legacy
   ``GET /_matrix/media/v3/download/{origin}/{mediaId}?allow_remote=false`` instead,
   as Synapse does;
3. the bytes go to a temporary file as they arrive (never whole in memory), at most
   ``max_size`` (the server's ``max_upload_size``) of them; then they are staged in
   the blob store (which hashes them) and committed together with the cache row.

Concurrent first requests for the same media share one fetch. Errors are Synapse's:
the origin says 404 → None (our 404 M_NOT_FOUND); unreachable, timed out, any other
remote status or an unreadable answer → 502 M_UNKNOWN; bigger than allowed → 502
M_TOO_LARGE. A remote error is never passed through as ours.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any, BinaryIO, Callable, Protocol
from urllib.parse import quote

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from federation.client import RemoteError, RemoteHttpError
from homeserver.errors import MatrixError
from homeserver.store.media import Media, RemoteMedia
from media_repo.multipart import (
    End, MultipartError, MultipartReader, PartData, PartEnd, PartStart, boundary_of,
    filename_from_disposition,
)

log = Logger()

FEDERATION_DOWNLOAD = "/_matrix/federation/v1/media/download/"
LEGACY_DOWNLOAD = "/_matrix/media/v3/download/"
#: the metadata part is small JSON; more is not a metadata part
MAX_METADATA_BYTES = 64 * 1024
#: reading a whole body may take this long at most (headers have their own timeout)
BODY_TIMEOUT_S = 300.0
#: added to the request's ``timeout_ms`` while waiting for the origin's headers (it
#: may itself wait that long for an async upload)
HEADERS_GRACE_S = 10.0
_MAX_REDIRECTS = 5


class RemoteMediaFailed(MatrixError):
    """502 M_UNKNOWN: the origin could not give us the media (Synapse's answer)."""

    errcode = "M_UNKNOWN"
    status = 502


class RemoteMediaTooLarge(MatrixError):
    """502 M_TOO_LARGE: the remote file is over ``max_upload_size`` (as Synapse)."""

    errcode = "M_TOO_LARGE"
    status = 502


class _Refused(Exception):
    """The remote answer cannot be used (malformed, too large): no retry, no cache."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


class FederationGet(Protocol):
    """What we use of ``federation.client.FederationClient``."""

    async def get_response(self, destination: str, path: str, args: Any = None, *,
                           timeout: float | None = None) -> IResponse: ...


class StoreBlob(Protocol):
    """``MediaRepository.store_derived``: stage, lock, commit, record."""

    async def __call__(self, source: BinaryIO, record: Callable[[Any], Any]) -> Any: ...


class FederationMediaFetcher:
    def __init__(self, *, client: FederationGet, store: Media, store_blob: StoreBlob,
                 now_ms: Callable[[], int], clock: Any, max_size: int,
                 make_http_agent: Callable[[], Any] | None = None) -> None:
        """``make_http_agent``: builds (on first use: twisted's HTTP client pulls in
        pyOpenSSL) the ``IAgent`` for ``Location`` parts, SSRF-filtered and following
        redirects; without one a ``Location`` answer is refused."""
        self._client = client
        self._store = store
        self._store_blob = store_blob
        self._now_ms = now_ms
        self._clock = clock
        self._max_size = max_size
        self._make_agent = make_http_agent
        self._agent: Any = None
        self._fetching: dict[tuple[str, str], list[defer.Deferred[RemoteMedia | None]]] = {}
        #: called with (sha256, content_type, media_id) after a remote item is cached
        #: (the default thumbnails are made then, as Synapse does for remote media)
        self.fetch_observers: list[Callable[[str, str, str], Any]] = []

    async def fetch(self, origin: str, media_id: str, *, timeout_ms: int) -> RemoteMedia | None:
        cached = await self._store.get_remote(origin, media_id)
        if cached is not None:
            await self._store.touch_remote(origin, media_id, self._now_ms())
            return cached
        key = (origin, media_id)
        waiting = self._fetching.get(key)
        if waiting is not None:  # a fetch is under way: share its outcome
            waiter: defer.Deferred[RemoteMedia | None] = defer.Deferred()
            waiting.append(waiter)
            return await waiter
        self._fetching[key] = []
        try:
            result = await self._fetch_and_cache(origin, media_id, timeout_ms)
        except BaseException:
            failure = Failure()
            for waiter in self._fetching.pop(key):
                waiter.errback(failure)
            raise
        for waiter in self._fetching.pop(key):
            waiter.callback(result)
        return result

    async def _fetch_and_cache(self, origin: str, media_id: str,
                               timeout_ms: int) -> RemoteMedia | None:
        with tempfile.TemporaryFile(prefix="remote-media-") as spool:
            try:
                meta = await self._download(origin, media_id, timeout_ms, spool)
            except _Refused as e:
                log.warn("remote media {origin}/{media_id} refused: {e}", origin=origin,
                         media_id=media_id, e=e)
                if e.too_large:
                    raise RemoteMediaTooLarge(
                        f"Remote file is larger than {self._max_size} bytes") from None
                raise RemoteMediaFailed("Failed to fetch remote media") from None
            except RemoteHttpError as e:
                if e.status == 404:
                    return None
                log.warn("remote media {origin}/{media_id}: {e}", origin=origin,
                         media_id=media_id, e=e)
                raise RemoteMediaFailed("Failed to fetch remote media") from None
            except RemoteError as e:
                log.warn("remote media {origin}/{media_id}: {e}", origin=origin,
                         media_id=media_id, e=e)
                raise RemoteMediaFailed("Failed to fetch remote media") from None
            content_type, upload_name = meta
            spool.seek(0)
            now = self._now_ms()
            rows: list[RemoteMedia] = []

            async def record(staged: Any) -> bool:
                row = RemoteMedia(origin=origin, media_id=media_id, sha256=staged.sha256,
                                  content_type=content_type, upload_name=upload_name,
                                  size=staged.size, created_ts=now, last_access_ts=now,
                                  quarantined_by=None, authenticated=True)
                rows.append(row)
                return await self._store.add_remote(row)

            await self._store_blob(spool, record)
        # another process may have cached it first: the stored row is the truth
        row = await self._store.get_remote(origin, media_id) or (rows[0] if rows else None)
        if row is not None:
            for observer in self.fetch_observers:
                try:
                    observer(row.sha256, row.content_type or "", media_id)
                except Exception:
                    log.failure("remote media observer failed")
        return row

    async def _download(self, origin: str, media_id: str, timeout_ms: int,
                        spool: BinaryIO) -> tuple[str | None, str | None]:
        """Write the media's bytes to ``spool``; its (content type, file name)."""
        headers_timeout = timeout_ms / 1000 + HEADERS_GRACE_S
        try:
            response = await self._client.get_response(
                origin, FEDERATION_DOWNLOAD + quote(media_id, safe=""),
                {"timeout_ms": str(timeout_ms)}, timeout=headers_timeout)
        except RemoteHttpError as e:
            if not _is_unknown_endpoint(e):
                raise
            response = await self._client.get_response(
                origin, LEGACY_DOWNLOAD + quote(origin, safe="") + "/"
                + quote(media_id, safe=""),
                {"allow_remote": "false", "allow_redirect": "true",
                 "timeout_ms": str(timeout_ms)}, timeout=headers_timeout)
            return await self._read_plain(response, spool, origin)
        return await self._read_multipart(response, spool, origin)

    async def _read_plain(self, response: IResponse, spool: BinaryIO,
                          destination: str) -> tuple[str | None, str | None]:
        self._check_length(response)
        await self._read(response, spool.write, destination)
        return (_header(response, b"Content-Type"),
                filename_from_disposition(_header(response, b"Content-Disposition")))

    async def _read_multipart(self, response: IResponse, spool: BinaryIO,
                              destination: str) -> tuple[str | None, str | None]:
        try:
            reader = MultipartReader(boundary_of(_header(response, b"Content-Type")))
        except MultipartError as e:
            response.deliverBody(_Discard())
            raise _Refused(str(e)) from None
        parts = _TwoParts(spool, self._max_size)
        await self._read(response, lambda data: parts.handle(reader.feed(data)), destination,
                         limit=self._max_size + MAX_METADATA_BYTES + 64 * 1024)
        try:
            reader.close()
        except MultipartError as e:
            raise _Refused(str(e)) from None
        parts.check_complete()
        if parts.location is not None:
            return await self._follow(parts.location, spool)
        headers = parts.headers
        return headers.get("content-type"), filename_from_disposition(
            headers.get("content-disposition"))

    async def _follow(self, location: str, spool: BinaryIO) -> tuple[str | None, str | None]:
        """Fetch a ``Location`` part's URL (plain HTTPS, SSRF-filtered, size-limited)."""
        if self._make_agent is None or not location.startswith("https://"):
            raise _Refused(f"cannot follow Location {location!r}")
        if self._agent is None:
            self._agent = self._make_agent()
        d = self._agent.request(b"GET", location.encode("ascii", "strict"),
                                Headers({b"User-Agent": [b"roomserver"]}))
        d.addTimeout(BODY_TIMEOUT_S, self._clock)
        try:
            response = await d
        except Exception as e:
            raise RemoteError(location, f"{type(e).__name__}: {e}") from None
        if response.code != 200:
            response.deliverBody(_Discard())
            raise _Refused(f"Location answered {response.code}")
        return await self._read_plain(response, spool, location)

    def _check_length(self, response: IResponse) -> None:
        length = response.length
        if isinstance(length, int) and length > self._max_size:
            response.deliverBody(_Discard())
            raise _Refused(f"{length} bytes announced", too_large=True)

    async def _read(self, response: IResponse, sink: Callable[[bytes], Any],
                    destination: str, limit: int | None = None) -> None:
        finished: defer.Deferred[None] = defer.Deferred()
        response.deliverBody(_Sink(finished, sink, limit or self._max_size))
        finished.addTimeout(BODY_TIMEOUT_S, self._clock)
        try:
            await finished
        except (_Refused, RemoteError):
            raise
        except defer.TimeoutError:
            raise RemoteError(destination, "reading the media timed out") from None
        except Exception as e:
            raise RemoteError(destination, f"reading the media: {type(e).__name__}: {e}") \
                from None


class _TwoParts:
    """Consumes reader events: part 1 JSON metadata (an object), part 2 the bytes
    (written to ``spool``, at most ``max_size``) or a ``Location`` header."""

    def __init__(self, spool: BinaryIO, max_size: int) -> None:
        self._spool = spool
        self._max_size = max_size
        self._index = 0  # parts begun
        self._metadata = bytearray()
        self._written = 0
        self._ended = False
        self.headers: dict[str, str] = {}
        self.location: str | None = None

    def handle(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, PartStart):
                self._index += 1
                if self._index > 2:
                    raise _Refused("more than two parts")
                if self._index == 2:
                    self.headers = event.headers
                    self.location = event.headers.get("location")
            elif isinstance(event, PartData):
                if self._index == 1:
                    self._metadata += event.data
                    if len(self._metadata) > MAX_METADATA_BYTES:
                        raise _Refused("metadata part too large")
                elif self.location is None:
                    self._written += len(event.data)
                    if self._written > self._max_size:
                        raise _Refused(f"more than {self._max_size} bytes", too_large=True)
                    self._spool.write(event.data)
            elif isinstance(event, PartEnd) and self._index == 1:
                try:
                    metadata = json.loads(bytes(self._metadata))
                except (ValueError, UnicodeDecodeError):
                    raise _Refused("metadata part is not JSON") from None
                if not isinstance(metadata, dict):
                    raise _Refused("metadata part is not a JSON object")
            elif isinstance(event, End):
                self._ended = True

    def check_complete(self) -> None:
        if not self._ended or self._index != 2:
            raise _Refused(f"expected two parts, got {self._index}")


class _Sink(protocol.Protocol):
    """Hands each chunk of a body to ``sink``, stopping at ``limit`` bytes or at the
    first error ``sink`` raises."""

    def __init__(self, finished: defer.Deferred, sink: Callable[[bytes], Any],
                 limit: int) -> None:
        self._finished, self._sink, self._limit = finished, sink, limit
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._finished.called:
            return
        self._size += len(data)
        try:
            if self._size > self._limit:
                raise _Refused(f"more than {self._limit} bytes", too_large=True)
            self._sink(data)
        except Exception as e:
            self._finished.errback(Failure(e))
            self.transport.stopProducing()

    def connectionLost(self, reason: Failure) -> None:
        from twisted.web.client import ResponseDone

        if self._finished.called:
            return
        if reason.check(ResponseDone, http.PotentialDataLoss):
            self._finished.callback(None)
        else:
            self._finished.errback(reason)


class _Discard(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.stopProducing()


def _is_unknown_endpoint(e: RemoteHttpError) -> bool:
    """An origin that does not serve the federation media endpoint (Synapse's test)."""
    if e.status in (404, 405):
        return e.errcode in (None, "M_UNRECOGNIZED")
    return e.status == 400 and e.errcode == "M_UNRECOGNIZED"


def _header(response: IResponse, name: bytes) -> str | None:
    values = response.headers.getRawHeaders(name)
    return values[0].decode("latin-1") if values else None


def build_http_agent(reactor: Any, tls: Any, address_policy: Any) -> Any:
    """An agent for ``Location`` parts: SSRF-filtered, TLS-verified, redirects
    followed (at most 5)."""
    from twisted.web.client import Agent, HTTPConnectionPool, RedirectAgent

    from homeserver.http.outbound import FilteringReactor

    return RedirectAgent(Agent(FilteringReactor(reactor, address_policy), contextFactory=tls,
                               connectTimeout=10.0,
                               pool=HTTPConnectionPool(reactor, persistent=False)),
                         redirectLimit=_MAX_REDIRECTS)
