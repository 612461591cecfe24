"""To-device inboxes and the federation message-id dedupe."""

from __future__ import annotations

from tests.store.backends import StoreTests, on_both_backends

ALICE, BOB = "@alice:example.org", "@bob:example.org"


def _m(n: int) -> dict:
    return {"sender": BOB, "type": "m.test", "content": {"n": n}}


class ToDeviceTests(StoreTests):
    async def test_deliver_and_read(self) -> None:
        """Each device reads only its own messages, oldest first."""
        td = self.store.to_device
        pos = await td.add_messages([(ALICE, "A1", _m(1)), (ALICE, "A2", _m(2)),
                                     (ALICE, "A1", _m(3))])
        self.assertEqual(await self.store.current_position("to_device"), pos)
        msgs, upto = await td.get_messages(ALICE, "A1", 0)
        self.assertEqual([m["content"]["n"] for m in msgs], [1, 3])
        self.assertEqual(upto, pos)
        msgs, _ = await td.get_messages(ALICE, "A2", 0)
        self.assertEqual(msgs, [_m(2)])
        self.assertEqual(await td.devices_with_messages(0), {(ALICE, "A1"), (ALICE, "A2")})

    async def test_limit(self) -> None:
        """A limited read says how far it got, so the next read resumes there."""
        td = self.store.to_device
        await td.add_messages([(ALICE, "A", _m(i)) for i in range(5)])
        first, upto = await td.get_messages(ALICE, "A", 0, limit=2)
        rest, end = await td.get_messages(ALICE, "A", upto, limit=10)
        self.assertEqual([m["content"]["n"] for m in first + rest], [0, 1, 2, 3, 4])
        self.assertEqual(end, await self.store.current_position("to_device"))

    async def test_delete_upto(self) -> None:
        """Acknowledged messages are deleted up to a position, later ones stay."""
        td = self.store.to_device
        p1 = await td.add_messages([(ALICE, "A", _m(1))])
        await td.add_messages([(ALICE, "A", _m(2)), (ALICE, "B", _m(3))])
        self.assertEqual(await td.delete_messages_upto(ALICE, "A", p1), 1)
        msgs, _ = await td.get_messages(ALICE, "A", 0)
        self.assertEqual(msgs, [_m(2)])
        self.assertEqual(await td.delete_device_inbox(ALICE, "B"), 1)
        self.assertEqual((await td.get_messages(ALICE, "B", 0))[0], [])

    async def test_add_nothing(self) -> None:
        """Adding no messages returns the current position unchanged."""
        self.assertEqual(await self.store.to_device.add_messages([]), 0)

    async def test_federation_dedupe(self) -> None:
        """A remote message_id is accepted once; old ids can be purged."""
        td = self.store.to_device
        self.assertTrue(await td.mark_federation_message_seen("remote.org", "m1"))
        self.assertFalse(await td.mark_federation_message_seen("remote.org", "m1"))
        self.assertTrue(await td.mark_federation_message_seen("other.org", "m1"))
        self.assertEqual(await td.purge_federation_message_ids(self.db.now_ms() + 1), 2)
        self.assertTrue(await td.mark_federation_message_seen("remote.org", "m1"))

    async def test_federation_messages_once(self) -> None:
        """Remote messages are queued with their message_id's record: a second copy
        from the same origin queues nothing, the same id from another origin does."""
        td = self.store.to_device
        pos = await td.add_federation_messages("remote.org", "m1", [(ALICE, "A", _m(1))])
        self.assertEqual(pos, await self.store.current_position("to_device"))
        self.assertIsNone(
            await td.add_federation_messages("remote.org", "m1", [(ALICE, "A", _m(1))]))
        self.assertIsNotNone(
            await td.add_federation_messages("other.org", "m1", [(ALICE, "A", _m(2))]))
        msgs, _ = await td.get_messages(ALICE, "A", 0)
        self.assertEqual([m["content"]["n"] for m in msgs], [1, 2])
        self.assertIsNone(await td.add_federation_messages("remote.org", "m1", []))


ToDeviceTestsSQLite, ToDeviceTestsPostgres = on_both_backends(ToDeviceTests)
