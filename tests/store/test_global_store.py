"""GlobalStore: its parts, construction from config, the RoomStreamWriter contract."""

from __future__ import annotations

import inspect

from twisted.internet import reactor
from twisted.trial import unittest

from homeserver.rooms.actor.protocols import Announcement, RoomStreamWriter
from homeserver.store import GlobalStore
from tests.store.backends import SQLiteBackend, StoreTests, on_both_backends

PARTS = ("accounts", "devices", "rooms", "streams", "account_data", "receipts",
         "presence", "to_device", "filters", "registration_tokens",
         "server_keys", "user_directory")


class GlobalStoreShapeTests(unittest.TestCase):
    def test_room_stream_writer_signatures(self) -> None:
        """announce and register_room have exactly the Protocol's parameters."""
        for name in ("announce", "register_room"):
            want = inspect.signature(getattr(RoomStreamWriter, name))
            got = inspect.signature(getattr(GlobalStore, name))
            self.assertEqual(
                [(p.name, p.default, p.kind) for p in got.parameters.values()],
                [(p.name, p.default, p.kind) for p in want.parameters.values()])
            self.assertTrue(inspect.iscoroutinefunction(getattr(GlobalStore, name)))

    def test_from_config_builds_every_part(self) -> None:
        """from_config wires one Database into every part."""
        backend = SQLiteBackend()
        store = GlobalStore.from_config(backend.create(), reactor)
        self.addCleanup(backend.drop)
        self.addCleanup(store.db.engine.dispose)
        for part in PARTS:
            self.assertIs(getattr(store, part)._db, store.db, part)


class GlobalStoreTests(StoreTests):
    async def test_announce_then_register(self) -> None:
        """The RoomStreamWriter methods reach the stream and the rooms index."""
        writer: RoomStreamWriter = self.store
        await writer.register_room("!r:x", "12", "@a:x")
        pos = await writer.announce([Announcement("!r:x", 1, "$1", "m.room.create", "",
                                                  "@a:x")])
        self.assertEqual(pos, [1])
        self.assertIsNotNone(await self.store.rooms.get_room("!r:x"))
        self.assertEqual((await self.store.current_positions())["room"], 1)


GlobalStoreTestsSQLite, GlobalStoreTestsPostgres = on_both_backends(GlobalStoreTests)
