"""URL previews: the OpenGraph data of a page, its image kept in our media repository.

Spec: Client-Server API, "Content repository", ``GET /_matrix/client/v1/media/preview_url``
(and the deprecated ``/_matrix/media/v3/preview_url``): "The OpenGraph data for the URL,
which may be empty", with ``og:image`` an ``mxc://`` URI and ``matrix:image:size`` its
size in bytes.

What a preview is, by the Content-Type of the response (as Synapse does):

- an HTML page: :func:`media_repo.preview_html.parse_page`, over what the page's
  advertised oEmbed JSON says (:mod:`media_repo.oembed`); its ``og:image`` is fetched
  (through the same gates and limits) and stored through a :class:`MediaSink`; if the
  oEmbed or image fetch fails the preview simply goes without;
- an image: the image itself, stored, is the preview's ``og:image``;
- JSON: an empty preview (Synapse reads it as oEmbed for URLs of its configured
  oEmbed providers; we have no provider list);
- anything else is refused before its body is read (502, as Synapse).

At most ``max_concurrent`` previews are built at once (each may hold a page and an
image of up to ``max_spider_size`` in memory). Results are kept in memory for
``cache_seconds`` (an hour, as Synapse: nobody's click makes us spider a site more than
once an hour), failures for a minute, at most ``max_entries`` URLs, and concurrent
requests for one URL share one fetch. The cache is keyed by URL alone: a memory cache
holds only the newest preview, and the spec lets a server answer a newer version than
``ts`` asks for, so any ``ts`` gets that one.
"""

from __future__ import annotations

import collections
import copy
import io
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import urljoin, urlsplit

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from homeserver.errors import InvalidParam, MatrixError
from media_repo.oembed import oembed_to_open_graph
from media_repo.preview_html import parse_page, prune_overlong
from media_repo.spider import Fetched, PreviewError

log = Logger()

MAX_URL_LENGTH = 4096


class MediaSink(Protocol):
    """Where previewed images go: the media repository. Returns the ``mxc://`` URI."""

    def store(self, data: bytes, content_type: str, filename: str | None,
              user_id: str) -> Awaitable[str]: ...


class Fetcher(Protocol):
    """What fetches for us (:class:`media_repo.spider.Spider` in production)."""

    async def fetch(self, url: str, accept: Callable[[str], bool]) -> Fetched: ...


def is_image(content_type: str) -> bool:
    return content_type.lower().startswith("image/")


def is_html(content_type: str) -> bool:
    return content_type.lower().startswith(("text/html", "application/xhtml"))


def is_json(content_type: str) -> bool:
    return content_type.lower().startswith("application/json")


def is_previewable(content_type: str) -> bool:
    return is_html(content_type) or is_image(content_type) or is_json(content_type)


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from the image's header (Pillow reads no pixels for this, so a
    decompression bomb costs nothing here); None if Pillow does not know the format."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


def check_preview_url(url: str) -> None:
    """A URL a client may ask to preview: absolute http(s) with a host, not huge."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if len(url) > MAX_URL_LENGTH or parts is None or \
            parts.scheme not in ("http", "https") or not host:
        raise InvalidParam("url must be an absolute http(s) URL")


class _Entry:
    __slots__ = ("expires", "result")

    def __init__(self, expires: float, result: Any) -> None:
        self.expires, self.result = expires, result


class UrlPreviewer:
    """Builds, caches and shares previews (see the module docstring)."""

    def __init__(self, *, fetcher: Fetcher, sink: MediaSink | None, clock: Any,
                 in_thread: Callable[..., Awaitable[Any]] | None = None,
                 cache_seconds: float = 3600.0, failure_cache_seconds: float = 60.0,
                 max_entries: int = 1000, max_concurrent: int = 8) -> None:
        self._fetcher = fetcher
        self._sink = sink
        self._clock = clock
        # parsing a large page takes a while: off the reactor thread by default
        self._in_thread = in_thread or (lambda fn, *a: threads.deferToThreadPool(
            clock, clock.getThreadPool(), fn, *a))
        self._ttl = cache_seconds
        self._failure_ttl = failure_cache_seconds
        self._max_entries = max_entries
        self._cache: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._waiting: dict[str, list[defer.Deferred]] = {}
        # each build may hold up to max_spider_size bytes (twice, with its image) in
        # memory: a bounded number at a time, the rest wait their turn
        self._slots = defer.DeferredSemaphore(max_concurrent)
        #: how many previews were built (not served from cache), for tests and metrics
        self.built = 0

    async def preview(self, url: str, user_id: str, ts: int | None = None) -> dict[str, Any]:
        """The preview of ``url`` for ``user_id``; raises MatrixError."""
        check_preview_url(url)
        entry = self._cache.get(url)
        if entry is not None and entry.expires > self._clock.seconds():
            self._cache.move_to_end(url)
            if isinstance(entry.result, Failure):
                entry.result.raiseException()
            return copy.deepcopy(entry.result)
        waiter: defer.Deferred = defer.Deferred()
        if url in self._waiting:
            self._waiting[url].append(waiter)
        else:
            self._waiting[url] = [waiter]
            self._slots.run(lambda: defer.ensureDeferred(self._build(url, user_id))) \
                .addBoth(self._settle, url)
        result = await waiter
        return copy.deepcopy(result)

    def _settle(self, result: Any, url: str) -> None:
        if isinstance(result, Failure) and not result.check(MatrixError):
            log.failure("building the preview of {url} failed", result, url=url)
            result = Failure(PreviewError("Failed to generate a preview"))
        ttl = self._failure_ttl if isinstance(result, Failure) else self._ttl
        self._cache[url] = _Entry(self._clock.seconds() + ttl, result)
        self._cache.move_to_end(url)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        for waiter in self._waiting.pop(url, []):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    async def _build(self, url: str, user_id: str) -> dict[str, Any]:
        self.built += 1
        page = await self._fetcher.fetch(url, is_previewable)
        if is_image(page.content_type):
            og: dict[str, Any] = {}
            if page.filename:
                og["og:description"] = page.filename
            og.update(await self._stored_image(page, user_id))
        elif is_html(page.content_type):
            og, oembed_url = await self._in_thread(parse_page, page.body, page.url,
                                                   page.content_type)
            if oembed_url:
                from_oembed, author = await self._fetch_oembed(oembed_url, url)
                og = {**from_oembed, **og}  # the page's own tags win
                if not og.get("og:title") and author:
                    og["og:title"] = author
            image_url = og.pop("og:image", None)
            if image_url:
                og.update(await self._fetch_image(urljoin(page.url, image_url), user_id))
        else:
            og = {}
        return prune_overlong(og)

    async def _fetch_oembed(self, oembed_url: str,
                            page_url: str) -> tuple[dict[str, Any], str | None]:
        try:
            answer = await self._fetcher.fetch(oembed_url, is_json)
        except defer.CancelledError:
            raise
        except Exception as e:
            log.info("oEmbed {url} skipped: {e}", url=oembed_url, e=e)
            return {}, None
        return await self._in_thread(oembed_to_open_graph, page_url, answer.body)

    async def _fetch_image(self, url: str, user_id: str) -> dict[str, Any]:
        """The page's image as og:image* keys, or nothing if it cannot be had: a
        preview without its picture is still a preview (Synapse's choice too)."""
        if self._sink is None:
            return {}
        try:
            image = await self._fetcher.fetch(url, is_image)
            return await self._stored_image(image, user_id)
        except defer.CancelledError:
            raise
        except Exception as e:
            log.info("preview image {url} skipped: {e}", url=url, e=e)
            return {}

    async def _stored_image(self, image: Fetched, user_id: str) -> dict[str, Any]:
        if self._sink is None:
            return {}
        content_type = image.content_type.split(";", 1)[0].strip().lower()
        mxc = await self._sink.store(image.body, content_type, image.filename, user_id)
        og: dict[str, Any] = {"og:image": mxc, "og:image:type": content_type,
                              "matrix:image:size": len(image.body)}
        size = image_dimensions(image.body)
        if size is not None:
            og["og:image:width"], og["og:image:height"] = size
        return og
