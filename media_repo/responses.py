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
import urllib.parse
from typing import BinaryIO

from twisted.web import server, static

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
               file_name: str | None) -> None:
    """Answer ``request`` with the bytes of ``f`` (which this takes ownership of and
    closes): headers, then a producer streaming the file (or the one range asked
    for), which finishes the request."""
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
        request.setResponseCode(200)
        request.setHeader(b"Content-Length", b"%d" % size)
        producer: static.StaticProducer = static.NoRangeStaticProducer(request, f)
    else:
        first, last = wanted
        request.setResponseCode(206)
        request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (first, last, size))
        request.setHeader(b"Content-Length", b"%d" % (last - first + 1))
        producer = static.SingleRangeStaticProducer(request, f, first, last - first + 1)
    if request.method == b"HEAD" or request._disconnected:
        f.close()
        request.finish()
        return
    producer.start()


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
