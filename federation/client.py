"""Outbound federation requests: signed, discovered, TLS-verified, SSRF-filtered.

Spec: Server-Server API, "Server discovery", "Authentication" (request signing) and
"TLS". :class:`FederationClient` sends a request to a destination *server name*:

- discovery (:mod:`federation.discovery`) picks the addresses, the ``Host`` header and
  the certificate name; connections go through a ``matrix-federation://`` endpoint
  that connects over TLS with that name as SNI (:mod:`federation.tls`);
- every request carries one ``Authorization: X-Matrix`` header per signing key;
- every connection goes through the SSRF filter (:mod:`homeserver.http.outbound`), so
  a server name resolving to a private or loopback address is refused unless
  ``ip_range_whitelist`` lets it through;
- a remote error is a :class:`RemoteError`, never a ``MatrixError``: a remote 500 must
  not become ours (STYLE.md 10). Callers translate it for their own clients.

Twisted's HTTP client, endpoints and DNS modules pull in pyOpenSSL, so they are
imported when the first request is made, not at start (tests/test_app.py).

Redirects are not followed (federation endpoints never redirect); the well-known
fetch, which may, has its own agent.
"""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any, Mapping, Sequence
from urllib.parse import urlencode

from twisted.internet import defer, error as net_error, protocol
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.web import http
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from zope.interface import implementer

from federation import xmatrix
from federation.discovery import WELL_KNOWN_MAX_BYTES, ServerResolver, SrvRecord
from federation.tls import FederationTls
from homeserver.crypto.canonical_json import encode_canonical_json
from homeserver.crypto.signing import SigningKey
from homeserver.http.outbound import AddressPolicy, FilteringReactor

log = Logger()

USER_AGENT = b"roomserver"
DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
#: the largest JSON response we read (Synapse allows 100 MiB for /state and friends)
MAX_JSON_RESPONSE = 100 * 1024 * 1024
_MAX_ERROR_BODY = 64 * 1024


class RemoteError(Exception):
    """A remote server failed a request of ours (unreachable, or it said no)."""

    def __init__(self, destination: str, message: str) -> None:
        super().__init__(f"{destination}: {message}")
        self.destination = destination


class RemoteUnreachable(RemoteError):
    """No answer: DNS, connection, TLS, timeout, or a response we could not read."""


class RemoteHttpError(RemoteError):
    """The remote answered with a non-2xx status (``errcode``/``error`` if it sent JSON)."""

    def __init__(self, destination: str, status: int, body: bytes) -> None:
        self.status = status
        self.errcode: str | None = None
        self.error: str | None = None
        try:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                self.errcode = parsed.get("errcode") if isinstance(
                    parsed.get("errcode"), str) else None
                self.error = parsed.get("error") if isinstance(parsed.get("error"), str) else None
        except (ValueError, UnicodeDecodeError):
            pass
        super().__init__(destination, f"HTTP {status} {self.errcode or ''} {self.error or ''}"
                         .rstrip())


class ResponseTooLarge(RemoteUnreachable):
    pass


# -- reading bodies -------------------------------------------------------------------------

class _Collector(protocol.Protocol):
    def __init__(self, finished: defer.Deferred, limit: int) -> None:
        self._finished, self._limit = finished, limit
        self._parts: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self._finished.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._finished.errback(ResponseTooLarge("", f"body over {self._limit} bytes"))
            self.transport.stopProducing()
            return
        self._parts.append(data)

    def connectionLost(self, reason) -> None:
        from twisted.web.client import ResponseDone

        if self._finished.called:
            return
        if reason.check(ResponseDone, http.PotentialDataLoss):
            self._finished.callback(b"".join(self._parts))
        else:
            self._finished.errback(reason)


def read_body(response: IResponse, limit: int) -> defer.Deferred:
    """The whole body of ``response`` (bytes), failing with ResponseTooLarge past ``limit``."""
    finished: defer.Deferred = defer.Deferred()
    response.deliverBody(_Collector(finished, limit))
    return finished


# -- connecting ----------------------------------------------------------------------------

@implementer(IStreamClientEndpoint)
class _FederationEndpoint:
    """Connects to a server name: discovery's targets in order, TLS for its name."""

    def __init__(self, reactor: Any, resolver: ServerResolver, tls: FederationTls,
                 server_name: str) -> None:
        self._reactor, self._resolver, self._tls = reactor, resolver, tls
        self._server_name = server_name

    def connect(self, protocol_factory: Any) -> defer.Deferred:
        return defer.ensureDeferred(self._connect(protocol_factory))

    async def _connect(self, protocol_factory: Any) -> Any:
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

        route = await self._resolver.resolve(self._server_name)
        failure: Exception = net_error.ConnectError("no addresses to try")
        for host, port in route.targets:
            endpoint = wrapClientTLS(
                self._tls.creator_for(route.tls_name),
                HostnameEndpoint(self._reactor, host, port, timeout=CONNECT_TIMEOUT_S))
            try:
                return await endpoint.connect(protocol_factory)
            except Exception as e:  # try the next SRV target
                failure = e
        raise failure


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    def __init__(self, reactor: Any, resolver: ServerResolver, tls: FederationTls) -> None:
        self._reactor, self._resolver, self._tls = reactor, resolver, tls

    def endpointForURI(self, uri: Any) -> _FederationEndpoint:
        # the URI's netloc is the destination server name, verbatim
        return _FederationEndpoint(self._reactor, self._resolver, self._tls,
                                   uri.netloc.decode("ascii"))


# -- the client ----------------------------------------------------------------------------

class FederationClient:
    """Signed requests to other servers (module docstring)."""

    def __init__(self, *, reactor: Any, server_name: str, signing_keys: Sequence[SigningKey],
                 resolver: ServerResolver, tls: FederationTls, address_policy: AddressPolicy,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._reactor = reactor
        self.server_name = server_name
        self._keys = tuple(signing_keys)
        self._resolver = resolver
        self._timeout = timeout
        self._endpoints = _EndpointFactory(FilteringReactor(reactor, address_policy),
                                           resolver, tls)
        self._pool: Any = None
        self._agent_: Any = None

    @property
    def _agent(self) -> Any:
        if self._agent_ is None:
            from twisted.web.client import Agent, HTTPConnectionPool

            self._pool = HTTPConnectionPool(self._reactor, persistent=True)
            self._pool.maxPersistentPerHost = 5
            self._pool.cachedConnectionTimeout = 120
            self._agent_ = Agent.usingEndpointFactory(self._reactor, self._endpoints,
                                                      pool=self._pool)
        return self._agent_

    def close(self) -> defer.Deferred | None:
        """Drop pooled connections (on shutdown)."""
        return None if self._pool is None else self._pool.closeCachedConnections()

    async def get_json(self, destination: str, path: str,
                       args: Mapping[str, Any] | None = None, *, timeout: float | None = None,
                       sign: bool = True) -> Any:
        return await self._json("GET", destination, path, args, None, timeout, sign)

    async def put_json(self, destination: str, path: str, body: Any,
                       args: Mapping[str, Any] | None = None, *,
                       timeout: float | None = None) -> Any:
        return await self._json("PUT", destination, path, args, body, timeout, True)

    async def post_json(self, destination: str, path: str, body: Any,
                        args: Mapping[str, Any] | None = None, *,
                        timeout: float | None = None, sign: bool = True) -> Any:
        return await self._json("POST", destination, path, args, body, timeout, sign)

    async def get_response(self, destination: str, path: str,
                           args: Mapping[str, Any] | None = None, *,
                           timeout: float | None = None) -> IResponse:
        """A signed GET whose 2xx response is returned unread, for streaming bodies
        (media); read it with :func:`read_body` or ``deliverBody``. Non-2xx raises."""
        response = await self._send("GET", destination, path, args, None,
                                    timeout or self._timeout, True)
        if not 200 <= response.code < 300:
            await self._raise_http_error(destination, response, timeout)
        return response

    # -- internals -----------------------------------------------------------------------
    async def _json(self, method: str, destination: str, path: str,
                    args: Mapping[str, Any] | None, body: Any, timeout: float | None,
                    sign: bool) -> Any:
        timeout = timeout or self._timeout
        response = await self._send(method, destination, path, args, body, timeout, sign)
        if not 200 <= response.code < 300:
            await self._raise_http_error(destination, response, timeout)
        data = await self._read(destination, response, MAX_JSON_RESPONSE, timeout)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise RemoteUnreachable(destination, "response is not JSON") from None

    async def _send(self, method: str, destination: str, path: str,
                    args: Mapping[str, Any] | None, body: Any, timeout: float,
                    sign: bool) -> IResponse:
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        uri = path + ("?" + urlencode(args, doseq=True) if args else "")
        try:
            route = await self._resolver.resolve(destination)
        except ValueError as e:
            raise RemoteUnreachable(destination, str(e)) from None
        headers = Headers({b"Host": [route.host_header.encode("ascii")],
                           b"User-Agent": [USER_AGENT]})
        producer = None
        if body is not None:
            from twisted.web.client import FileBodyProducer

            headers.addRawHeader(b"Content-Type", b"application/json")
            producer = FileBodyProducer(BytesIO(encode_canonical_json(body)))
        if sign:
            for value in xmatrix.sign_request(self._keys, method=method, uri=uri,
                                              origin=self.server_name,
                                              destination=destination, content=body):
                headers.addRawHeader(b"Authorization", value.encode("ascii"))
        url = f"matrix-federation://{destination}{uri}".encode("ascii")
        d = self._agent.request(method.encode("ascii"), url, headers, producer)
        d.addTimeout(timeout, self._reactor)
        try:
            return await d
        except defer.TimeoutError:
            raise RemoteUnreachable(destination, f"no response in {timeout:g}s") from None
        except Exception as e:  # DNS, refused, TLS, blocked by the SSRF filter, ...
            raise RemoteUnreachable(destination, _describe(e)) from None

    async def _read(self, destination: str, response: IResponse, limit: int,
                    timeout: float) -> bytes:
        d = read_body(response, limit)
        d.addTimeout(timeout, self._reactor)
        try:
            return await d
        except ResponseTooLarge:
            raise ResponseTooLarge(destination, f"response over {limit} bytes") from None
        except Exception as e:
            raise RemoteUnreachable(destination, f"reading the response: {_describe(e)}") \
                from None

    async def _raise_http_error(self, destination: str, response: IResponse,
                                timeout: float | None) -> None:
        try:
            body = await self._read(destination, response, _MAX_ERROR_BODY,
                                    timeout or self._timeout)
        except RemoteUnreachable:
            body = b""
        raise RemoteHttpError(destination, response.code, body)


def _describe(e: BaseException) -> str:
    reasons = getattr(e, "reasons", None)  # ResponseNeverReceived wraps Failures
    if reasons:
        return "; ".join(_describe(r.value) for r in reasons)
    return f"{type(e).__name__}: {e}"


# -- discovery I/O: the well-known fetch and SRV lookups ----------------------------------

class _WellKnown:
    def __init__(self, body: bytes, cache_control: str | None, expires: str | None) -> None:
        self.body, self.cache_control, self.expires = body, cache_control, expires


class WellKnownFetcher:
    """``GET https://<host>/.well-known/matrix/server`` (redirects followed), filtered."""

    def __init__(self, reactor: Any, tls: FederationTls, address_policy: AddressPolicy,
                 timeout: float = 10.0) -> None:
        self._reactor = reactor
        self._tls = tls
        self._policy = address_policy
        self._timeout = timeout
        self._agent: Any = None

    async def __call__(self, host: str) -> _WellKnown:
        if self._agent is None:
            from twisted.web.client import Agent, HTTPConnectionPool, RedirectAgent

            self._agent = RedirectAgent(Agent(
                FilteringReactor(self._reactor, self._policy), contextFactory=self._tls,
                connectTimeout=self._timeout,
                pool=HTTPConnectionPool(self._reactor, persistent=False)), redirectLimit=5)
        netloc = f"[{host}]" if ":" in host else host
        d = self._agent.request(b"GET",
                                f"https://{netloc}/.well-known/matrix/server".encode("idna"),
                                Headers({b"User-Agent": [USER_AGENT]}))
        d.addTimeout(self._timeout, self._reactor)
        response = await d
        body_d = read_body(response, WELL_KNOWN_MAX_BYTES)
        body_d.addTimeout(self._timeout, self._reactor)
        body = await body_d
        if response.code != 200:
            raise ValueError(f"well-known answered {response.code}")
        first = response.headers.getRawHeaders

        def header(name: bytes) -> str | None:
            values = first(name)
            return values[0].decode("latin-1") if values else None

        return _WellKnown(body, header(b"Cache-Control"), header(b"Expires"))


class SrvLookup:
    """SRV records through ``twisted.names`` (the system's resolvers, cached)."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._resolver: Any = None

    async def __call__(self, name: str) -> list[SrvRecord]:
        from twisted.names import client as dns_client, dns, error as dns_error

        if self._resolver is None:
            self._resolver = dns_client.createResolver(reactor=self._reactor)
        try:
            answers, _, _ = await self._resolver.lookupService(name)
        except (dns_error.DNSNameError, dns_error.DomainError):
            return []
        return [SrvRecord(a.payload.priority, a.payload.weight,
                          a.payload.target.name.decode("ascii"), a.payload.port)
                for a in answers if a.type == dns.SRV]


def build_federation_client(*, reactor: Any, server_name: str,
                            signing_keys: Sequence[SigningKey], verify_certificates: bool,
                            custom_ca_paths: Sequence[str],
                            address_policy: AddressPolicy) -> FederationClient:
    """The client as the config asks for it (called by the composition root)."""
    tls = FederationTls(verify=verify_certificates, custom_ca_paths=custom_ca_paths)
    resolver = ServerResolver(
        fetch_well_known=WellKnownFetcher(reactor, tls, address_policy),
        lookup_srv=SrvLookup(reactor), clock_seconds=reactor.seconds)
    return FederationClient(reactor=reactor, server_name=server_name,
                            signing_keys=signing_keys, resolver=resolver, tls=tls,
                            address_policy=address_policy)
