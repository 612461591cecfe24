"""Thumbnails of stored media (spec: Client-Server API, "Content repository" →
"Thumbnails"; DESIGN.md §6).

Thumbnails are made from a *blob*, not a media ID, and stored content-addressed like
any other bytes (``MediaRepository.store_derived``), keyed in ``media_thumbnails`` by
the source blob, the requested size and method, the output type and animation. Two
media IDs with the same bytes therefore share their thumbnails, and the thumbnails go
when the last reference to the source goes (``homeserver.store.media``).

After an image upload the spec's default sizes (``thumbnailer.DEFAULT_SIZES``) are made
in the background. A request is answered from what is stored when something fits
(``thumbnailer.choose``), else rendered on demand, stored, and served. Decoding and
encoding (Pillow, ``media_repo.thumbnailer``) run in the thread the caller supplies,
never on the reactor thread.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import tempfile
from typing import Any, Awaitable, BinaryIO, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from homeserver.errors import MatrixError
from homeserver.store.media import Media, Thumbnail
from media_repo import thumbnailer
from media_repo.repository import MediaRepository
from media_repo.thumbnailer import Available, ImageInfo, Rendered, ThumbnailError

log = Logger()

RunInThread = Callable[..., Awaitable[Any]]


class CannotThumbnail(MatrixError):
    """400 M_UNKNOWN, as Synapse answers for media it cannot thumbnail."""

    errcode = "M_UNKNOWN"
    status = 400


@dataclasses.dataclass(frozen=True)
class ThumbnailRequest:
    """A validated thumbnail request (the query parameters of ``/thumbnail``)."""

    width: int
    height: int
    method: str
    animated: bool
    accepts_webp: bool


class Thumbnails:
    def __init__(self, *, repository: MediaRepository, store: Media,
                 run_in_thread: RunInThread, max_pixels: int,
                 default_sizes: tuple[tuple[int, int, str], ...] = thumbnailer.DEFAULT_SIZES
                 ) -> None:
        self._repository = repository
        self._store = store
        self._run = run_in_thread
        self._max_pixels = max_pixels
        self._default_sizes = default_sizes
        # renders under way, so that identical concurrent requests render once
        self._rendering: dict[tuple, defer.Deferred[Thumbnail | None]] = {}
        self._background: set[defer.Deferred[None]] = set()
        # default sizes being made, by source blob: a request arriving meanwhile waits
        # for them rather than decoding the same image a second time beside them
        self._defaults_of: dict[str, defer.Deferred[Any]] = {}
        self._stopping = False

    # -- after an upload ------------------------------------------------------------
    def on_upload(self, sha256: str, content_type: str, media_id: str) -> None:
        """Start making the default sizes for an image just uploaded (an observer of
        ``MediaRepository.upload_observers``); the upload does not wait for it."""
        if self._stopping or not is_thumbnailable_type(content_type):
            return
        d = defer.ensureDeferred(self.generate_defaults(sha256))

        def failed(f: Failure) -> None:
            if not self._stopping:  # at shutdown the database may have stopped first
                log.failure("default thumbnails of {media_id} failed", f,
                            media_id=media_id)
        d.addErrback(failed)
        self._background.add(d)
        self._defaults_of[sha256] = d
        d.addBoth(lambda r: (self._background.discard(d),
                             self._defaults_of.pop(sha256, None), r)[-1])

    async def generate_defaults(self, sha256: str) -> int:
        """Make and store the default sizes of a blob (skipping stored ones); returns
        how many were added. A blob that is not an image adds none."""
        stored = await self._store.thumbnails_of(sha256)
        have = {(t.width, t.height, t.method) for t in stored if not t.animated}
        sizes = tuple(s for s in self._default_sizes if s not in have)
        if not sizes:
            return 0
        f = await self._repository.open_blob(sha256)
        try:
            made = await self._run(_render_defaults, f, sizes, self._max_pixels)
        finally:
            f.close()
        if made is None:
            return 0
        added = 0
        for (width, height, method), rendered in zip(sizes, made):
            if await self._save(sha256, width, height, method, False, rendered):
                added += 1
        return added

    def stop(self) -> None:
        """Start no more background work; work under way ends quietly."""
        self._stopping = True

    async def wait_idle(self) -> None:
        """Wait for background generation under way (for tests and shutdown)."""
        while self._background:
            await defer.DeferredList(list(self._background), consumeErrors=True)

    # -- answering a request ----------------------------------------------------------
    async def thumbnail_for(self, sha256: str, content_type: str,
                            request: ThumbnailRequest) -> Thumbnail:
        """The stored thumbnail answering ``request`` for the blob ``sha256`` (of
        type ``content_type``), rendering and storing one if nothing stored fits.
        Raises CannotThumbnail for media that is not a thumbnailable image."""
        if not is_thumbnailable_type(content_type):
            raise CannotThumbnail("Cannot generate thumbnails for this media")
        if sha256 in self._defaults_of:
            await _shared(self._defaults_of[sha256])
        stored = await self._store.thumbnails_of(sha256)
        exact = _exact(stored, request, animated=request.animated)
        if exact is not None:
            return exact
        f = await self._repository.open_blob(sha256)
        try:
            info = await self._run(_probe, f, self._max_pixels)
        finally:
            f.close()
        if info is None:
            raise CannotThumbnail("Cannot generate thumbnails for this media")
        animated = request.animated and info.animated
        fitting = _fitting(stored, request, animated, info)
        if fitting is not None:
            return fitting
        output_type = thumbnailer.output_type_for(info.content_type, animated,
                                                  request.accepts_webp)
        key = (sha256, request.width, request.height, request.method, output_type, animated)
        if key not in self._rendering:
            d = defer.ensureDeferred(self._render_and_save(key))
            self._rendering[key] = d
            d.addBoth(lambda r: (self._rendering.pop(key, None), r)[1])
        made = await _shared(self._rendering[key])
        if made is None and not info.animated and info.width <= request.width \
                and info.height <= request.height:
            # Nothing smaller can be made: the thumbnail came out as the very bytes of
            # the source (a small PNG re-encodes identically), which a thumbnail row may
            # not reference. The spec lets a source no larger than asked be the answer.
            return Thumbnail(
                source_sha256=sha256, width=request.width, height=request.height,
                method=request.method, content_type=info.content_type, animated=False,
                thumbnail_sha256=sha256, size=await self._repository.blobs.size(sha256),
                thumbnail_width=info.width, thumbnail_height=info.height)
        if made is None:
            raise CannotThumbnail("Cannot generate thumbnails for this media")
        return made

    async def _render_and_save(self, key: tuple) -> Thumbnail | None:
        sha256, width, height, method, output_type, animated = key
        f = await self._repository.open_blob(sha256)
        try:
            rendered = await self._run(_render_one, f, width, height, method, output_type,
                                       animated, self._max_pixels)
        finally:
            f.close()
        if rendered is None:
            return None
        return await self._save(sha256, width, height, method, animated, rendered)

    async def _save(self, sha256: str, width: int, height: int, method: str,
                    animated: bool, rendered: Rendered) -> Thumbnail | None:
        row: list[Thumbnail] = []

        async def record(staged: Any) -> bool:
            thumb = Thumbnail(source_sha256=sha256, width=width, height=height,
                              method=method, content_type=rendered.content_type,
                              animated=animated, thumbnail_sha256=staged.sha256,
                              size=staged.size, thumbnail_width=rendered.width,
                              thumbnail_height=rendered.height)
            row.append(thumb)
            return await self._store.add_thumbnail(thumb)

        await self._repository.store_derived(io.BytesIO(rendered.data), record)
        if not row:
            return None
        # added now, or by a concurrent render of the same key: the stored row wins
        for t in await self._store.thumbnails_of(sha256):
            if (t.width, t.height, t.method, t.content_type, t.animated) == (
                    width, height, method, rendered.content_type, animated):
                return t
        return None  # the source was deleted meanwhile


def is_thumbnailable_type(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in thumbnailer.THUMBNAILABLE_TYPES


def _acceptable(t: Thumbnail, request: ThumbnailRequest) -> bool:
    return request.accepts_webp or t.content_type != "image/webp"


def _exact(stored: list[Thumbnail], request: ThumbnailRequest, *,
           animated: bool) -> Thumbnail | None:
    """A stored thumbnail made for exactly this size, method and animation."""
    for t in stored:
        if ((t.width, t.height, t.method, t.animated) ==
                (request.width, request.height, request.method, animated)
                and _acceptable(t, request)):
            return t
    return None


def _fitting(stored: list[Thumbnail], request: ThumbnailRequest, animated: bool,
             info: ImageInfo) -> Thumbnail | None:
    """A stored thumbnail good enough for the request: the exact one, or the one
    ``choose`` picks if it is at least as big as asked (the spec: never smaller
    unless the content makes that impossible) or already at the source's own size."""
    exact = _exact(stored, request, animated=animated)
    if exact is not None:
        return exact
    pool = [t for t in stored if t.animated == animated and t.method == request.method]
    by_choice = {(t.thumbnail_width, t.thumbnail_height, t.method, t.content_type): t
                 for t in pool}
    chosen = thumbnailer.choose(
        [Available(t.thumbnail_width, t.thumbnail_height, t.method, t.content_type)
         for t in pool], request.width, request.height, request.method,
        accepts_webp=request.accepts_webp)
    if chosen is None:
        return None
    if request.method == "crop":
        big = chosen.width >= request.width and chosen.height >= request.height
    else:
        big = chosen.width >= request.width or chosen.height >= request.height
    at_source_size = chosen.width >= info.width or chosen.height >= info.height
    if big or at_source_size:
        return by_choice[(chosen.width, chosen.height, chosen.method, chosen.content_type)]
    return None


async def _shared(d: defer.Deferred) -> Any:
    """Await a Deferred others await too (each gets the result; none consumes it)."""
    waiter: defer.Deferred = defer.Deferred()

    def forward(result: Any) -> Any:
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)
        return result
    d.addBoth(forward)
    return await waiter


# -- run in a thread ----------------------------------------------------------------------
def _local_path(f: BinaryIO, stack: list[str]) -> str:
    """A path Pillow can open for the blob ``f``: its own file for a local blob,
    else a temp copy (``stack`` collects what to remove)."""
    name = getattr(f, "name", None)
    if isinstance(name, str) and os.path.isfile(name):
        return name
    fd, path = tempfile.mkstemp(prefix="thumb-src-")
    stack.append(path)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(f, out, 64 * 1024)
    return path


def _with_path(f: BinaryIO, fn: Callable[[str], Any]) -> Any:
    temps: list[str] = []
    try:
        return fn(_local_path(f, temps))
    except ThumbnailError:
        return None
    finally:
        for path in temps:
            os.unlink(path)


def _probe(f: BinaryIO, max_pixels: int) -> ImageInfo | None:
    return _with_path(f, lambda p: thumbnailer.probe(p, max_pixels=max_pixels))


def _render_one(f: BinaryIO, width: int, height: int, method: str, output_type: str,
                animated: bool, max_pixels: int) -> Rendered | None:
    return _with_path(f, lambda p: thumbnailer.render(
        p, width, height, method, output_type, max_pixels=max_pixels, animated=animated))


def _render_defaults(f: BinaryIO, sizes: tuple[tuple[int, int, str], ...],
                     max_pixels: int) -> list[Rendered] | None:
    def go(path: str) -> list[Rendered]:
        info = thumbnailer.probe(path, max_pixels=max_pixels)
        output_type = thumbnailer.output_type_for(info.content_type, False, False)
        return thumbnailer.render_all(path, sizes, output_type, max_pixels=max_pixels)
    return _with_path(f, go)
