"""The identity-server client (homeserver/http/identity_servers.py): the lookup hash,
the trusted list, and what is kept of the answers, over a fake transport."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.errors import MatrixError
from homeserver.http.identity_servers import (
    IdentityServers, hashed_address, trusted_base_urls)


class FakeTransport:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    async def __call__(self, method, url, body, token):
        self.calls.append((method, url, body, token))
        answer = self.answers.get((method, url))
        if isinstance(answer, Exception):
            raise answer
        return answer if answer is not None else (404, None)


BASE = "https://id.example/_matrix/identity/v2"


class IdentityServersTest(unittest.TestCase):
    def servers(self, answers) -> tuple[IdentityServers, FakeTransport]:
        transport = FakeTransport(answers)
        return IdentityServers(trusted={"id.example": "https://id.example"},
                               request=transport), transport

    def test_hash_vector(self):
        """The spec's example: "alice@example.com email matrixrocks"."""
        self.assertEqual(hashed_address("alice@example.com", "email", "matrixrocks"),
                         "4kenr7N9drpCJ4AfalmlGQVsOn3o2RHjkADUpXJWZUc")

    def test_trusted_base_urls(self):
        """Names are spoken to over HTTPS; explicit URLs keep their scheme."""
        self.assertEqual(trusted_base_urls(("vector.im", "http://127.0.0.1:8090")),
                         {"vector.im": "https://vector.im",
                          "127.0.0.1:8090": "http://127.0.0.1:8090"})

    async def test_untrusted_server(self):
        """An identity server not in the list is 400 M_SERVER_NOT_TRUSTED, unasked."""
        servers, transport = self.servers({})
        with self.assertRaises(MatrixError) as e:
            await servers.lookup("evil.example", "t", "email", "a@b.c")
        self.assertEqual((e.exception.status, e.exception.errcode),
                         (400, "M_SERVER_NOT_TRUSTED"))
        self.assertEqual(transport.calls, [])

    async def test_lookup_hashed_with_token(self):
        """The lookup sends the sha256 hash with the pepper and the bearer token."""
        key = hashed_address("a@b.c", "email", "p")
        servers, transport = self.servers({
            ("GET", BASE + "/hash_details"): (200, {"lookup_pepper": "p",
                                                    "algorithms": ["sha256"]}),
            ("POST", BASE + "/lookup"): (200, {"mappings": {key: "@a:b.c"}})})
        self.assertEqual(await servers.lookup("id.example", "tok", "email", "a@b.c"),
                         "@a:b.c")
        self.assertEqual(transport.calls[1][2], {"algorithm": "sha256", "pepper": "p",
                                                 "addresses": [key]})
        self.assertEqual({c[3] for c in transport.calls}, {"tok"})

    async def test_failures_are_502(self):
        """Unreachable, a non-200 answer and a store-invite answer without keys are
        502 M_UNKNOWN, never the identity server's own error."""
        servers, _ = self.servers({
            ("GET", BASE + "/hash_details"): ConnectionRefusedError(),
            ("POST", BASE + "/store-invite"): (200, {"token": "t", "public_keys": []})})
        for call in (servers.lookup("id.example", "t", "email", "a@b.c"),
                     servers.store_invite("id.example", "t", {})):
            with self.assertRaises(MatrixError) as e:
                await call
            self.assertEqual((e.exception.status, e.exception.errcode), (502, "M_UNKNOWN"))

    async def test_store_invite_content(self):
        """The answer becomes the m.room.third_party_invite content, with the first
        key also as public_key / key_validity_url."""
        key = {"public_key": "K", "key_validity_url": "https://id.example/v"}
        servers, _ = self.servers({("POST", BASE + "/store-invite"): (200, {
            "token": "tok", "display_name": "a...", "public_keys": [key, "junk"]})})
        stored = await servers.store_invite("id.example", "t", {"address": "a@b.c"})
        self.assertEqual(stored, {"token": "tok", "content": {
            "display_name": "a...", "public_keys": [key], "public_key": "K",
            "key_validity_url": "https://id.example/v"}})
