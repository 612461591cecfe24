"""The reactor ``run_forever`` installs loads pyOpenSSL late, yet TLS works both ways.

Trial has installed its own reactor in this process, so each check runs a fresh
interpreter that installs :mod:`homeserver.reactor` and reports back as JSON.
"""

import json
import os
import subprocess
import sys

import twisted.web.http
from twisted.trial import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Installs the reactor, notes what is loaded, then serves HTTPS with listenSSL and
# fetches it with an Agent (wrapClientTLS) and with connectSSL.
_TLS_ROUND_TRIP = r'''
import json, sys
from homeserver import reactor as reactor_install

reactor = reactor_install.install()
report = {
    "tls_loaded": sorted(m for m in sys.modules if m.split(".")[0] in (
        "OpenSSL", "cryptography", "service_identity") or m in (
        "twisted.protocols.tls", "twisted.internet._newtls", "twisted.internet.ssl",
        "twisted.internet._sslverify")),
    "left_hidden": sorted(m for m, module in sys.modules.items() if module is None),
}

import datetime
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import twisted.web.http
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IReactorSSL
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256()))
cert_pem = cert.public_bytes(serialization.Encoding.PEM)
key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
root = Resource()
root.putChild(b"", Data(b"over tls", "text/plain"))
port = reactor.listenSSL(0, Site(root), PrivateCertificate.loadPEM(key_pem + cert_pem).options(),
                         interface="127.0.0.1")
url = f"https://localhost:{port.getHost().port}/".encode()
trust = Certificate.loadPEM(cert_pem)


class Collect(protocol.Protocol):
    def connectionMade(self):
        self.data = b""
        self.transport.write(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.factory.done.callback(self.data)


async def main():
    report["reactor_provides_ssl"] = IReactorSSL.providedBy(reactor)
    agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trust))
    response = await agent.request(b"GET", url)
    report["agent_body"] = (await readBody(response)).decode()
    factory = protocol.ClientFactory.forProtocol(Collect)
    factory.done = defer.Deferred()
    reactor.connectSSL("127.0.0.1", port.getHost().port, factory,
                       optionsForClientTLS("localhost", trustRoot=trust))
    report["connect_ssl_body"] = (await factory.done).split(b"\r\n\r\n", 1)[-1].decode()
    report["h2_enabled"] = twisted.web.http.H2_ENABLED


def finish(result):
    if isinstance(result, Failure):
        report["error"] = result.getTraceback()
    print(json.dumps(report))
    reactor.stop()


reactor.callWhenRunning(lambda: defer.ensureDeferred(main()).addBoth(finish))
reactor.run()
'''


def run_script(script: str, *args: str) -> dict:
    """Run ``script`` in a fresh interpreter at the repository root; return its JSON."""
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise AssertionError(f"exit {done.returncode}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class TLSOnFirstUseTests(unittest.TestCase):
    def test_tls_loads_late_and_works(self):
        """Installing loads no TLS module and leaves nothing hidden; afterwards
        listenSSL, an HTTPS Agent and connectSSL all work, and HTTP/2 is available
        exactly when it is under trial's reactor."""
        report = run_script(_TLS_ROUND_TRIP)
        self.assertNotIn("error", report)
        self.assertEqual(report["tls_loaded"], [])
        self.assertEqual(report["left_hidden"], [])
        self.assertTrue(report["reactor_provides_ssl"])
        self.assertEqual(report["agent_body"], "over tls")
        self.assertEqual(report["connect_ssl_body"], "over tls")
        self.assertEqual(report["h2_enabled"], twisted.web.http.H2_ENABLED)
