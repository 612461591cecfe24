"""Server discovery: the spec's resolution steps, with fake well-known and SRV."""

import dataclasses

from twisted.internet import defer
from twisted.trial import unittest

from federation import discovery
from federation.discovery import Route, ServerResolver, SrvRecord


@dataclasses.dataclass
class FakeResponse:
    body: bytes
    cache_control: str | None = None
    expires: str | None = None


class FakeNet:
    """Well-known answers and SRV records by name; records each request."""

    def __init__(self, well_known=None, srv=None):
        self.well_known = well_known or {}
        self.srv = srv or {}
        self.fetched: list[str] = []
        self.looked_up: list[str] = []

    async def fetch(self, host):
        self.fetched.append(host)
        if host not in self.well_known:
            raise ConnectionError("404")
        return self.well_known[host]

    async def lookup(self, name):
        self.looked_up.append(name)
        return self.srv.get(name, [])


def resolver(net, now=lambda: 1000.0):
    return ServerResolver(fetch_well_known=net.fetch, lookup_srv=net.lookup,
                          clock_seconds=now, rand=lambda: 0.0)


def resolve(r, name) -> Route:
    return defer.ensureDeferred(r.resolve(name))


class PureTest(unittest.TestCase):
    def test_split_server_name(self):
        """Hosts, ports and bracketed IPv6 literals split as the grammar says."""
        self.assertEqual(discovery.split_server_name("example.org"), ("example.org", None))
        self.assertEqual(discovery.split_server_name("example.org:80"), ("example.org", 80))
        self.assertEqual(discovery.split_server_name("[::1]:8448"), ("::1", 8448))
        self.assertEqual(discovery.split_server_name("[::1]"), ("::1", None))
        with self.assertRaises(ValueError):
            discovery.split_server_name("bad name")

    def test_direct_routes(self):
        """IP literals and explicit ports skip discovery; Host is the server name."""
        self.assertEqual(discovery.direct_route("1.2.3.4"),
                         Route("1.2.3.4", "1.2.3.4", (("1.2.3.4", 8448),)))
        self.assertEqual(discovery.direct_route("[::1]:99"),
                         Route("[::1]:99", "::1", (("::1", 99),)))
        self.assertEqual(discovery.direct_route("localhost:8449"),
                         Route("localhost:8449", "localhost", (("localhost", 8449),)))
        self.assertIsNone(discovery.direct_route("example.org"))

    def test_parse_well_known(self):
        """Only an object with a valid m.server string is a delegation."""
        self.assertEqual(discovery.parse_well_known(b'{"m.server": "a.example:443"}'),
                         "a.example:443")
        for bad in [b"", b"[]", b"{}", b'{"m.server": 3}', b'{"m.server": "a b"}',
                    b"\xff", b'{"m.server": "x"' + b" " * 60000 + b"}"]:
            with self.assertRaises(ValueError, msg=bad[:30]):
                discovery.parse_well_known(bad)

    def test_cache_lifetimes(self):
        """max-age wins, then Expires, else a day; always within [5 min, 2 days]."""
        f = discovery.well_known_cache_seconds
        self.assertEqual(f(None, None, 0), 86400)
        self.assertEqual(f("public, max-age=7200", None, 0), 7200)
        self.assertEqual(f("max-age=1", None, 0), 300)
        self.assertEqual(f("max-age=99999999", None, 0), 48 * 3600)
        self.assertEqual(f("no-store", None, 0), 300)
        self.assertEqual(f(None, "Thu, 01 Jan 1970 03:00:00 GMT", 0), 3 * 3600)
        self.assertEqual(f(None, "garbage", 0), 86400)

    def test_srv_order(self):
        """Lower priority first; a lone "." target means no service."""
        records = [SrvRecord(20, 0, "c.example.", 3), SrvRecord(10, 5, "a.example.", 1),
                   SrvRecord(10, 5, "b.example.", 2)]
        self.assertEqual(discovery.order_srv(records, lambda: 0.0),
                         [("a.example", 1), ("b.example", 2), ("c.example", 3)])
        self.assertEqual(discovery.order_srv(records, lambda: 0.99),
                         [("b.example", 2), ("a.example", 1), ("c.example", 3)])
        self.assertEqual(discovery.order_srv([SrvRecord(0, 0, ".", 0)]), [])


class ResolverTest(unittest.TestCase):
    async def test_explicit_port_needs_no_lookups(self):
        """A name with a port is connected to directly, without well-known or DNS."""
        net = FakeNet()
        route = await resolve(resolver(net), "localhost:8448")
        self.assertEqual(route.targets, (("localhost", 8448),))
        self.assertEqual((net.fetched, net.looked_up), ([], []))

    async def test_delegation_with_port(self):
        """A well-known naming host:port routes there with Host = the delegated name."""
        net = FakeNet({"example.org": FakeResponse(b'{"m.server": "matrix.example.org:443"}')})
        route = await resolve(resolver(net), "example.org")
        self.assertEqual(route, Route("matrix.example.org:443", "matrix.example.org",
                                      (("matrix.example.org", 443),)))

    async def test_delegation_then_srv(self):
        """A delegated name without port is looked up in SRV; Host stays the delegate."""
        net = FakeNet({"example.org": FakeResponse(b'{"m.server": "m.example.org"}')},
                      {"_matrix-fed._tcp.m.example.org": [SrvRecord(0, 0, "srv.example.", 9)]})
        route = await resolve(resolver(net), "example.org")
        self.assertEqual(route, Route("m.example.org", "m.example.org", (("srv.example", 9),)))

    async def test_deprecated_srv_then_8448(self):
        """Without well-known: _matrix-fed, then _matrix, then port 8448."""
        net = FakeNet(srv={"_matrix._tcp.old.example": [SrvRecord(0, 0, "legacy.example", 7)]})
        r = resolver(net)
        self.assertEqual((await resolve(r, "old.example")).targets, (("legacy.example", 7),))
        self.assertEqual(net.looked_up, ["_matrix-fed._tcp.old.example",
                                         "_matrix._tcp.old.example"])
        route = await resolve(r, "plain.example")
        self.assertEqual(route, Route("plain.example", "plain.example",
                                      (("plain.example", 8448),)))

    async def test_dns_failure_falls_through(self):
        """An SRV lookup that errors counts as no record."""
        net = FakeNet()

        async def broken(name):
            raise OSError("SERVFAIL")

        r = ServerResolver(fetch_well_known=net.fetch, lookup_srv=broken)
        self.assertEqual((await resolve(r, "x.example")).targets, (("x.example", 8448),))

    async def test_well_known_cached_per_headers(self):
        """A good answer is reused until its max-age passes, then fetched again."""
        now = [1000.0]
        net = FakeNet({"example.org": FakeResponse(b'{"m.server": "m.example.org:1"}',
                                                   cache_control="max-age=600")})
        r = resolver(net, lambda: now[0])
        await resolve(r, "example.org")
        now[0] += 599
        await resolve(r, "example.org")
        self.assertEqual(len(net.fetched), 1)
        now[0] += 2
        await resolve(r, "example.org")
        self.assertEqual(len(net.fetched), 2)

    async def test_failure_cached_for_an_hour(self):
        """A missing or invalid well-known is remembered for an hour, then retried."""
        now = [0.0]
        net = FakeNet({"bad.example": FakeResponse(b"not json")})
        r = resolver(net, lambda: now[0])
        self.assertEqual((await resolve(r, "bad.example")).targets, (("bad.example", 8448),))
        now[0] += 3599
        await resolve(r, "bad.example")
        self.assertEqual(net.fetched, ["bad.example"])
        now[0] += 2
        await resolve(r, "bad.example")
        self.assertEqual(net.fetched, ["bad.example"] * 2)
