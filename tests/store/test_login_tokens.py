"""Login tokens (homeserver/store/login_tokens.py): hashed, expiring, single-use."""

from __future__ import annotations

from twisted.internet import defer

from homeserver.store.login_tokens import login_tokens
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"


class LoginTokensTests(StoreTests):
    async def test_consume_once(self) -> None:
        """A live token yields its user once; then, and for unknown tokens, None."""
        tokens = self.store.login_tokens
        await tokens.add("t1", ALICE, expires_ts=2000, now_ms=1000)
        self.assertIsNone(await tokens.consume("other", 1500))
        self.assertEqual(await tokens.consume("t1", 1500), ALICE)
        self.assertIsNone(await tokens.consume("t1", 1500))

    async def test_expiry(self) -> None:
        """At or past its expiry a token is refused; expired rows go on the next add."""
        tokens = self.store.login_tokens
        await tokens.add("old", ALICE, expires_ts=2000, now_ms=1000)
        self.assertIsNone(await tokens.consume("old", 2000))
        await tokens.add("new", BOB, expires_ts=9000, now_ms=3000)
        rows = await self.store.db.run(lambda conn: conn.execute(
            login_tokens.select()).fetchall())
        self.assertEqual([r.user_id for r in rows], [BOB])
        self.assertNotIn("new", {r.token_hash for r in rows})  # only the hash is kept

    async def test_concurrent_consume(self) -> None:
        """Of several racing redemptions of one token exactly one wins."""
        tokens = self.store.login_tokens
        await tokens.add("race", ALICE, expires_ts=2000, now_ms=1000)
        ds = [defer.ensureDeferred(tokens.consume("race", 1500)) for _ in range(6)]
        results = await defer.gatherResults(ds)
        self.assertEqual(sorted(results, key=str), [ALICE] + [None] * 5)

    async def test_delete_for_user(self) -> None:
        """A user's unspent tokens can be dropped without touching others'."""
        tokens = self.store.login_tokens
        await tokens.add("a", ALICE, expires_ts=2000, now_ms=1000)
        await tokens.add("b", BOB, expires_ts=2000, now_ms=1000)
        await tokens.delete_for_user(ALICE)
        self.assertIsNone(await tokens.consume("a", 1500))
        self.assertEqual(await tokens.consume("b", 1500), BOB)


LoginTokensTestsSQLite, LoginTokensTestsPostgres = on_both_backends(LoginTokensTests)
