"""Remote device lists: m.device_list_update applied when its prev_id matches our
copy, a resync through /user/devices when one was missed, signing-key updates, and
every change on the device-lists stream that local /syncs read."""

from __future__ import annotations

from urllib.parse import quote

from federation.device_lists import RemoteDeviceLists, keys_from_lists
from federation.remote_keys import RemoteKeys
from federation.remote_queries import RemoteQueries
from tests.client_api.harness import ServerTestCase
from tests.fakes.federation_client import FakeFederationClient

BOB = "@bob:far.example"
DEVICES_PATH = "/_matrix/federation/v1/user/devices/" + quote(BOB, safe="")


def dkeys(device_id: str, user_id: str = BOB) -> dict:
    return {"user_id": user_id, "device_id": device_id, "algorithms": [],
            "keys": {f"ed25519:{device_id}": "k"}, "signatures": {}}


class FakeStreams:
    def __init__(self) -> None:
        self.sharing: dict[str, set[str]] = {}

    async def users_sharing_a_room_with(self, user_id: str) -> set[str]:
        return self.sharing.get(user_id, set())


class StoreView:
    """The two parts of the store the tracker reads: the real cache, fake rooms."""

    def __init__(self, store, streams) -> None:
        self.remote_device_lists = store.remote_device_lists
        self.streams = streams


class RemoteDeviceListsTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        self.client = FakeFederationClient()
        self.streams = FakeStreams()
        self.streams.sharing[BOB] = {"@alice:test.local", BOB}
        self.woken: list[str] = []

        async def changed(user_id):
            self.woken.append(user_id)

        self.lists = RemoteDeviceLists(
            server_name="test.local", store=StoreView(self.c["store"], self.streams),
            client=self.client, device_lists_changed=changed)
        self.client.answer("GET", "far.example", DEVICES_PATH, {
            "user_id": BOB, "stream_id": 5,
            "devices": [{"device_id": "A", "keys": dkeys("A"), "device_display_name": "a"},
                        {"device_id": "FORGED", "keys": dkeys("X")}],
            "master_key": {"user_id": BOB, "usage": ["master"], "keys": {}}})

    def update(self, device_id, stream_id, prev_ids, **extra):
        return {"user_id": BOB, "device_id": device_id, "stream_id": stream_id,
                "prev_id": prev_ids, **extra}

    async def changed_since(self, pos):
        return await self.c["store"].devices.users_with_device_list_changes(pos)

    async def test_first_update_resyncs(self):
        """With no copy, an update fetches the whole list; keys not matching their
        device are dropped; room mates' syncs are woken and see the change."""
        await self.lists.on_device_list_update("far.example", self.update("B", 6, [5]))
        self.assertEqual(len(self.client.sent("GET", DEVICES_PATH)), 1)
        entry = await self.lists.cached(BOB)
        self.assertEqual(entry.stream_id, 5)
        self.assertEqual(entry.devices["A"]["keys"], dkeys("A"))
        self.assertIsNone(entry.devices["FORGED"]["keys"])
        self.assertEqual(self.woken, [BOB])
        self.assertIn(BOB, await self.changed_since(0))

    async def test_update_in_chain_is_applied(self):
        """An update whose prev_id is our stream_id is applied without a request;
        a deletion removes the device; a replayed update changes nothing."""
        await self.lists.resync(BOB)
        pos = (await self.c["store"].current_positions())["device_lists"]
        await self.lists.on_device_list_update(
            "far.example", self.update("B", 6, [5], keys=dkeys("B")))
        await self.lists.on_device_list_update(
            "far.example", self.update("A", 7, [6], deleted=True))
        await self.lists.on_device_list_update("far.example", self.update("A", 7, [6]))
        self.assertEqual(len(self.client.sent("GET", DEVICES_PATH)), 1)
        entry = await self.lists.cached(BOB)
        self.assertEqual((entry.stream_id, sorted(entry.devices)), (7, ["B", "FORGED"]))
        self.assertEqual(entry.devices["B"]["keys"], dkeys("B"))
        self.assertIn(BOB, await self.changed_since(pos))

    async def test_missed_update_resyncs(self):
        """An update whose prev_id we never saw makes us fetch the list again."""
        await self.lists.resync(BOB)
        await self.lists.on_device_list_update("far.example", self.update("C", 9, [8]))
        self.assertEqual(len(self.client.sent("GET", DEVICES_PATH)), 2)

    async def test_our_updates_apply_in_chain_after_one_fetch(self):
        """The device-list updates this server sends, received by a server that
        fetched our /user/devices once, each apply without fetching again: their
        prev_id is the stream_id the receiver holds."""
        store, carol = self.c["store"], "@carol:test.local"
        await self.c["federation_sender"].stop()   # it would trim what goes nowhere
        path = "/_matrix/federation/v1/user/devices/" + quote(carol, safe="")
        self.streams.sharing[carol] = {"@alice:test.local", carol}
        await store.accounts.create_user(carol, None)
        await store.devices.create_device(carol, "C1")
        self.client.answer("GET", "test.local", path,
                           await self.c["federation_queries"].user_devices(carol))
        await self.lists.resync(carol)
        start = (await store.current_positions())["federation_outbox"]
        await store.devices.create_device(carol, "C2")
        await store.cross_signing.set_keys(carol, {"master": {"keys": {}}})
        await store.devices.create_device(carol, "C3")
        for entry in await store.federation_outbox.entries(start):
            if entry.edu_type == "m.device_list_update":
                await self.lists.on_device_list_update("test.local", entry.content)
        self.assertEqual(len(self.client.sent("GET", path)), 1)
        self.assertEqual(sorted((await self.lists.cached(carol)).devices),
                         ["C1", "C2", "C3"])

    async def test_dropped_updates(self):
        """From a server that is not the user's, malformed, or for a user no local user
        shares a room with: nothing is fetched or stored."""
        await self.lists.on_device_list_update("evil.example", self.update("B", 6, [5]))
        await self.lists.on_device_list_update("far.example", self.update("B", "6", [5]))
        self.streams.sharing[BOB] = {BOB, "@carol:other.example"}
        await self.lists.on_device_list_update("far.example", self.update("B", 6, [5]))
        self.assertEqual(self.client.requests, [])
        self.assertIsNone(await self.lists.cached(BOB))

    async def test_signing_key_update(self):
        """m.signing_key_update replaces the cached master key."""
        await self.lists.resync(BOB)
        master = {"user_id": BOB, "usage": ["master"], "keys": {"ed25519:new": "new"}}
        await self.lists.on_signing_key_update("far.example",
                                               {"user_id": BOB, "master_key": master})
        entry = await self.lists.cached(BOB)
        self.assertEqual(entry.master_key, master)
        answer = keys_from_lists({BOB: entry}, {BOB: []})
        self.assertEqual(answer["master_keys"], {BOB: master})
        self.assertEqual(set(answer["device_keys"][BOB]), {"A"})

    async def test_unreachable_resync(self):
        """A failed resync caches nothing and wakes nobody."""
        self.client.answers.clear()
        self.assertIsNone(await self.lists.get(BOB))
        self.assertEqual(self.woken, [])

    async def test_keys_query_fetches_tracked_users(self):
        """/keys/query: a tracked user not cached is fetched whole (and cached), an
        untracked one asked with /user/keys/query; a failed fetch falls back to it."""
        carol = "@carol:far.example"
        self.client.answer("POST", "far.example", "/_matrix/federation/v1/user/keys/query",
                           {"device_keys": {carol: {"C": dkeys("C", carol)}}})
        keys = RemoteKeys(queries=RemoteQueries(client=self.client, now_ms=lambda: 0),
                          device_lists=self.lists)
        merged, failures = await keys.query({"far.example": {BOB: [], carol: []}}, 2000)
        self.assertEqual(failures, {})
        self.assertEqual(merged["device_keys"], {BOB: {"A": dkeys("A")},
                                                 carol: {"C": dkeys("C", carol)}})
        [fetch] = self.client.sent("GET", DEVICES_PATH)
        self.assertEqual(fetch[5], 2.0)
        [asked] = self.client.sent("POST", "/_matrix/federation/v1/user/keys/query")
        self.assertEqual(asked[4], {"device_keys": {carol: []}})
        self.assertIsNotNone(await self.lists.cached(BOB))
        self.assertIsNone(await self.lists.cached(carol))

        self.client.answers.pop(("GET", "far.example", DEVICES_PATH))
        dave = "@dave:far.example"
        self.streams.sharing[dave] = {"@alice:test.local", dave}
        await keys.query({"far.example": {dave: []}}, None)
        self.assertEqual(self.client.sent("POST", "/_matrix/federation/v1/user/keys/query")[-1][4],
                         {"device_keys": {dave: []}})
