"""Writing media bytes to an HTTP response: safe headers, HEAD, one ``Range``, and
streaming from the file with a producer (never read whole into memory).

Headers (spec: Client-Server API, "Content repository" → security considerations;
values as Synapse sends them):

- ``Content-Disposition``: ``inline`` only for types a browser shows without running
  anything (:data:`INLINE_CONTENT_TYPES`; SVG deliberately absent), ``attachment``
  otherwise; the file name as an RFC 2616 token when it is one, else RFC 5987's
  ``filename*=utf-8''…`` (RFC 6266 §4.1).
- ``Content-Security-Policy``: a sandbox, so HTML or SVG served from the media origin
  cannot run script there.
- ``Cache-Control: public, max-age=31536000, immutable``: a media ID's bytes never
  change (a deletion makes it 404, it never serves other bytes).
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
from typing import Any, Awaitable, BinaryIO, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import server
from zope.interface import implementer

log = Logger()

#: runs a blocking function in a thread pool, returning an awaitable of its result
RunInThread = Callable[..., Awaitable[Any]]
#: bytes read per thread hop: each chunk is one trip to the media-io pool and back,
#: so larger chunks cost fewer hops per megabyte (memory stays one chunk per download)
CHUNK_SIZE = 256 * 1024

INLINE_CONTENT_TYPES = frozenset({
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
    "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
    "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave",
    "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/flac", "audio/x-flac",
})

#: text types served with ``charset=UTF-8`` when the upload named no charset
TEXT_CONTENT_TYPES = frozenset({
    "text/css", "text/csv", "text/html", "text/calendar", "text/plain", "text/javascript",
    "application/json", "application/ld+json", "application/rtf", "image/svg+xml",
    "text/xml",
})

CONTENT_SECURITY_POLICY = (
    b"sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    b"style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")

_FILENAME_SEPARATORS = frozenset('()<>@,;:\\"/[]?={}')
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def content_disposition(content_type: str, file_name: str | None) -> str:
    """The ``Content-Disposition`` value for a download (see the module docstring)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    disposition = "inline" if kind in INLINE_CONTENT_TYPES else "attachment"
    if not file_name:
        return disposition
    if _is_token(file_name):
        return f"{disposition}; filename={file_name}"
    return f"{disposition}; filename*=utf-8''{urllib.parse.quote(file_name, safe='')}"


def served_content_type(content_type: str) -> str:
    """The upload's type, with ``charset=UTF-8`` added to bare text types."""
    if content_type.strip().lower() in TEXT_CONTENT_TYPES:
        return content_type + "; charset=UTF-8"
    return content_type


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """A single ``Range: bytes=…`` as ``(first, last)`` inclusive; None to send the
    whole body (no header, or one we do not honour, e.g. several ranges — RFC 9110
    §14.2 lets a server ignore Range); False when it cannot be satisfied (416)."""
    if not header:
        return None
    m = _RANGE_RE.fullmatch(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # a suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


def write_file(request: server.Request, f: BinaryIO, *, size: int, content_type: str,
               file_name: str | None, run_in_thread: RunInThread) -> None:
    """Answer ``request`` with the bytes of ``f`` (which this takes ownership of and
    closes): headers, then a :class:`ThreadedFileProducer` streaming the file (or the
    one range asked for), which finishes the request."""
    request.setHeader(b"Content-Type", _latin1(served_content_type(content_type)))
    request.setHeader(b"Content-Disposition",
                      content_disposition(content_type, file_name).encode("ascii"))
    set_media_security_headers(request)
    request.setHeader(b"Cache-Control", b"public, max-age=31536000, immutable")
    request.setHeader(b"Accept-Ranges", b"bytes")
    range_header = request.getHeader(b"Range")
    wanted = parse_range(None if range_header is None
                         else range_header.decode("latin-1"), size)
    if wanted is False:
        f.close()
        request.setResponseCode(416)
        request.setHeader(b"Content-Range", b"bytes */%d" % size)
        request.setHeader(b"Content-Length", b"0")
        request.finish()
        return
    if wanted is None:
        first, length = 0, size
        request.setResponseCode(200)
    else:
        first, length = wanted[0], wanted[1] - wanted[0] + 1
        request.setResponseCode(206)
        request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (first, wanted[1], size))
    request.setHeader(b"Content-Length", b"%d" % length)
    if request.method == b"HEAD" or request._disconnected:
        f.close()
        if not request._disconnected:
            request.finish()
        return
    ThreadedFileProducer(request, f, first, length, run_in_thread).start()


@implementer(IPushProducer)
class ThreadedFileProducer:
    """Streams ``length`` bytes of ``f`` from ``offset`` into a request, reading each
    64 KiB chunk in a thread (twisted.web.static's producers read on the reactor
    thread) and only while the transport wants more (pause/resume), so a slow client
    holds one chunk in memory, not the file. Closes ``f`` and finishes the request
    when done; a disconnect stops it."""

    def __init__(self, request: server.Request, f: BinaryIO, offset: int, length: int,
                 run_in_thread: RunInThread, trailer: bytes = b"") -> None:
        self._request = request
        self._trailer = trailer  # written after the file (a multipart's close delimiter)
        self._file = f
        self._offset = offset
        self._remaining = length
        self._run = run_in_thread
        self._paused = self._stopped = self._reading = False
        self._positioned = False

    def start(self) -> None:
        self._request.registerProducer(self, True)
        self._request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self._read_next()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._read_next()

    def stopProducing(self) -> None:
        self._stopped = True
        if not self._reading:
            self._file.close()

    def _read_next(self) -> None:
        if self._paused or self._stopped or self._reading:
            return
        if self._remaining <= 0:
            self._done()
            return
        self._reading = True
        d = defer.ensureDeferred(self._run(self._read_chunk, min(CHUNK_SIZE, self._remaining)))
        d.addCallbacks(self._got, self._failed)

    def _read_chunk(self, n: int) -> bytes:
        if not self._positioned:
            self._file.seek(self._offset)
            self._positioned = True
        return self._file.read(n)

    def _got(self, data: bytes) -> None:
        self._reading = False
        if self._stopped:
            self._file.close()
            return
        if not data:  # the file is shorter than its recorded size: end what we can
            log.warn("media file ended {n} bytes early", n=self._remaining)
            self._done()
            return
        self._remaining -= len(data)
        self._request.write(data)  # may call pauseProducing
        self._read_next()

    def _failed(self, failure: Any) -> None:
        self._reading = False
        log.failure("reading a media file failed", failure)
        self._stopped = True
        self._file.close()
        if not self._request._disconnected and not self._request.finished:
            self._request.unregisterProducer()
            self._request.loseConnection()

    def _done(self) -> None:
        self._stopped = True
        self._file.close()
        self._request.unregisterProducer()
        if not self._request._disconnected and not self._request.finished:
            if self._trailer:
                self._request.write(self._trailer)
            self._request.finish()


def write_multipart(request: server.Request, f: BinaryIO, *, size: int, content_type: str,
                    file_name: str | None, run_in_thread: RunInThread) -> None:
    """Answer a federation media request (spec: Server-Server API, "Content
    Repository"): ``multipart/mixed`` with the JSON metadata part (``{}``) and then
    the bytes of ``f`` with their Content-Type and Content-Disposition. The preamble
    is written first, the file streams through a :class:`ThreadedFileProducer`, and
    the close delimiter follows it; ``f`` is closed. Range is not honoured here."""
    boundary = secrets.token_hex(16).encode("ascii")
    head = (b"\r\n--" + boundary + b"\r\nContent-Type: application/json\r\n\r\n{}"
            b"\r\n--" + boundary + b"\r\nContent-Type: "
            + _latin1(served_content_type(content_type)) + b"\r\nContent-Disposition: "
            + content_disposition(content_type, file_name).encode("ascii") + b"\r\n\r\n")
    tail = b"\r\n--" + boundary + b"--\r\n"
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", b"multipart/mixed; boundary=" + boundary)
    request.setHeader(b"Content-Length", b"%d" % (len(head) + size + len(tail)))
    if request.method == b"HEAD" or request._disconnected:
        f.close()
        if not request._disconnected:
            request.finish()
        return
    request.write(head)
    ThreadedFileProducer(request, f, 0, size, run_in_thread, trailer=tail).start()


def set_media_security_headers(request: server.Request) -> None:
    """Headers every media response carries, errors included (as Synapse does)."""
    request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
    request.setHeader(b"X-Content-Security-Policy", b"sandbox;")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Cross-Origin-Resource-Policy", b"cross-origin")
    request.setHeader(b"Referrer-Policy", b"no-referrer")
    request.setHeader(b"X-Robots-Tag", b"noindex, nofollow, noarchive, noimageindex")


def _is_token(name: str) -> bool:
    return all(32 < ord(c) < 127 and c not in _FILENAME_SEPARATORS for c in name)


def _latin1(value: str) -> bytes:
    return value.encode("latin-1", "replace")
