"""Remote keys: response checks, the cache, direct then notary, shared fetches."""

from twisted.internet import defer
from twisted.trial import unittest

from federation.client import RemoteUnreachable
from federation.keys import KeyFetchError, Keyring, TrustedKeyServer, keys_from_response
from homeserver.crypto.signing import SigningKey, sign_json
from homeserver.store.server_keys import ServerKey
from tests.fakes.server_keys import MemoryServerKeys

REMOTE = SigningKey.from_seed("r1", b"\x01" * 32)
NOTARY = SigningKey.from_seed("n1", b"\x02" * 32)
OURS = SigningKey.from_seed("o1", b"\x03" * 32)
NOW = 1_000_000


def key_response(server="remote.example", keys=(REMOTE,), valid_until=NOW + 3600_000,
                 signers=None, old=None):
    body = {"server_name": server, "valid_until_ts": valid_until,
            "verify_keys": {k.key_id: {"key": k.verify_key_base64} for k in keys},
            "old_verify_keys": old or {}}
    for k in keys if signers is None else signers:
        body = sign_json(body, server, k)
    return body


class FakeClient:
    """Answers key requests from dicts; records them. A value may be a Deferred."""

    def __init__(self, direct=None, notary=None):
        self.direct = direct or {}
        self.notary = notary or {}
        self.calls: list[tuple] = []

    async def get_json(self, destination, path, args=None, *, timeout=None, sign=True):
        self.calls.append(("GET", destination, path))
        answer = self.direct.get(destination)
        if answer is None:
            raise RemoteUnreachable(destination, "connection refused")
        return await answer if isinstance(answer, defer.Deferred) else answer

    async def post_json(self, destination, path, body, args=None, *, timeout=None, sign=True):
        self.calls.append(("POST", destination, path, body))
        if destination not in self.notary:
            raise RemoteUnreachable(destination, "connection refused")
        return self.notary[destination]


def keyring(client, store=None, notaries=()):
    return Keyring(server_name="us.example", own_keys=[OURS],
                   store=store if store is not None else MemoryServerKeys(),
                   client=client, now_ms=lambda: NOW, notaries=notaries)


class ResponseCheckTest(unittest.TestCase):
    def test_good_response(self):
        """A self-signed response yields its keys, with the response kept as key_json."""
        old = {"ed25519:gone": {"key": NOTARY.verify_key_base64, "expired_ts": 5}}
        keys = keys_from_response(key_response(old=old), "remote.example")
        self.assertEqual([(k.key_id, k.expired_ts) for k in keys],
                         [("ed25519:r1", None), ("ed25519:gone", 5)])
        self.assertIn(b'"server_name":"remote.example"', keys[0].key_json)

    def test_refused_responses(self):
        """Another server's name, an unsigned or wrongly signed body, bad fields fail."""
        extra = SigningKey.from_seed("r2", b"\x04" * 32)
        for body in [key_response(server="other.example"),
                     key_response(signers=[]),
                     key_response(keys=(REMOTE, extra), signers=[REMOTE]),
                     {**key_response(), "valid_until_ts": "soon"},
                     dict(key_response(), verify_keys={"ed25519:r1": {"key": "short"}}),
                     "not an object"]:
            with self.assertRaises(KeyFetchError):
                keys_from_response(body, "remote.example")

    def test_tampered_response(self):
        """Changing a signed field breaks the self-signature."""
        body = key_response()
        body["valid_until_ts"] += 1
        with self.assertRaises(KeyFetchError):
            keys_from_response(body, "remote.example")


class KeyringTest(unittest.TestCase):
    async def test_direct_fetch_then_cache(self):
        """The first look-up fetches directly; the second is answered from the cache."""
        client = FakeClient({"remote.example": key_response()})
        ring = keyring(client)
        self.assertEqual(await ring.get_verify_key("remote.example", "ed25519:r1"),
                         REMOTE.verify_key_bytes)
        await ring.get_verify_key("remote.example", "ed25519:r1")
        self.assertEqual(len(client.calls), 1)

    async def test_stale_cache_is_refreshed(self):
        """A cached key valid for less than asked is fetched again."""
        store = MemoryServerKeys()
        await store.store_server_keys([ServerKey("remote.example", "ed25519:r1",
                                                 REMOTE.verify_key_base64, NOW - 1)])
        client = FakeClient({"remote.example": key_response()})
        await keyring(client, store).get_verify_key("remote.example", "ed25519:r1")
        self.assertEqual(len(client.calls), 1)
        self.assertEqual(store.keys[("remote.example", "ed25519:r1")].valid_until_ts,
                         NOW + 3600_000)

    async def test_minimum_valid_until_ts(self):
        """A key valid only until t is refused when it must be valid later than t."""
        client = FakeClient({"remote.example": key_response(valid_until=NOW + 10)})
        ring = keyring(client)
        await ring.get_verify_key("remote.example", "ed25519:r1", NOW + 10)
        with self.assertRaises(KeyFetchError):
            await ring.get_verify_key("remote.example", "ed25519:r1", NOW + 11)

    async def test_notary_only_when_direct_fails(self):
        """The notary is asked only after the server itself failed to answer."""
        notary = TrustedKeyServer("notary.example", {NOTARY.key_id: NOTARY.verify_key_bytes})
        answer = {"server_keys": [sign_json(key_response(), "notary.example", NOTARY)]}
        ok = FakeClient({"remote.example": key_response()}, {"notary.example": answer})
        await keyring(ok, notaries=[notary]).get_verify_key("remote.example", "ed25519:r1")
        self.assertEqual([c[0] for c in ok.calls], ["GET"])
        down = FakeClient({}, {"notary.example": answer})
        key = await keyring(down, notaries=[notary]).get_verify_key("remote.example",
                                                                    "ed25519:r1")
        self.assertEqual(key, REMOTE.verify_key_bytes)
        self.assertEqual([c[0] for c in down.calls], ["GET", "POST"])
        self.assertEqual(down.calls[1][3], {"server_keys": {"remote.example": {
            "ed25519:r1": {"minimum_valid_until_ts": NOW}}}})

    async def test_notary_signature_required_when_pinned(self):
        """A notary answer without the pinned notary key's signature is not used."""
        notary = TrustedKeyServer("notary.example", {NOTARY.key_id: NOTARY.verify_key_bytes})
        client = FakeClient({}, {"notary.example": {"server_keys": [key_response()]}})
        with self.assertRaises(KeyFetchError):
            await keyring(client, notaries=[notary]).get_verify_key("remote.example",
                                                                    "ed25519:r1")

    async def test_unknown_key_id(self):
        """A key ID the server does not publish is a KeyFetchError."""
        client = FakeClient({"remote.example": key_response()})
        with self.assertRaises(KeyFetchError):
            await keyring(client).get_verify_key("remote.example", "ed25519:nope")

    async def test_concurrent_fetches_shared(self):
        """Two look-ups while a fetch is under way cause one request."""
        pending = defer.Deferred()
        client = FakeClient({"remote.example": pending})
        ring = keyring(client)
        first = defer.ensureDeferred(ring.get_verify_key("remote.example", "ed25519:r1"))
        second = defer.ensureDeferred(ring.get_verify_key("remote.example", "ed25519:r1"))
        pending.callback(key_response())
        self.assertEqual(await first, REMOTE.verify_key_bytes)
        self.assertEqual(await second, REMOTE.verify_key_bytes)
        self.assertEqual(len(client.calls), 1)

    async def test_own_keys_without_fetching(self):
        """Our own key is known without any request; an unknown own key ID is not."""
        client = FakeClient()
        ring = keyring(client)
        self.assertEqual(await ring.get_verify_key("us.example", OURS.key_id),
                         OURS.verify_key_bytes)
        with self.assertRaises(KeyFetchError):
            await ring.get_verify_key("us.example", "ed25519:other")
        self.assertEqual(client.calls, [])
