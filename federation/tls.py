"""TLS for outbound federation: verify the peer's certificate for the name discovery
chose, sending that name as SNI (spec: Server-Server API, "Server discovery" and
"TLS": certificates must be valid for the server name and signed by a known CA).

Trusted roots are the system's plus ``federation_custom_ca_list`` (a CA for a test
federation on loopback). ``federation_verify_certificates: false`` turns verification
off altogether (still sending SNI) — for tests only, as in Synapse.

pyOpenSSL is imported on the first outbound connection, not at start: a server that
never federates never pays for it (tests/test_app.py checks that start stays lean).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

_PEM_CERT_RE = re.compile(
    rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def read_ca_pems(paths: Iterable[str]) -> list[bytes]:
    """Every PEM certificate block in the files (a file may hold a bundle).

    Raises OSError for an unreadable file and ValueError for one without certificates,
    so a bad ``federation_custom_ca_list`` stops the server at start.
    """
    blocks = []
    for path in paths:
        with open(path, "rb") as f:
            found = _PEM_CERT_RE.findall(f.read())
        if not found:
            raise ValueError(f"{path}: no PEM certificate found")
        blocks += found
    return blocks


def _make_creators(extra_pems: list[bytes]) -> tuple[Any, Any]:
    """(trust root: system + extra CAs, class of the unverified creator) — built on
    first use because it needs pyOpenSSL."""
    from OpenSSL import SSL, crypto
    from twisted.internet._sslverify import IOpenSSLTrustRoot
    from twisted.internet.abstract import isIPAddress, isIPv6Address
    from twisted.internet.interfaces import IOpenSSLClientConnectionCreator

    extra = [crypto.load_certificate(crypto.FILETYPE_PEM, pem) for pem in extra_pems]

    @implementer(IOpenSSLTrustRoot)
    class SystemAndCustomRoots:
        def _addCACertsToContext(self, context: SSL.Context) -> None:
            context.set_default_verify_paths()
            store = context.get_cert_store()
            for cert in extra:
                store.add_cert(cert)

    @implementer(IOpenSSLClientConnectionCreator)
    class UnverifiedCreator:
        """SNI but no certificate check (``federation_verify_certificates: false``)."""

        def __init__(self, context: SSL.Context, hostname: str) -> None:
            self._context = context
            self._sni = None if isIPAddress(hostname) or isIPv6Address(hostname) \
                else hostname.encode("idna")

        def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
            connection = SSL.Connection(self._context, None)
            connection.set_app_data(tls_protocol)
            if self._sni is not None:
                connection.set_tlsext_host_name(self._sni)
            return connection

    return SystemAndCustomRoots(), UnverifiedCreator


@implementer(IPolicyForHTTPS)
class FederationTls:
    """Makes the TLS connection creator for a hostname, per the config. Also an
    ``IPolicyForHTTPS``, so a plain ``Agent`` (the well-known fetch) uses it."""

    def __init__(self, *, verify: bool = True, custom_ca_paths: Iterable[str] = ()) -> None:
        self._verify = verify
        self._pems = read_ca_pems(custom_ca_paths)
        self._built: tuple[Any, Any, Any] | None = None

    def creator_for(self, hostname: str) -> Any:
        """An ``IOpenSSLClientConnectionCreator`` for a server known as ``hostname``."""
        from twisted.internet import ssl

        if self._built is None:
            roots, unverified = _make_creators(self._pems)
            context = ssl.CertificateOptions(verify=False).getContext()
            self._built = (roots, unverified, context)
        roots, unverified, context = self._built
        if not self._verify:
            return unverified(context, hostname)
        return ssl.optionsForClientTLS(hostname, trustRoot=roots)

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self.creator_for(hostname.decode("ascii"))
