"""An incremental ``multipart/mixed`` reader (RFC 2046 §5.1) for federation media
downloads (spec: Server-Server API, "Content Repository", ``GET
/_matrix/federation/v1/media/download/{mediaId}``: two parts, JSON metadata and then
the bytes or a ``Location``). Pure: no I/O, no twisted.

Bytes go in as they arrive (:meth:`MultipartReader.feed`, any chunking, a delimiter
may be split across chunks) and come out as events; body bytes are handed on as soon
as they cannot be the start of a delimiter, so a part is never held whole. Lines end
in CRLF as the RFC says; a bare LF is not a line end.
"""

from __future__ import annotations

import dataclasses
import re
import urllib.parse


class MultipartError(Exception):
    """The body is not the multipart/mixed it claims to be."""


@dataclasses.dataclass(frozen=True)
class PartStart:
    """A part begins; header names are lower-case (the last of a repeated name wins)."""

    headers: dict[str, str]


@dataclasses.dataclass(frozen=True)
class PartData:
    data: bytes


@dataclasses.dataclass(frozen=True)
class PartEnd:
    pass


@dataclasses.dataclass(frozen=True)
class End:
    """The close delimiter was read; anything after it (the epilogue) is ignored."""


Event = PartStart | PartData | PartEnd | End

_PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _DONE = range(5)
#: RFC 2046: boundaries are 1–70 characters from this set (a trailing space excluded)
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class MultipartReader:
    def __init__(self, boundary: str, *, max_header_bytes: int = 16 * 1024,
                 max_preamble_bytes: int = 16 * 1024) -> None:
        if not _BOUNDARY_RE.fullmatch(boundary):
            raise MultipartError("invalid boundary")
        # a delimiter is CRLF "--" boundary; the CRLF before the first one may be
        # absent, so the stream is read as if it began with CRLF
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        self._buf = b"\r\n"
        self._state = _PREAMBLE
        self._max_header = max_header_bytes
        self._max_preamble = max_preamble_bytes
        self._skipped = 0

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> list[Event]:
        """The events the bytes read so far complete; MultipartError if malformed."""
        if self._state == _DONE:
            return []
        self._buf += data
        events: list[Event] = []
        while self._step(events):
            pass
        return events

    def close(self) -> None:
        """The body ended: MultipartError unless the close delimiter was read."""
        if self._state != _DONE:
            raise MultipartError("body ended before the closing boundary")

    def _step(self, events: list[Event]) -> bool:
        """One transition if the buffer allows it; False when more bytes are needed."""
        buf, delim = self._buf, self._delimiter
        if self._state == _PREAMBLE:
            i = buf.find(delim)
            if i < 0:
                keep = len(delim) - 1
                self._skipped += max(0, len(buf) - keep)
                if self._skipped > self._max_preamble:
                    raise MultipartError("no boundary found")
                self._buf = buf[-keep:] if len(buf) > keep else buf
                return False
            self._buf = buf[i + len(delim):]
            self._state = _AFTER_DELIMITER
            return True
        if self._state == _AFTER_DELIMITER:
            if len(buf) < 2:
                return False
            if buf.startswith(b"--"):
                self._state = _DONE
                self._buf = b""
                events.append(End())
                return False
            # RFC 2046: linear whitespace may follow a delimiter before its CRLF
            stripped = buf.lstrip(b" \t")
            if len(stripped) < 2:
                return False
            if not stripped.startswith(b"\r\n"):
                raise MultipartError("boundary not followed by CRLF")
            self._buf = stripped[2:]
            self._state = _HEADERS
            return True
        if self._state == _HEADERS:
            if self._buf.startswith(b"\r\n"):  # a part without headers
                block, rest = b"", self._buf[2:]
            else:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(buf) > self._max_header:
                        raise MultipartError("part headers too long")
                    return False
                block, rest = buf[:i], buf[i + 4:]
            events.append(PartStart(parse_headers(block)))
            self._buf = rest
            self._state = _BODY
            return True
        if self._state == _BODY:
            i = buf.find(delim)
            if i < 0:
                # hand on all but what could be the start of a split delimiter
                safe = len(buf) - (len(delim) - 1)
                if safe > 0:
                    events.append(PartData(buf[:safe]))
                    self._buf = buf[safe:]
                return False
            if i:
                events.append(PartData(buf[:i]))
            events.append(PartEnd())
            self._buf = buf[i + len(delim):]
            self._state = _AFTER_DELIMITER
            return True
        return False


def parse_headers(block: bytes) -> dict[str, str]:
    """``Name: value`` lines (CRLF-separated) as a dict with lower-case names."""
    headers: dict[str, str] = {}
    if not block:
        return headers
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        name_s = name.decode("latin-1")
        if not sep or not _TOKEN_RE.fullmatch(name_s):
            raise MultipartError("malformed part header")
        headers[name_s.lower()] = value.strip(b" \t").decode("latin-1")
    return headers


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """A ``Content-Type`` as its lower-case ``type/subtype`` and its parameters
    (names lower-case, quoted values unquoted)."""
    kind, _, rest = value.partition(";")
    return kind.strip().lower(), _parameters(rest)


def boundary_of(content_type: str | None) -> str:
    """The boundary of a ``multipart/mixed`` Content-Type; MultipartError otherwise."""
    if not content_type:
        raise MultipartError("no Content-Type")
    kind, params = parse_content_type(content_type)
    if kind != "multipart/mixed" or not params.get("boundary"):
        raise MultipartError(f"not multipart/mixed with a boundary: {content_type!r}")
    return params["boundary"]


def filename_from_disposition(value: str | None) -> str | None:
    """The file name of a ``Content-Disposition`` (RFC 6266): ``filename*`` (RFC 5987,
    UTF-8) wins over ``filename``; None if there is none or it cannot be read."""
    if not value:
        return None
    params = _parameters(value.partition(";")[2])
    extended = params.get("filename*")
    if extended is not None:
        charset, _, rest = extended.partition("'")
        _, _, encoded = rest.partition("'")
        if charset.lower() in ("utf-8", "us-ascii"):
            try:
                return urllib.parse.unquote(encoded, encoding="utf-8", errors="strict") or None
            except UnicodeDecodeError:
                pass
    return params.get("filename") or None


def _parameters(rest: str) -> dict[str, str]:
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            value_chars: list[str] = []
            i += 1
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                value_chars.append(rest[i])
                i += 1
            i += 1
            value = "".join(value_chars)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            value = rest[i:end].strip()
            i = end
        if name:
            params[name] = value
    return params
