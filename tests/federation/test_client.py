"""FederationClient against an in-process TLS server on loopback: Host header,
signatures, TLS trust, the SSRF filter, timeouts and remote errors."""

import json

from twisted.internet import reactor, ssl
from twisted.trial import unittest
from twisted.web import resource, server

from federation import xmatrix
from federation.client import (
    RemoteHttpError, RemoteUnreachable, ResponseTooLarge, build_federation_client, read_body,
)
from homeserver.crypto.signing import SigningKey
from homeserver.errors import MatrixError
from homeserver.http.outbound import AddressPolicy
from tests.fakes.tls import make_test_pki

KEY = SigningKey.from_seed("c1", b"\x07" * 32)
LOOPBACK = ["127.0.0.0/8", "::1/128"]


class FakeRemote(resource.Resource):
    """Answers by path; remembers every request it saw."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render(self, request):
        self.seen.append(request.path)
        path = request.path.decode()
        request.setHeader(b"Content-Type", b"application/json")
        if path.endswith("/echo"):
            return json.dumps({
                "host": request.getHeader(b"host").decode(),
                "auth": [v.decode() for v in request.requestHeaders.getRawHeaders(
                    b"authorization", [])],
                "uri": request.uri.decode(), "method": request.method.decode(),
                "body": json.loads(request.content.read() or b"null")}).encode()
        if path.endswith("/fail"):
            request.setResponseCode(500)
            return b'{"errcode": "M_UNKNOWN", "error": "boom"}'
        if path.endswith("/slow"):
            return server.NOT_DONE_YET
        if path.endswith("/big"):
            return b"x" * 100_000
        request.setResponseCode(404)
        return b'{"errcode": "M_UNRECOGNIZED"}'


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.pki = make_test_pki(self.mktemp_dir())
        with open(self.pki["tls.key"], "rb") as k, open(self.pki["tls.crt"], "rb") as c:
            cert = ssl.PrivateCertificate.loadPEM(k.read() + c.read())
        self.remote = FakeRemote()
        self.port = reactor.listenSSL(0, server.Site(self.remote), cert.options(),
                                      interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.name = f"localhost:{self.port.getHost().port}"

    def mktemp_dir(self):
        import os

        path = self.mktemp()
        os.makedirs(path)
        return path

    def client(self, *, whitelist=LOOPBACK, ca=True, verify=True, **kwargs):
        c = build_federation_client(
            reactor=reactor, server_name="us.example", signing_keys=[KEY],
            verify_certificates=verify, custom_ca_paths=[self.pki["ca.crt"]] if ca else [],
            address_policy=AddressPolicy(whitelist=whitelist))
        self.addCleanup(c.close)
        return c

    async def test_signed_get(self):
        """Host is the server name; the X-Matrix header signs method, uri and destination."""
        echo = await self.client().get_json(self.name, "/_matrix/federation/v1/echo",
                                            {"a": "b c", "n": ["1", "2"]})
        self.assertEqual(echo["host"], self.name)
        self.assertEqual(echo["uri"], "/_matrix/federation/v1/echo?a=b+c&n=1&n=2")
        [auth] = [xmatrix.parse_authorization(h) for h in echo["auth"]]
        self.assertEqual((auth.origin, auth.destination), ("us.example", self.name))
        self.assertTrue(xmatrix.verify_request(auth, KEY.verify_key_bytes, method="GET",
                                               uri=echo["uri"], destination=self.name))

    async def test_signed_put_covers_body(self):
        """A PUT's JSON body arrives and is covered by the signature."""
        body = {"pdus": [], "edus": [{"edu_type": "m.typing"}]}
        echo = await self.client().put_json(self.name, "/_matrix/federation/v1/echo", body)
        self.assertEqual((echo["method"], echo["body"]), ("PUT", body))
        auth = xmatrix.parse_authorization(echo["auth"][0])
        self.assertTrue(xmatrix.verify_request(auth, KEY.verify_key_bytes, method="PUT",
                                               uri=echo["uri"], destination=self.name,
                                               content=body))

    async def test_unsigned_get(self):
        """sign=False sends no Authorization header (key requests)."""
        echo = await self.client().get_json(self.name, "/_matrix/federation/v1/echo",
                                            sign=False)
        self.assertEqual(echo["auth"], [])

    async def test_remote_error_is_not_ours(self):
        """A remote 500 becomes RemoteHttpError with its errcode, never a MatrixError."""
        with self.assertRaises(RemoteHttpError) as caught:
            await self.client().get_json(self.name, "/_matrix/federation/v1/fail")
        error = caught.exception
        self.assertEqual((error.status, error.errcode, error.error), (500, "M_UNKNOWN", "boom"))
        self.assertNotIsInstance(error, MatrixError)

    async def test_ssrf_filter(self):
        """Without a whitelist, loopback is never connected to."""
        with self.assertRaises(RemoteUnreachable):
            await self.client(whitelist=()).get_json(self.name, "/_matrix/federation/v1/echo")
        self.assertEqual(self.remote.seen, [])

    async def test_untrusted_certificate(self):
        """A certificate from an unknown CA is refused, unless verification is off."""
        with self.assertRaises(RemoteUnreachable):
            await self.client(ca=False).get_json(self.name, "/_matrix/federation/v1/echo")
        self.assertEqual(self.remote.seen, [])
        echo = await self.client(ca=False, verify=False).get_json(
            self.name, "/_matrix/federation/v1/echo")
        self.assertEqual(echo["host"], self.name)

    async def test_timeout(self):
        """A server that never answers gives RemoteUnreachable after the timeout."""
        with self.assertRaises(RemoteUnreachable):
            await self.client().get_json(self.name, "/_matrix/federation/v1/slow", timeout=0.5)

    async def test_streaming_response_and_limit(self):
        """get_response hands back the body unread; read_body enforces a limit."""
        c = self.client()
        response = await c.get_response(self.name, "/_matrix/federation/v1/big")
        self.assertEqual(len(await read_body(response, 200_000)), 100_000)
        response = await c.get_response(self.name, "/_matrix/federation/v1/big")
        with self.assertRaises(ResponseTooLarge):
            await read_body(response, 1000)
        with self.assertRaises(RemoteHttpError):
            await c.get_response(self.name, "/_matrix/federation/v1/missing")

    async def test_unresolvable_name(self):
        """An invalid destination name is RemoteUnreachable, not a crash."""
        with self.assertRaises(RemoteUnreachable):
            await self.client().get_json("bad name!", "/_matrix/federation/v1/echo")


