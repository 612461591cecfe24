"""Filters, registration tokens and server keys."""

from __future__ import annotations

from twisted.internet import defer

from homeserver.store.registration_tokens import TOKEN_ALPHABET, generate_token
from homeserver.store.server_keys import ServerKey
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"


class FiltersTests(StoreTests):
    async def test_add_and_get(self) -> None:
        """Filters get per-user IDs; an identical upload reuses its ID."""
        filters = self.store.filters
        f0 = await filters.add_filter(ALICE, {"room": {"timeline": {"limit": 10}}})
        f1 = await filters.add_filter(ALICE, {"presence": {"types": []}})
        same = await filters.add_filter(ALICE, {"room": {"timeline": {"limit": 10}}})
        other = await filters.add_filter(BOB, {"presence": {"types": []}})
        self.assertEqual((f0, f1, same, other), ("0", "1", "0", "0"))
        self.assertEqual(await filters.get_filter(ALICE, "1"), {"presence": {"types": []}})
        self.assertIsNone(await filters.get_filter(BOB, "1"))
        for bad in ("x", "-1", "01", ""):
            self.assertIsNone(await filters.get_filter(ALICE, bad))

    async def test_concurrent_uploads(self) -> None:
        """Uploads racing for the same user all get distinct IDs."""
        ds = [defer.ensureDeferred(self.store.filters.add_filter(ALICE, {"n": i}))
              for i in range(8)]
        ids = await defer.gatherResults(ds)
        self.assertEqual(sorted(ids, key=int), [str(i) for i in range(8)])


class RegistrationTokensTests(StoreTests):
    async def test_uses(self) -> None:
        """Pending and completed uses count against uses_allowed."""
        tokens = self.store.registration_tokens
        self.assertTrue(await tokens.create("abc", uses_allowed=2))
        self.assertFalse(await tokens.create("abc"))
        self.assertTrue(await tokens.start_use("abc"))
        self.assertTrue(await tokens.start_use("abc"))
        self.assertFalse(await tokens.is_valid("abc"))
        self.assertFalse(await tokens.start_use("abc"))
        self.assertTrue(await tokens.abandon_use("abc"))
        self.assertTrue(await tokens.is_valid("abc"))
        self.assertTrue(await tokens.complete_use("abc"))
        info = await tokens.get("abc")
        self.assertEqual((info.pending, info.completed), (0, 1))
        self.assertFalse(await tokens.start_use("nope"))

    async def test_expiry_update_delete(self) -> None:
        """Expired tokens are invalid; limits can be changed; tokens deleted."""
        tokens = self.store.registration_tokens
        now = self.db.now_ms()
        await tokens.create("old", expiry_time=now - 1)
        await tokens.create("new", expiry_time=now + 60_000)
        self.assertFalse(await tokens.is_valid("old"))
        self.assertFalse(await tokens.start_use("old"))
        self.assertTrue(await tokens.is_valid("new"))
        self.assertEqual([t.token for t in await tokens.list_tokens(valid=True)], ["new"])
        self.assertEqual([t.token for t in await tokens.list_tokens(valid=False)],
                         ["old"])
        self.assertTrue(await tokens.update("old", expiry_time=None))
        self.assertTrue(await tokens.is_valid("old"))
        self.assertTrue(await tokens.update("old", uses_allowed=0))
        self.assertFalse(await tokens.is_valid("old"))
        self.assertFalse(await tokens.update("missing", uses_allowed=1))
        self.assertTrue(await tokens.delete("old"))
        self.assertFalse(await tokens.delete("old"))
        self.assertIsNone(await tokens.get("old"))

    def test_generate_token(self) -> None:
        """Generated tokens use the spec's alphabet."""
        token = generate_token(32)
        self.assertEqual(len(token), 32)
        self.assertTrue(set(token) <= set(TOKEN_ALPHABET))


class ServerKeysTests(StoreTests):
    async def test_cache_keeps_longest_validity(self) -> None:
        """A key is replaced by a copy valid as long or longer, never shorter."""
        keys = self.store.server_keys
        await keys.store_server_keys([ServerKey("r.org", "ed25519:a", "K1", 1000,
                                                key_json=b'{"a":1}')])
        self.assertEqual(await keys.store_server_keys(
            [ServerKey("r.org", "ed25519:a", "K1", 500)]), 0)
        got = await keys.get_server_key("r.org", "ed25519:a")
        self.assertEqual((got.valid_until_ts, got.key_json), (1000, b'{"a":1}'))
        await keys.store_server_keys([ServerKey("r.org", "ed25519:a", "K1", 2000),
                                      ServerKey("r.org", "ed25519:old", "K0", 100,
                                                expired_ts=100)])
        self.assertEqual((await keys.get_server_key("r.org", "ed25519:a")).valid_until_ts,
                         2000)
        all_keys = await keys.get_server_keys("r.org")
        self.assertEqual([k.key_id for k in all_keys], ["ed25519:a", "ed25519:old"])
        self.assertEqual(all_keys[1].expired_ts, 100)
        some = await keys.get_server_keys("r.org", ["ed25519:old"])
        self.assertEqual([k.key_id for k in some], ["ed25519:old"])
        self.assertIsNone(await keys.get_server_key("other.org", "ed25519:a"))

    async def test_old_local_keys(self) -> None:
        """Our retired keys are kept with their expiry."""
        keys = self.store.server_keys
        await keys.add_old_local_key("ed25519:1", "VK", 123)
        old = await keys.get_old_local_keys()
        self.assertEqual([(k.key_id, k.verify_key, k.expired_ts) for k in old],
                         [("ed25519:1", "VK", 123)])


class ErasedUsersTests(StoreTests):
    async def test_mark_and_ask(self) -> None:
        """Marked users are erased (twice is fine); a fresh store reads them back."""
        erased = self.store.erased_users
        self.assertEqual(await erased.erased_among([ALICE, BOB]), frozenset())
        await erased.mark_erased(ALICE)
        await erased.mark_erased(ALICE)
        self.assertEqual(await erased.erased_among([ALICE, BOB]), {ALICE})
        from homeserver.store.erased_users import ErasedUsers
        self.assertEqual(await ErasedUsers(self.store.db).erased_among([ALICE, BOB]),
                         {ALICE})


FiltersTestsSQLite, FiltersTestsPostgres = on_both_backends(FiltersTests)
ErasedUsersTestsSQLite, ErasedUsersTestsPostgres = on_both_backends(ErasedUsersTests)
RegistrationTokensTestsSQLite, RegistrationTokensTestsPostgres = \
    on_both_backends(RegistrationTokensTests)
ServerKeysTestsSQLite, ServerKeysTestsPostgres = on_both_backends(ServerKeysTests)
