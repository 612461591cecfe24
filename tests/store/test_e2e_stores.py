"""The E2EE stores on both backends: keys and their counts, the federation outbox
written with device-list changes and to-device sends, backup keys' replacement rule."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from homeserver.store.cross_signing import Signature
from homeserver.store.key_backups import RoomKey
from homeserver.store.outbox import (DEVICE_LIST_UPDATE, DIRECT_TO_DEVICE,
                                     SIGNING_KEY_UPDATE, OutboxEntry)
from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"


class E2eStoreTests(StoreTests):
    async def test_device_list_changes_go_to_the_outbox(self) -> None:
        """A new device and new cross-signing keys each append an outbox entry, in
        order, carrying the device-list position."""
        await self.store.accounts.create_user(ALICE, None)
        await self.store.devices.create_device(ALICE, "D1")
        await self.store.cross_signing.set_keys(ALICE, {"master": {"keys": {}}})
        entries = await self.store.federation_outbox.entries(0)
        self.assertEqual([(e.edu_type, e.user_id, e.destination) for e in entries],
                         [(DEVICE_LIST_UPDATE, ALICE, None),
                          (SIGNING_KEY_UPDATE, ALICE, None)])
        self.assertEqual(entries[0].content["device_id"], "D1")
        positions = await self.store.current_positions()
        self.assertEqual(entries[1].content["stream_id"], positions["device_lists"])
        self.assertEqual(positions["federation_outbox"], entries[-1].pos)
        self.assertEqual(await self.store.federation_outbox.delete_upto(entries[0].pos), 1)
        self.assertEqual(len(await self.store.federation_outbox.entries(0)), 1)

    async def test_device_list_updates_chain_by_prev_id(self) -> None:
        """Each device update names the user's previous device update as prev_id (the
        first none), skipping signing-key changes; /user/devices' stream_id is the
        last device update, so a receiver that fetched it can apply the next one."""
        await self.store.accounts.create_user(ALICE, None)
        await self.store.accounts.create_user(BOB, None)
        await self.store.devices.create_device(ALICE, "D1")
        await self.store.devices.create_device(BOB, "B1")
        await self.store.devices.create_device(ALICE, "D2")
        await self.store.cross_signing.set_keys(ALICE, {"master": {"keys": {}}})
        self.assertEqual(await self.store.remote_device_lists.latest_position(ALICE),
                         (await self.store.federation_outbox.entries(0))[2]
                         .content["stream_id"])
        await self.store.devices.create_device(ALICE, "D3")
        chain = [(e.content["device_id"], e.content["stream_id"], e.content.get("prev_id"))
                 for e in await self.store.federation_outbox.entries(0)
                 if e.user_id == ALICE and e.edu_type == DEVICE_LIST_UPDATE]
        (d1, s1, p1), (d2, s2, p2), (d3, s3, p3) = chain
        self.assertEqual((d1, d2, d3), ("D1", "D2", "D3"))
        self.assertEqual((p1, p2, p3), ([], [s1], [s2]))
        self.assertLess(s1, s2)
        self.assertLess(s2, s3)

    async def test_to_device_send_once(self) -> None:
        """A to-device transaction queues local and remote messages once, together."""
        remote = [OutboxEntry(DIRECT_TO_DEVICE, ALICE, {"messages": {}},
                              destination="far.example")]
        txn = (ALICE, "dev", "/sendToDevice/t/1")
        td = self.store.to_device
        self.assertTrue(await td.send_once(txn, "to-device", [(BOB, "B", {"n": 1})], remote))
        self.assertFalse(await td.send_once(txn, "to-device", [(BOB, "B", {"n": 1})],
                                            remote))
        self.assertEqual(len((await td.get_messages(BOB, "B", 0))[0]), 1)
        entries = await self.store.federation_outbox.entries(0)
        self.assertEqual([e.destination for e in entries], ["far.example"])

    async def test_concurrent_duplicates(self) -> None:
        """Two sends of one transaction at the same time queue it once."""
        td = self.store.to_device
        txn = (ALICE, "dev", "/sendToDevice/t/2")
        results = await defer.gatherResults([defer.ensureDeferred(td.send_once(
            txn, "to-device", [(BOB, "B", {"n": i})])) for i in range(2)])
        self.assertEqual(sorted(results), [False, True])
        self.assertEqual(len((await td.get_messages(BOB, "B", 0))[0]), 1)

    async def test_key_counts_are_cached_and_invalidated(self) -> None:
        """Counts follow uploads and claims (the cache never answers stale)."""
        keys = self.store.e2e_keys
        self.assertEqual((await keys.key_counts(ALICE, "D")).one_time_keys,
                         {"signed_curve25519": 0})
        await keys.upload(ALICE, "D", None, {"signed_curve25519:a": {"k": 1},
                                             "signed_curve25519:b": {"k": 2}}, {})
        self.assertEqual((await keys.key_counts(ALICE, "D")).one_time_keys,
                         {"signed_curve25519": 2})
        claimed = await keys.claim([(ALICE, "D", "signed_curve25519")])
        self.assertEqual(claimed, {ALICE: {"D": {"signed_curve25519:a": {"k": 1}}}})
        self.assertEqual((await keys.key_counts(ALICE, "D")).one_time_keys,
                         {"signed_curve25519": 1})
        await keys.claim([(ALICE, "D", "signed_curve25519")])
        self.assertEqual((await keys.key_counts(ALICE, "D")).one_time_keys,
                         {"signed_curve25519": 0})

    async def test_identity_key_change_bumps_device_list_once(self) -> None:
        """Uploading the same device keys twice changes the device list once."""
        keys = {"user_id": ALICE, "device_id": "D", "keys": {"ed25519:D": "x"}}
        _, changed = await self.store.e2e_keys.upload(ALICE, "D", keys, {}, {})
        _, again = await self.store.e2e_keys.upload(ALICE, "D", dict(keys), {}, {})
        self.assertEqual((changed, again), (True, False))
        self.assertEqual(await self.store.devices.users_with_device_list_changes(0),
                         {ALICE})

    async def test_delete_user(self) -> None:
        """Deactivation's deletes: every key of the user (the count cache too), their
        cross-signing keys and the signatures by or of them (bumping the device list
        once), their backups (versions marked deleted); others' data stays."""
        keys = {"user_id": ALICE, "device_id": "D", "keys": {"ed25519:D": "x"}}
        await self.store.e2e_keys.upload(ALICE, "D", keys, {"signed_curve25519:a": {}}, {})
        await self.store.e2e_keys.upload(BOB, "B", None, {"signed_curve25519:b": {}}, {})
        self.assertEqual((await self.store.e2e_keys.key_counts(ALICE, "D")).one_time_keys,
                         {"signed_curve25519": 1})
        cs = self.store.cross_signing
        await cs.set_keys(ALICE, {"master": {"keys": {}}})
        await cs.set_keys(BOB, {"master": {"keys": {}}})
        await cs.add_signatures([Signature(ALICE, "usk", BOB, "bm", "s1"),
                                 Signature(BOB, "usk", ALICE, "am", "s2"),
                                 Signature(BOB, "usk", BOB, "B", "s3")], {})
        backups = self.store.key_backups
        version = await backups.create_version(ALICE, "alg", {"public_key": "pk"})
        other = await backups.create_version(BOB, "alg", {})
        before = (await self.store.current_positions())["device_lists"]

        await self.store.e2e_keys.delete_user(ALICE)
        self.assertTrue(await cs.delete_user(ALICE))
        self.assertFalse(await cs.delete_user(ALICE))
        await backups.delete_user(ALICE)

        self.assertEqual((await self.store.e2e_keys.key_counts(ALICE, "D")).one_time_keys,
                         {"signed_curve25519": 0})
        self.assertEqual(await self.store.e2e_keys.get_device_keys({ALICE: None}), {})
        self.assertEqual((await self.store.e2e_keys.key_counts(BOB, "B")).one_time_keys,
                         {"signed_curve25519": 1})
        self.assertEqual(list(await cs.get_keys([ALICE, BOB])), [BOB])
        self.assertEqual(await cs.signatures_of([(BOB, "bm"), (ALICE, "am"), (BOB, "B")]),
                         await cs.signatures_of([(BOB, "B")]))
        self.assertEqual(await self.store.devices.users_with_device_list_changes(before),
                         {ALICE})
        self.assertIsNone(await backups.get_version(ALICE))
        self.assertIsNone(await backups.get_version(ALICE, version))
        self.assertEqual((await backups.get_version(BOB)).version, other)
        self.assertEqual(await backups.create_version(ALICE, "alg", {}), version + 1)


E2eStoreTestsSQLite, E2eStoreTestsPostgres = on_both_backends(E2eStoreTests)


class RoomKeyRuleTests(unittest.TestCase):
    def test_better_than(self) -> None:
        """Verified first, then lower first_message_index, then lower forwarded_count."""
        base = RoomKey(5, 2, False, {})
        self.assertTrue(RoomKey(9, 9, True, {}).better_than(base))
        self.assertFalse(base.better_than(RoomKey(9, 9, True, {})))
        self.assertTrue(RoomKey(4, 9, False, {}).better_than(base))
        self.assertTrue(RoomKey(5, 1, False, {}).better_than(base))
        self.assertFalse(RoomKey(5, 2, False, {"other": 1}).better_than(base))
