"""Outbound requests never reach private or loopback addresses unless allowed (SSRF).

A user can make the server send requests to URLs of their choosing (a pusher's
gateway URL today; URL previews and federation destinations later). Without a filter
that lets anyone probe the server's own network: ``http://127.0.0.1:5432/``,
cloud metadata services at ``169.254.169.254``, machines on the LAN.

:func:`is_blocked` decides for one address: everything that is not a globally
routable unicast address is blocked (loopback, RFC 1918 and other private ranges,
carrier-grade NAT, link-local, multicast, documentation and reserved ranges; IPv4
mapped into IPv6 is judged as IPv4), plus the operator's ``ip_range_blacklist``;
``ip_range_whitelist`` (Synapse's key) lets chosen ranges through again, e.g. a push
gateway on the same machine.

:class:`FilteringReactor` applies it where it cannot be dodged: at name resolution.
Twisted's ``HostnameEndpoint`` (used by ``Agent``) asks ``reactor.nameResolver`` for
the addresses to connect to, IP literals included, so dropping blocked addresses
there also covers a DNS name that resolves to a private address, and there is no
window between checking a name and connecting to what it resolved to.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable

from zope.interface import implementer
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ranges(ranges: Iterable[str]) -> tuple[Network, ...]:
    """CIDR strings (a bare address is a /32 or /128) as networks; ValueError if bad."""
    return tuple(ipaddress.ip_network(r, strict=False) for r in ranges)


class AddressPolicy:
    """Which outbound addresses are allowed (see the module docstring)."""

    def __init__(self, *, whitelist: Iterable[str] = (), blacklist: Iterable[str] = ()):
        self.whitelist = parse_ranges(whitelist)
        self.blacklist = parse_ranges(blacklist)

    def is_blocked(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
        except ValueError:
            return True  # not an address at all: never connect to it
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.whitelist if net.version == ip.version):
            return False
        if any(ip in net for net in self.blacklist if net.version == ip.version):
            return True
        return not ip.is_global or ip.is_multicast


@implementer(IResolutionReceiver)
class _FilteringReceiver:
    def __init__(self, receiver: Any, policy: AddressPolicy) -> None:
        self._receiver = receiver
        self._policy = policy

    def resolutionBegan(self, resolution: Any) -> None:
        self._receiver.resolutionBegan(resolution)

    def addressResolved(self, address: Any) -> None:
        if not self._policy.is_blocked(address.host):
            self._receiver.addressResolved(address)

    def resolutionComplete(self) -> None:
        self._receiver.resolutionComplete()


@implementer(IHostnameResolver)
class _FilteringResolver:
    def __init__(self, resolver: Any, policy: AddressPolicy) -> None:
        self._resolver = resolver
        self._policy = policy

    def resolveHostName(self, resolutionReceiver: Any, hostName: str, portNumber: int = 0,
                        addressTypes: Any = None, transportSemantics: str = "TCP") -> Any:
        return self._resolver.resolveHostName(
            _FilteringReceiver(resolutionReceiver, self._policy), hostName, portNumber,
            addressTypes, transportSemantics)


class FilteringReactor:
    """The reactor, except that its ``nameResolver`` never yields a blocked address.

    Give it to ``Agent``: a request to a blocked host then fails with Twisted's
    ``DNSLookupError`` (no addresses), as if the name did not resolve.
    """

    def __init__(self, reactor: Any, policy: AddressPolicy) -> None:
        self._reactor = reactor
        self.nameResolver = _FilteringResolver(reactor.nameResolver, policy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)
