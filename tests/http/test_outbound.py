"""Outbound requests never reach private or loopback addresses unless allowed."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import DNSLookupError
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.client import HTTPConnectionPool

from homeserver.http.outbound import AddressPolicy, FilteringReactor, parse_ranges
from homeserver.push.delivery import treq_post


class PolicyTests(unittest.TestCase):
    def test_private_and_special_ranges_blocked_by_default(self):
        """Loopback, RFC 1918, CGNAT, link-local, metadata, multicast, v6 ULA are blocked."""
        policy = AddressPolicy()
        for address in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                        "100.64.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
                        "::1", "fc00::1", "fe80::1%eth0", "::ffff:127.0.0.1",
                        "192.0.2.1", "not-an-address"):
            self.assertTrue(policy.is_blocked(address), address)

    def test_public_addresses_allowed(self):
        """Globally routable unicast addresses pass."""
        policy = AddressPolicy()
        for address in ("93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
            self.assertFalse(policy.is_blocked(address), address)

    def test_whitelist_and_blacklist(self):
        """ip_range_whitelist lets a range through; ip_range_blacklist adds one."""
        policy = AddressPolicy(whitelist=["127.0.0.0/8"], blacklist=["8.8.8.0/24"])
        self.assertFalse(policy.is_blocked("127.0.0.1"))
        self.assertTrue(policy.is_blocked("8.8.8.8"))
        self.assertTrue(policy.is_blocked("10.0.0.1"))

    def test_bad_range_rejected(self):
        """A malformed CIDR is a ValueError (the config turns it into a ConfigError)."""
        self.assertRaises(ValueError, parse_ranges, ["10.0.0.0/33"])


class _Resolver:
    def __init__(self, hosts):
        self.hosts = hosts

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None,
                        transportSemantics="TCP"):
        receiver.resolutionBegan(None)
        for host in self.hosts:
            receiver.addressResolved(IPv4Address("TCP", host, portNumber))
        receiver.resolutionComplete()


class _Receiver:
    def __init__(self):
        self.addresses, self.complete = [], False

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self.addresses.append(address.host)

    def resolutionComplete(self):
        self.complete = True


class _FakeReactor:
    def __init__(self, hosts):
        self.nameResolver = _Resolver(hosts)
        self.other = "passed through"


class FilteringReactorTests(unittest.TestCase):
    def test_resolution_drops_blocked_addresses(self):
        """A name resolving to private and public addresses yields only the public ones."""
        wrapped = FilteringReactor(_FakeReactor(["10.0.0.5", "93.184.216.34"]),
                                   AddressPolicy())
        receiver = _Receiver()
        wrapped.nameResolver.resolveHostName(receiver, "gateway.example", 443)
        self.assertEqual(receiver.addresses, ["93.184.216.34"])
        self.assertTrue(receiver.complete)
        self.assertEqual(wrapped.other, "passed through")


class _Notify(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.hits = 0

    def render_POST(self, request):
        self.hits += 1
        request.setHeader(b"content-type", b"application/json")
        return b'{"rejected": []}'


class PushGatewayAddressTests(unittest.TestCase):
    """The real push client against a gateway on loopback."""

    def setUp(self):
        self.gateway = _Notify()
        self.port = reactor.listenTCP(0, server.Site(self.gateway), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/_matrix/push/v1/notify"

    @defer.inlineCallbacks
    def test_loopback_gateway_refused_by_default(self):
        """With the default policy the request fails without reaching the gateway."""
        post = treq_post(reactor, AddressPolicy(), timeout=5)
        yield self.assertFailure(defer.ensureDeferred(post(self.url, {"notification": {}})),
                                 DNSLookupError)
        self.assertEqual(self.gateway.hits, 0)

    @defer.inlineCallbacks
    def test_loopback_gateway_allowed_by_whitelist(self):
        """ip_range_whitelist lets the same request through."""
        pool = HTTPConnectionPool(reactor, persistent=False)
        post = treq_post(reactor, AddressPolicy(whitelist=["127.0.0.1"]), timeout=5,
                         pool=pool)
        status, answer = yield defer.ensureDeferred(post(self.url, {"notification": {}}))
        self.assertEqual((status, answer), (200, {"rejected": []}))
        self.assertEqual(self.gateway.hits, 1)
        yield pool.closeCachedConnections()
