"""Accounts: users, password hashing, profiles."""

from __future__ import annotations

import sqlalchemy as sa
from twisted.trial import unittest

from homeserver.store.accounts import hash_password, verify_password
from tests.store.backends import StoreTests, on_both_backends

ALICE = "@alice:example.org"


class PasswordHashTests(unittest.TestCase):
    def test_hash_and_verify(self) -> None:
        """An argon2id hash verifies its password and nothing else."""
        h = hash_password("correct horse")
        self.assertTrue(h.startswith("$argon2id$"))
        self.assertNotIn("correct horse", h)
        self.assertTrue(verify_password("correct horse", h))
        self.assertFalse(verify_password("wrong", h))

    def test_hashes_are_salted(self) -> None:
        """Hashing the same password twice gives different hashes."""
        self.assertNotEqual(hash_password("pw"), hash_password("pw"))

    def test_garbage_and_missing_hashes(self) -> None:
        """A malformed or missing hash never verifies."""
        self.assertFalse(verify_password("pw", None))
        self.assertFalse(verify_password("pw", ""))
        self.assertFalse(verify_password("pw", "not-a-hash"))

    def test_bcrypt_hash_without_bcrypt(self) -> None:
        """A Synapse bcrypt hash verifies only if the bcrypt package is installed."""
        synapse_hash = "$2b$12$" + "a" * 53
        try:
            import bcrypt  # noqa: F401
        except ImportError:
            self.assertFalse(verify_password("pw", synapse_hash))
        else:
            real = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
            self.assertTrue(verify_password("pw", real))
            self.assertFalse(verify_password("other", real))


class AccountsTests(StoreTests):
    async def test_create_and_get_user(self) -> None:
        """A created user reads back with its flags; creating it again is refused."""
        accounts = self.store.accounts
        self.assertTrue(await accounts.create_user(ALICE, hash_password("pw"),
                                                   displayname="Alice"))
        self.assertFalse(await accounts.create_user(ALICE))
        user = await accounts.get_user(ALICE)
        self.assertEqual((user.user_id, user.is_admin, user.is_guest, user.deactivated,
                          user.has_password), (ALICE, False, False, False, True))
        self.assertIsNone(await accounts.get_user("@nobody:example.org"))
        profile = await accounts.get_profile(ALICE)
        self.assertEqual((profile.displayname, profile.avatar_url), ("Alice", None))

    async def test_check_password(self) -> None:
        """check_password verifies against the stored hash, off the reactor thread."""
        accounts = self.store.accounts
        await accounts.create_user(ALICE, hash_password("secret"))
        self.assertTrue(await accounts.check_password(ALICE, "secret"))
        self.assertFalse(await accounts.check_password(ALICE, "Secret"))
        self.assertFalse(await accounts.check_password("@bob:example.org", "secret"))
        await accounts.set_password_hash(ALICE, hash_password("new"))
        self.assertTrue(await accounts.check_password(ALICE, "new"))
        self.assertFalse(await accounts.check_password(ALICE, "secret"))

    async def test_password_not_stored_in_plaintext(self) -> None:
        """The users table holds a hash, never the password itself."""
        await self.store.accounts.create_user(ALICE, hash_password("hunter2hunter2"))

        def dump(conn: sa.Connection) -> str:
            return repr(conn.exec_driver_sql("SELECT * FROM users").all())

        self.assertNotIn("hunter2hunter2", await self.db.run(dump))

    async def test_flags(self) -> None:
        """Admin, deactivation, guest, user type and consent can be changed."""
        accounts = self.store.accounts
        await accounts.create_user(ALICE, is_guest=True)
        self.assertTrue(await accounts.set_admin(ALICE, True))
        self.assertTrue(await accounts.set_guest(ALICE, False))
        self.assertTrue(await accounts.set_user_type(ALICE, "bot"))
        self.assertTrue(await accounts.set_consent(ALICE, "1.0"))
        self.assertTrue(await accounts.set_deactivated(ALICE))
        user = await accounts.get_user(ALICE)
        self.assertEqual((user.is_admin, user.is_guest, user.user_type,
                          user.consent_version, user.deactivated, user.has_password),
                         (True, False, "bot", "1.0", True, False))
        self.assertFalse(await accounts.set_admin("@ghost:example.org", True))

    async def test_count_and_case_insensitive_lookup(self) -> None:
        """Counting skips guests and deactivated users; lookup ignores case."""
        accounts = self.store.accounts
        await accounts.create_user("@Alice:example.org")
        await accounts.create_user("@bob:example.org")
        await accounts.create_user("@guest:example.org", is_guest=True)
        await accounts.create_user("@gone:example.org")
        await accounts.set_deactivated("@gone:example.org")
        self.assertEqual(await accounts.count_users(), 2)
        self.assertEqual(await accounts.count_users(include_guests=True), 3)
        self.assertEqual(await accounts.find_user_ids_case_insensitive(
            "@alice:EXAMPLE.org"), ["@Alice:example.org"])

    async def test_profile_updates(self) -> None:
        """Displayname and avatar are set and cleared independently."""
        accounts = self.store.accounts
        await accounts.create_user(ALICE)
        await accounts.set_displayname(ALICE, "Alice")
        await accounts.set_avatar_url(ALICE, "mxc://example.org/abc")
        await accounts.set_displayname(ALICE, None)
        profile = await accounts.get_profile(ALICE)
        self.assertEqual((profile.displayname, profile.avatar_url),
                         (None, "mxc://example.org/abc"))
        self.assertIsNone(await accounts.get_profile("@nobody:example.org"))


AccountsTestsSQLite, AccountsTestsPostgres = on_both_backends(AccountsTests)
