"""Devices, hashed access tokens, refresh-token rotation and device-list changes."""

from __future__ import annotations

import sqlalchemy as sa

from homeserver.store.devices import hash_token
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"


class DevicesTests(StoreTests):
    async def setUp(self) -> None:
        super().setUp()
        await self.store.accounts.create_user(ALICE)
        await self.store.accounts.create_user(BOB, is_guest=True)

    async def test_devices_crud(self) -> None:
        """Devices are created once, listed, renamed, touched and deleted."""
        devices = self.store.devices
        self.assertTrue(await devices.create_device(ALICE, "D1", "phone", ip="1.2.3.4"))
        self.assertFalse(await devices.create_device(ALICE, "D1", "other"))
        await devices.create_device(ALICE, "D2")
        self.assertEqual([d.device_id for d in await devices.get_devices(ALICE)],
                         ["D1", "D2"])
        self.assertTrue(await devices.set_device_display_name(ALICE, "D2", "laptop"))
        self.assertFalse(await devices.set_device_display_name(ALICE, "D9", "x"))
        await devices.update_last_seen(ALICE, "D1", ip="5.6.7.8", user_agent="nio")
        d1 = await devices.get_device(ALICE, "D1")
        self.assertEqual((d1.display_name, d1.last_seen_ip, d1.last_seen_user_agent),
                         ("phone", "5.6.7.8", "nio"))
        self.assertEqual(await devices.delete_devices(ALICE, ["D1", "D9"]), ["D1"])
        self.assertIsNone(await devices.get_device(ALICE, "D1"))
        self.assertEqual((await devices.get_device(ALICE, "D2")).display_name, "laptop")

    async def test_access_token_lookup(self) -> None:
        """A token maps to (user, device, token id, is_guest); unknown tokens to None."""
        devices = self.store.devices
        await devices.create_device(BOB, "G")
        token = await devices.create_access_token(BOB, "G")
        owner = await devices.get_user_by_access_token(token)
        self.assertEqual((owner.user_id, owner.device_id, owner.is_guest),
                         (BOB, "G", True))
        user_id, device_id, token_id, is_guest = owner
        self.assertIsInstance(token_id, int)
        self.assertIsNone(await devices.get_user_by_access_token("rs_at_nope"))

    async def test_tokens_stored_hashed(self) -> None:
        """Neither access nor refresh token plaintext is anywhere in the database."""
        devices = self.store.devices
        await devices.create_device(ALICE, "D")
        token = await devices.create_access_token(ALICE, "D")
        pair = await devices.create_token_pair(ALICE, "D", access_valid_until_ms=None)

        def dump(conn: sa.Connection) -> str:
            return repr(conn.exec_driver_sql("SELECT * FROM access_tokens").all()) + \
                repr(conn.exec_driver_sql("SELECT * FROM refresh_tokens").all())

        text = await self.db.run(dump)
        for plain in (token, pair.access_token, pair.refresh_token):
            self.assertNotIn(plain, text)
            self.assertIn(hash_token(plain), text)

    async def test_expired_token(self) -> None:
        """A token past valid_until_ms no longer authenticates."""
        devices = self.store.devices
        await devices.create_device(ALICE, "D")
        past = self.db.now_ms() - 1
        token = await devices.create_access_token(ALICE, "D", valid_until_ms=past)
        self.assertIsNone(await devices.get_user_by_access_token(token))
        later = self.db.now_ms() + 60_000
        token = await devices.create_access_token(ALICE, "D", valid_until_ms=later)
        self.assertIsNotNone(await devices.get_user_by_access_token(token))

    async def test_deactivated_user_token(self) -> None:
        """A deactivated user's leftover token does not authenticate."""
        token = await self.store.devices.create_access_token(ALICE, None)
        await self.store.accounts.set_deactivated(ALICE)
        self.assertIsNone(await self.store.devices.get_user_by_access_token(token))

    async def test_delete_tokens(self) -> None:
        """Tokens go by id, by device, and by user except the one kept."""
        devices = self.store.devices
        for d in ("D1", "D2", "D3"):
            await devices.create_device(ALICE, d)
        t1 = await devices.create_access_token(ALICE, "D1")
        t2 = await devices.create_access_token(ALICE, "D2")
        t3 = await devices.create_access_token(ALICE, "D3")
        t3b = await devices.create_access_token(ALICE, "D3")
        self.assertEqual(await devices.delete_tokens_for_device(ALICE, "D1"), 1)
        self.assertIsNone(await devices.get_user_by_access_token(t1))
        keep = await devices.get_user_by_access_token(t3)
        self.assertEqual(await devices.delete_tokens_for_user(
            ALICE, except_token_id=keep.token_id), 2)
        self.assertIsNone(await devices.get_user_by_access_token(t2))
        self.assertIsNone(await devices.get_user_by_access_token(t3b))
        self.assertIsNotNone(await devices.get_user_by_access_token(t3))
        self.assertTrue(await devices.delete_access_token(keep.token_id))
        self.assertFalse(await devices.delete_access_token(keep.token_id))
        self.assertIsNone(await devices.get_user_by_access_token(t3))

    async def test_deleting_device_deletes_its_tokens(self) -> None:
        """delete_devices also logs the device out."""
        devices = self.store.devices
        await devices.create_device(ALICE, "D")
        token = await devices.create_access_token(ALICE, "D")
        pair = await devices.create_token_pair(ALICE, "D", access_valid_until_ms=None)
        await devices.delete_devices(ALICE, ["D"])
        self.assertIsNone(await devices.get_user_by_access_token(token))
        self.assertIsNone(await devices.get_user_by_access_token(pair.access_token))
        self.assertIsNone(await devices.rotate_refresh_token(
            pair.refresh_token, access_valid_until_ms=None))

    async def test_refresh_rotation(self) -> None:
        """Refreshing issues a new pair; using it retires the old refresh token."""
        devices = self.store.devices
        await devices.create_device(ALICE, "D")
        first = await devices.create_token_pair(ALICE, "D", access_valid_until_ms=None)
        second = await devices.rotate_refresh_token(first.refresh_token,
                                                    access_valid_until_ms=None)
        self.assertIsNotNone(second)
        self.assertNotEqual(second.refresh_token, first.refresh_token)
        # until the new access token is used, the old pair still works (lost response)
        self.assertIsNotNone(await devices.get_user_by_access_token(first.access_token))
        retry = await devices.rotate_refresh_token(first.refresh_token,
                                                   access_valid_until_ms=None)
        self.assertIsNone(await devices.get_user_by_access_token(second.access_token))
        owner = await devices.get_user_by_access_token(retry.access_token)
        self.assertEqual((owner.user_id, owner.device_id), (ALICE, "D"))
        # now the old refresh token and its access token are gone
        self.assertIsNone(await devices.rotate_refresh_token(
            first.refresh_token, access_valid_until_ms=None))
        self.assertIsNone(await devices.get_user_by_access_token(first.access_token))
        third = await devices.rotate_refresh_token(retry.refresh_token,
                                                   access_valid_until_ms=None)
        self.assertIsNotNone(await devices.get_user_by_access_token(third.access_token))

    async def test_refresh_expiry(self) -> None:
        """An expired refresh token cannot be rotated; access is capped by the session."""
        devices = self.store.devices
        await devices.create_device(ALICE, "D")
        now = self.db.now_ms()
        expired = await devices.create_token_pair(
            ALICE, "D", access_valid_until_ms=None, refresh_expiry_ts=now - 1)
        self.assertIsNone(await devices.rotate_refresh_token(
            expired.refresh_token, access_valid_until_ms=None))
        capped = await devices.create_token_pair(
            ALICE, "D", access_valid_until_ms=now + 10**9,
            ultimate_session_expiry_ts=now + 1000)
        self.assertEqual(capped.valid_until_ms, now + 1000)

    async def test_device_list_changes(self) -> None:
        """New, renamed and deleted devices advance the device-lists stream."""
        devices = self.store.devices
        start = await self.store.current_position("device_lists")
        await devices.create_device(ALICE, "D")
        after_create = await self.store.current_position("device_lists")
        self.assertGreater(after_create, start)
        await devices.create_device(ALICE, "D")      # not new: no change
        self.assertEqual(await self.store.current_position("device_lists"),
                         after_create)
        pos = await devices.mark_device_list_changed(BOB, "G")
        self.assertEqual(await devices.users_with_device_list_changes(start),
                         {ALICE, BOB})
        self.assertEqual(await devices.users_with_device_list_changes(after_create),
                         {BOB})
        self.assertEqual(await devices.users_with_device_list_changes(
            start, user_ids=[BOB]), {BOB})
        self.assertEqual(await devices.users_with_device_list_changes(pos), set())
        await devices.delete_devices(ALICE, ["D"])
        self.assertEqual(await devices.users_with_device_list_changes(pos), {ALICE})


DevicesTestsSQLite, DevicesTestsPostgres = on_both_backends(DevicesTests)
