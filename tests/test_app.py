"""The composition root serves versions and signed server keys, and starts lean."""

import json
import os
import socket
import subprocess
import sys

import twisted.web.http
from nacl.signing import VerifyKey
from twisted.trial import unittest

from homeserver.__main__ import generate
from homeserver.crypto.canonical_json import encode_canonical_json
from homeserver.crypto.signing import decode_base64
from tests.client_api.harness import ServerTestCase


class AppTests(ServerTestCase):
    async def test_versions(self):
        """/_matrix/client/versions lists the base version, and a later one only if
        the running server has a route for every endpoint it introduced."""
        from homeserver.client_api.versions import VERSION_ENDPOINTS
        from tests.client_api.test_bad_input import routes

        status, body = await self.request("GET", "/_matrix/client/versions")
        self.assertEqual(status, 200)
        self.assertIn("r0.6.1", body["versions"])
        served = routes(self.hs)
        for version, endpoints in VERSION_ENDPOINTS:
            if version in body["versions"]:
                for method, path in endpoints:
                    self.assertTrue(any(m == method and p.match(path) for m, p in served),
                                    (version, method, path))

    async def test_server_keys_verify(self):
        """/_matrix/key/v2/server is signed by the key it publishes (checked with pynacl)."""
        status, body = await self.request("GET", "/_matrix/key/v2/server")
        self.assertEqual(status, 200)
        self.assertEqual(body["server_name"], "test.local")
        (key_id, key), = body["verify_keys"].items()
        verify_key = VerifyKey(decode_base64(key["key"]))
        signature = decode_base64(body["signatures"]["test.local"][key_id])
        unsigned = {k: v for k, v in body.items() if k not in ("signatures", "unsigned")}
        verify_key.verify(encode_canonical_json(unsigned), signature)
        self.assertGreater(body["valid_until_ts"], 0)

    async def test_unknown_endpoint(self):
        """An unknown path is M_UNRECOGNIZED 404 with a JSON body."""
        status, body = await self.request("GET", "/_matrix/client/v3/nope")
        self.assertEqual(status, 404)
        self.assertEqual(body["errcode"], "M_UNRECOGNIZED")

    async def test_wrong_method(self):
        """A known path with the wrong method is 405 M_UNRECOGNIZED."""
        status, body = await self.request("DELETE", "/_matrix/client/versions")
        self.assertEqual(status, 405)
        self.assertEqual(body["errcode"], "M_UNRECOGNIZED")

    async def test_cors(self):
        """Browser clients get CORS headers; OPTIONS preflights succeed."""
        resp = await self.http.request("OPTIONS", self.base + "/_matrix/client/versions")
        await resp.content()
        self.assertIn(resp.code, (200, 204))
        self.assertEqual(resp.headers.getRawHeaders("Access-Control-Allow-Origin"), ["*"])


# Starts the service tree as run_forever does and prints which of the packages named
# in sys.argv[2:] got loaded (sys.argv[1]: the config file).
_START_AND_REPORT = r'''
import json, sys
from homeserver import reactor as reactor_install

reactor = reactor_install.install()
from homeserver.app import build_service
from homeserver.config import load_config_files

top = build_service(load_config_files([sys.argv[1]]), reactor)
top.startService()
print(json.dumps(sorted(p for p in sys.argv[2:] if p in sys.modules)))
top.stopService().addBoth(lambda _: reactor.stop())
reactor.run()
'''

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LeanStartTests(unittest.TestCase):
    def _loaded_at_start(self, config: str, packages: list[str]) -> list[str]:
        done = subprocess.run([sys.executable, "-c", _START_AND_REPORT, config, *packages],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        return json.loads(done.stdout.strip().splitlines()[-1])

    def test_start_defers_optional_packages(self):
        """A fresh database is migrated with alembic; a later start at head loads none
        of alembic, autobahn (until a WebSocket request), pyOpenSSL, cryptography,
        PostgreSQL's dialect on SQLite, or h2 where HTTP/2 cannot be enabled."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = generate("localhost", os.path.abspath(self.mktemp()), port)
        optional = ["alembic", "autobahn", "OpenSSL", "cryptography",
                    "sqlalchemy.dialects.postgresql", "h2"]
        if twisted.web.http.H2_ENABLED:
            optional.remove("h2")  # HTTP/2 works here, so h2 is rightly loaded
        self.assertIn("alembic", self._loaded_at_start(config, optional))
        self.assertEqual(self._loaded_at_start(config, optional), [])
