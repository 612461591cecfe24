"""Inbound ``m.direct_to_device`` and ``m.presence`` EDUs through a signed /send: into
the local users' /sync, once, and only when the origin speaks for its own users; old
remote message IDs purged."""

from twisted.internet import defer
from twisted.trial import unittest

from federation import xmatrix
from federation.inbound_edus import MESSAGE_ID_KEEP_MS, DeviceMessages
from tests.client_api.harness import ServerTestCase
from tests.fakes.rooms import remote_event
from tests.federation.test_inbound_servlets import BOB, REMOTE, STRANGER, V1, _key_row


class _EduCase(ServerTestCase):
    config_overrides = {"trusted_key_servers": []}

    async def setUp(self):
        super().setUp()
        await self.c["store"].server_keys.store_server_keys([
            _key_row("remote.example", REMOTE), _key_row("stranger.example", STRANGER)])
        self.alice, self.token = await self.register("alice", device_id="PHONE")
        _, self.token2 = await self.register_device("alice", "LAPTOP")

    async def register_device(self, user, device_id):
        status, body = await self.request("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": "correct horse", "device_id": device_id})
        assert status == 200, (status, body)
        return body["user_id"], body["access_token"]

    async def send_edus(self, txn_id, edus, *, origin="remote.example", key=REMOTE):
        path = f"{V1}/send/{txn_id}"
        body = {"origin": origin, "origin_server_ts": 1, "pdus": [], "edus": edus}
        [header] = xmatrix.sign_request([key], method="PUT", uri=path, origin=origin,
                                        destination="test.local", content=body)
        status, resp = await self.request("PUT", path, body,
                                          headers={"Authorization": header})
        self.assertEqual((status, resp), (200, {"pdus": {}}))


def to_device_edu(message_id, messages, sender=BOB, event_type="m.room.encrypted"):
    return {"edu_type": "m.direct_to_device", "content": {
        "sender": sender, "type": event_type, "message_id": message_id,
        "messages": messages}}


class DirectToDeviceTest(_EduCase):
    async def to_device(self, token, since=None):
        sync = await self.sync(token, since)
        return sync.get("to_device", {}).get("events", []), sync["next_batch"]

    async def test_delivered_to_named_and_all_devices(self):
        """A message for one device reaches only it; one for "*" reaches every device
        of the user; each carries the remote sender and type."""
        await self.send_edus("t1", [
            to_device_edu("m1", {self.alice: {"PHONE": {"n": 1}}}),
            to_device_edu("m2", {self.alice: {"*": {"n": 2}}}, event_type="m.x")])
        phone, _ = await self.to_device(self.token)
        laptop, _ = await self.to_device(self.token2)
        self.assertEqual(phone, [
            {"sender": BOB, "type": "m.room.encrypted", "content": {"n": 1}},
            {"sender": BOB, "type": "m.x", "content": {"n": 2}}])
        self.assertEqual(laptop, [{"sender": BOB, "type": "m.x", "content": {"n": 2}}])

    async def test_resent_message_id_delivered_once(self):
        """The same message_id from the same origin in a new transaction is dropped
        (a sender retries EDUs in new transactions)."""
        edu = to_device_edu("same", {self.alice: {"PHONE": {"n": 1}}})
        await self.send_edus("t1", [edu])
        await self.send_edus("t2", [edu])
        events, _ = await self.to_device(self.token)
        self.assertEqual([e["content"] for e in events], [{"n": 1}])

    async def test_foreign_sender_unknown_device_and_remote_user_ignored(self):
        """A sender not of the origin is ignored; unknown devices and users of other
        servers in the messages are skipped."""
        await self.send_edus("t1", [
            to_device_edu("a", {self.alice: {"PHONE": {"n": 1}}},
                          sender="@eve:stranger.example"),
            to_device_edu("b", {self.alice: {"NOPE": {"n": 2}, "PHONE": {"n": 3}},
                                "@carol:remote.example": {"*": {"n": 4}}}),
            to_device_edu("c", {self.alice: {"PHONE": "not an object"}}),
            {"edu_type": "m.direct_to_device", "content": {"sender": BOB, "type": "m.x",
                                                           "messages": {}}}])
        events, _ = await self.to_device(self.token)
        self.assertEqual([e["content"] for e in events], [{"n": 3}])

    async def test_long_poll_wakes(self):
        """A /sync waiting for news returns when a remote to-device message arrives."""
        _, since = await self.to_device(self.token)
        waiting = defer.ensureDeferred(self.sync(self.token, since, timeout=20_000))
        await self.send_edus("t1", [to_device_edu("w", {self.alice: {"PHONE": {"n": 9}}})])
        sync = await waiting
        self.assertEqual([e["content"] for e in sync["to_device"]["events"]], [{"n": 9}])

    def test_registered(self):
        """The EDU registry handles m.direct_to_device and m.presence."""
        for edu_type in ("m.direct_to_device", "m.presence"):
            self.assertTrue(self.c["edu_handlers"].handles(edu_type), edu_type)


def presence_edu(*updates):
    return {"edu_type": "m.presence", "content": {"push": list(updates)}}


class _PresenceCase(_EduCase):
    async def setUp(self):
        await super().setUp()
        self.room_id = await self.create_room(self.token, preset="public_chat")
        actor = await self.c["rooms"].get(self.room_id)
        state = await actor.current_state()
        prev = list((await actor.get_events(await actor.forward_extremities())).values())
        join = remote_event(self.room_id, actor.room_version.identifier, state, prev,
                            {"type": "m.room.member", "sender": BOB, "state_key": BOB,
                             "content": {"membership": "join"}},
                            REMOTE, server="remote.example", ts=1)
        path = f"{V1}/send/join"
        body = {"origin": "remote.example", "origin_server_ts": 1,
                "pdus": [dict(join.get_dict())]}
        [header] = xmatrix.sign_request([REMOTE], method="PUT", uri=path,
                                        origin="remote.example",
                                        destination="test.local", content=body)
        status, resp = await self.request("PUT", path, body,
                                          headers={"Authorization": header})
        self.assertEqual((status, resp), (200, {"pdus": {join.event_id: {}}}))

    def presence_of(self, sync, user_id):
        return [e["content"] for e in sync.get("presence", {}).get("events", [])
                if e["sender"] == user_id]


class PresenceTest(_PresenceCase):
    async def test_remote_presence_reaches_room_members(self):
        """The origin's user, sharing a room with alice, shows in her /sync presence
        with state, status and last_active_ago; a waiting /sync wakes for it."""
        since = (await self.sync(self.token))["next_batch"]
        waiting = defer.ensureDeferred(self.sync(self.token, since, timeout=20_000))
        await self.send_edus("p1", [presence_edu({
            "user_id": BOB, "presence": "online", "currently_active": True,
            "last_active_ago": 5000, "status_msg": "around"})])
        [content] = self.presence_of(await waiting, BOB)
        self.assertEqual((content["presence"], content["status_msg"],
                          content["currently_active"]), ("online", "around", True))
        self.assertGreaterEqual(content["last_active_ago"], 5000)
        self.assertLess(content["last_active_ago"], 60_000)
        status, body = await self.request(
            "GET", f"/_matrix/client/v3/presence/{BOB}/status", token=self.token)
        self.assertEqual((status, body["presence"]), (200, "online"))

    async def test_other_servers_users_and_strangers_ignored(self):
        """Presence for a user of another server, or of one sharing no room with a
        local user, or with a bad state, is not stored."""
        await self.send_edus("p1", [presence_edu(
            {"user_id": "@eve:stranger.example", "presence": "online"},
            {"user_id": "@dan:remote.example", "presence": "online"},
            {"user_id": BOB, "presence": "dancing"}, "junk")])
        store = self.c["store"].presence
        for user in ("@eve:stranger.example", "@dan:remote.example", BOB):
            self.assertIsNone(await store.get_presence(user), user)

    async def test_presence_not_echoed_to_federation(self):
        """A remote user's presence is not queued for sending to other servers."""
        sent = []
        self.c["presence"].add_observer(sent.append)
        await self.send_edus("p1", [presence_edu({"user_id": BOB, "presence": "online"})])
        self.assertIsNotNone(await self.c["store"].presence.get_presence(BOB))
        self.assertEqual(sent, [])


class PresenceDisabledTest(_PresenceCase):
    config_overrides = {"trusted_key_servers": [], "presence": {"enabled": False}}

    async def test_ignored_when_presence_disabled(self):
        """With presence disabled, remote presence is dropped."""
        await self.send_edus("p1", [presence_edu({"user_id": BOB, "presence": "online"})])
        self.assertIsNone(await self.c["store"].presence.get_presence(BOB))


class FakeInbox:
    def __init__(self) -> None:
        self.purged: list[int] = []

    async def purge_federation_message_ids(self, older_than_ts):
        self.purged.append(older_than_ts)
        return 0


class PurgeTest(unittest.TestCase):
    def test_message_ids_purged_after_a_week(self):
        """purge_old forgets remembered message IDs older than a week."""
        inbox = FakeInbox()
        messages = DeviceMessages(server_name="test.local", devices=None, inbox=inbox,
                                  notify_users=lambda users: None)
        now = 10 * MESSAGE_ID_KEEP_MS
        self.successResultOf(defer.ensureDeferred(messages.purge_old(now)))
        self.assertEqual(inbox.purged, [now - MESSAGE_ID_KEEP_MS])
