"""TURN credentials (voip/turn.py): shared-secret HMAC, static, and none."""

from __future__ import annotations

import base64
import hashlib
import hmac

from twisted.trial import unittest

from homeserver.config import TurnConfig
from voip.turn import turn_credentials

URIS = ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349")


class TurnCredentialsTests(unittest.TestCase):
    def test_nothing_configured(self):
        """No URIs, or URIs without any secret: the body is {} (as Synapse)."""
        self.assertEqual(turn_credentials(TurnConfig(), "@a:x", 0), {})
        self.assertEqual(turn_credentials(TurnConfig(uris=URIS), "@a:x", 0), {})
        self.assertEqual(turn_credentials(TurnConfig(shared_secret="s"), "@a:x", 0), {})

    def test_shared_secret(self):
        """username is "expiry:user_id", password base64(HMAC-SHA1(secret, username))."""
        config = TurnConfig(uris=URIS, shared_secret="s3cret", user_lifetime_ms=86_400_000)
        body = turn_credentials(config, "@alice:example.org", 1_700_000_000_500)
        self.assertEqual(body["username"], "1700086400:@alice:example.org")
        expected = base64.b64encode(hmac.new(b"s3cret", body["username"].encode(),
                                             hashlib.sha1).digest()).decode()
        self.assertEqual(body["password"], expected)
        self.assertEqual(body["ttl"], 86400)
        self.assertEqual(body["uris"], list(URIS))

    def test_static_credentials(self):
        """A static username/password is handed out unchanged."""
        config = TurnConfig(uris=URIS, username="u", password="p")
        body = turn_credentials(config, "@a:x", 0)
        self.assertEqual((body["username"], body["password"], body["ttl"]), ("u", "p", 3600))

    def test_secret_wins_over_static(self):
        """With both, the time-limited credentials are used (Synapse's order)."""
        config = TurnConfig(uris=URIS, shared_secret="s", username="u", password="p")
        self.assertNotEqual(turn_credentials(config, "@a:x", 0)["username"], "u")
