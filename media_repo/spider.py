"""Fetch a URL a user asked to preview, without letting them use us to probe networks.

Every request, the first and each redirect's, goes through three gates:

1. the scheme is http or https;
2. ``url_preview_url_blacklist`` (Synapse's semantics: a list of mappings from
   ``urlsplit`` attributes to patterns, a URL is blocked if *all* attributes of one
   entry match; a pattern starting with ``^`` is a regular expression, any other a
   glob);
3. the address: an IP literal that :class:`~homeserver.http.outbound.AddressPolicy`
   blocks is refused with 403 "IP address blocked" before connecting, and a host
   name reaches the network only through the
   :class:`~homeserver.http.outbound.FilteringReactor`, so one that resolves only to
   blocked addresses fails like a name that does not resolve.

The body is read up to ``max_size`` bytes and no further (a larger one fails with
``M_TOO_LARGE``, as in Synapse), a whole fetch, redirects included, has one deadline,
and a response whose Content-Type the caller does not want is abandoned unread.
Errors carry Synapse's statuses: 403 blocked, 502 fetch failures, 504 a timeout before
the response headers arrive.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import re
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import unquote, urljoin, urlsplit

from twisted.internet import defer, error as net_error, protocol
from twisted.logger import Logger
from twisted.web import http
from twisted.web._newclient import ResponseDone

from homeserver.errors import MatrixError
from homeserver.http.outbound import AddressPolicy, FilteringReactor

log = Logger()

USER_AGENT = "roomserver (bot; URL preview)"
_REDIRECTS = (301, 302, 303, 307, 308)


class PreviewError(MatrixError):
    """Fetching the URL failed (Synapse answers these with 502 M_UNKNOWN)."""

    errcode = "M_UNKNOWN"
    status = 502


def blocked_by_url_rules(url: str, rules: Iterable[Mapping[str, str]]) -> bool:
    """Whether ``url`` matches an entry of ``url_preview_url_blacklist`` (see the
    module docstring; an attribute the URL lacks, e.g. no port, never matches)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    for rule in rules:
        for attribute, pattern in rule.items():
            try:
                value = getattr(parts, attribute)
            except (AttributeError, ValueError):  # .port raises on a bad port
                value = None
            if value is None:
                break
            value = str(value)
            matched = (re.match(pattern, value) if pattern.startswith("^")
                       else fnmatch.fnmatch(value, pattern))
            if not matched:
                break
        else:
            return True
    return False


@dataclasses.dataclass(frozen=True)
class Fetched:
    """A fetched response: the URL it finally came from, after redirects."""

    url: str
    status: int
    content_type: str
    filename: str | None
    body: bytes


def filename_from_disposition(value: str | None) -> str | None:
    """The file name in a Content-Disposition header (``filename*=UTF-8''…`` first)."""
    if not value:
        return None
    m = re.search(r"filename\*\s*=\s*utf-8''([^;\s]+)", value, re.I)
    if m:
        return unquote(m.group(1)) or None
    m = re.search(r'filename\s*=\s*(?:"([^"]*)"|([^;\s]+))', value, re.I)
    if m:
        return (m.group(1) if m.group(1) is not None else m.group(2)) or None
    return None


class _TooLarge(Exception):
    pass


class _CappedBody(protocol.Protocol):
    """Collects a response body, giving up (and closing) past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.done: defer.Deferred = defer.Deferred(lambda d: self._stop())

    def _stop(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self._stop()
            self.done.errback(_TooLarge())
            return
        self.chunks.append(data)

    def connectionLost(self, reason: Any) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, http.PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


class _Discard(protocol.Protocol):
    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()


class Spider:
    """Fetches previewed pages and their images (see the module docstring)."""

    def __init__(self, reactor: Any, policy: AddressPolicy, *,
                 url_rules: Iterable[Mapping[str, str]] = (), max_size: int,
                 timeout: float = 20.0, max_redirects: int = 5,
                 accept_language: Iterable[str] = ("en",), pool: Any = None) -> None:
        self._reactor = reactor
        self._policy = policy
        self._rules = tuple(url_rules)
        self.max_size = max_size
        self._timeout = timeout
        self._max_redirects = max_redirects
        self._accept_language = ", ".join(accept_language)
        self._pool = pool
        self._agent: Any = None  # made on first use: twisted.web.client loads TLS

    def _get_agent(self) -> Any:
        if self._agent is None:
            from twisted.web.client import Agent, HTTPConnectionPool

            # no connection is kept between previews: each target is a stranger's server
            pool = self._pool or HTTPConnectionPool(self._reactor, persistent=False)
            self._agent = Agent(FilteringReactor(self._reactor, self._policy), pool=pool,
                                connectTimeout=self._timeout)
        return self._agent

    def check_url(self, url: str) -> None:
        """Raise unless ``url`` may be fetched: scheme, URL rules, IP literal."""
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise PreviewError("Invalid URL") from None
        if parts.scheme not in ("http", "https") or not host:
            raise PreviewError("Only http and https URLs can be previewed")
        if blocked_by_url_rules(url, self._rules):
            raise PreviewError("URL blocked by url pattern blocklist entry", status=403)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return  # a name: FilteringReactor judges what it resolves to
        if self._policy.is_blocked(host):
            raise PreviewError("IP address blocked", status=403)

    async def fetch(self, url: str, accept: Callable[[str], bool]) -> Fetched:
        """GET ``url`` following redirects; ``accept(content_type)`` decides whether
        the body is wanted. Raises :class:`PreviewError` (a MatrixError)."""
        phase = {"reading": False}
        timed_out = []
        d = defer.ensureDeferred(self._fetch(url, accept, phase))

        def give_up() -> None:
            timed_out.append(True)
            d.cancel()  # aborts the connection in whatever step the fetch is

        deadline = self._reactor.callLater(self._timeout, give_up)
        try:
            return await d
        except Exception:
            # cancelling surfaces as CancelledError or as whatever the step in progress
            # made of it (Agent: ResponseNeverReceived); the deadline tells them apart
            if not timed_out:
                raise
            if phase["reading"]:
                raise PreviewError("Requested file took too long to download",
                                   errcode="M_TOO_LARGE") from None
            raise PreviewError("Timed out", status=504) from None
        finally:
            if deadline.active():
                deadline.cancel()

    async def _fetch(self, url: str, accept: Callable[[str], bool],
                     phase: dict[str, bool]) -> Fetched:
        from treq.client import HTTPClient

        headers = {"User-Agent": [USER_AGENT], "Accept-Language": [self._accept_language]}
        for hop in range(self._max_redirects + 1):
            self.check_url(url)
            # a fresh cookie jar per fetch: one user's cookies never ride on another's
            client = HTTPClient(self._get_agent())
            try:
                response = await client.get(url, headers=headers, allow_redirects=False,
                                            unbuffered=True, reactor=self._reactor)
            except defer.CancelledError:
                raise
            except net_error.DNSLookupError:
                # also what a name resolving only to blocked addresses looks like
                raise PreviewError(
                    "DNS resolution failure during URL preview generation") from None
            except Exception as e:
                log.info("preview fetch of {url} failed: {e!r}", url=url, e=e)
                raise PreviewError("Failed to download content") from None
            location = response.headers.getRawHeaders(b"location", [b""])[0]
            if response.code in _REDIRECTS and location:
                response.deliverBody(_Discard())
                url = urljoin(url, location.decode("latin-1"))
                continue
            return await self._read(response, url, accept, phase)
        raise PreviewError("Too many redirects")

    async def _read(self, response: Any, url: str, accept: Callable[[str], bool],
                    phase: dict[str, bool]) -> Fetched:
        if not 200 <= response.code < 300:
            response.deliverBody(_Discard())
            raise PreviewError(f"Got error {response.code}")
        content_type = response.headers.getRawHeaders(
            b"content-type", [b"application/octet-stream"])[0].decode("latin-1").strip()
        if not accept(content_type):
            response.deliverBody(_Discard())
            raise PreviewError("Requested file's content type not allowed for this "
                               f"operation: {content_type[:100]}")
        length = response.length
        if isinstance(length, int) and length > self.max_size:
            response.deliverBody(_Discard())
            raise self._too_large()
        phase["reading"] = True
        body = _CappedBody(self.max_size)
        response.deliverBody(body)
        try:
            data = await body.done
        except _TooLarge:
            raise self._too_large() from None
        except defer.CancelledError:
            raise
        except Exception as e:
            raise PreviewError(f"Failed to download remote body: {type(e).__name__}") \
                from None
        disposition = response.headers.getRawHeaders(b"content-disposition", [b""])[0]
        return Fetched(url=url, status=response.code, content_type=content_type,
                       filename=filename_from_disposition(disposition.decode("latin-1")),
                       body=data)

    def _too_large(self) -> PreviewError:
        return PreviewError(f"Requested file is too large > {self.max_size} bytes",
                            errcode="M_TOO_LARGE")
