"""Installing the asyncio reactor without loading what nothing uses yet.

Importing Twisted's reactor imports ``twisted.internet.tcp`` and ``posixbase``, which
import pyOpenSSL and ``cryptography`` eagerly (about 11 MB of resident memory) for
``startTLS`` and ``listenSSL``. This server never calls ``startTLS``, and TLS
listeners and HTTPS clients (treq, ``Agent``, ``wrapClientTLS``) only need
``TLSMemoryBIOFactory``, so pyOpenSSL is hidden while the reactor is imported and
loads the first time TLS is really used.

What that costs: TCP transports of this process have no ``startTLS`` (Twisted's own
fallback when pyOpenSSL is missing), so a STARTTLS protocol (SMTP, IMAP, …) must
connect over a TLS endpoint instead. ``listenSSL``/``connectSSL`` keep working: the
installed reactor provides them itself, as ``posixbase`` would.

Likewise ``twisted.web.http`` imports ``h2`` (about 1 MB) for HTTP/2, then gives up
on HTTP/2 if ``priority`` is missing, keeping the half it loaded. When ``priority``
is missing, :func:`install` imports ``twisted.web.http`` with ``h2`` hidden: HTTP/2
is off either way. With both installed, nothing is hidden and HTTP/2 works as usual.

Only ``run_forever`` installs this reactor; tests run on trial's (eager) asyncio
reactor, and ``tests/test_reactor.py`` checks, in a process using this one, that TLS
both ways and HTTP/2 availability are what trial's reactor has.
"""

from __future__ import annotations

import importlib.util
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from zope.interface import implementer


@contextmanager
def _hidden(package: str) -> Iterator[None]:
    """Make ``import package`` fail inside the block (unless it is loaded already).

    A failed import leaves no module behind (importlib removes it from
    ``sys.modules``), so the modules that gave up on it here import it afresh later.
    """
    if package in sys.modules:
        yield
        return
    sys.modules[package] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get(package, ...) is None:
            del sys.modules[package]


with _hidden("OpenSSL"):
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor
    from twisted.internet.interfaces import IReactorSSL


@implementer(IReactorSSL)
class TLSOnFirstUseReactor(AsyncioSelectorReactor):
    """The asyncio reactor; its TLS methods import pyOpenSSL when first called.

    Both do what ``PosixReactorBase`` does when pyOpenSSL was present at import:
    TCP with a ``TLSMemoryBIOFactory`` around the protocol factory.
    """

    def listenSSL(self, port: int, factory: Any, contextFactory: Any,
                  backlog: int = 50, interface: str = "") -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        listening = self.listenTCP(port, TLSMemoryBIOFactory(contextFactory, False, factory),
                                   backlog, interface)
        listening._type = "TLS"  # how the port names itself in logs
        return listening

    def connectSSL(self, host: str, port: int, factory: Any, contextFactory: Any,
                   timeout: float = 30, bindAddress: Any = None) -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self.connectTCP(host, port, TLSMemoryBIOFactory(contextFactory, True, factory),
                               timeout, bindAddress)


def install() -> TLSOnFirstUseReactor:
    """Install a :class:`TLSOnFirstUseReactor` as the global reactor and return it.

    Also imports ``twisted.web.http``, without ``h2`` when HTTP/2 cannot work anyway.
    """
    from twisted.internet.main import installReactor

    reactor = TLSOnFirstUseReactor()
    installReactor(reactor)
    if importlib.util.find_spec("priority") is None:
        with _hidden("h2"):
            import twisted.web.http  # noqa: F401 (HTTP/2 is off without priority)
    return reactor
