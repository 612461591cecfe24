"""Push rules' outcome over HTTP: unread counts (rooms and threads) in /sync,
GET /notifications, and the pushers API (spec: Client-Server API, "Push
Notifications")."""

from __future__ import annotations

from tests.client_api.harness import q
from tests.client_api.sync_helpers import SyncTestCase, V3

GATEWAY = "https://push.example.org/_matrix/push/v1/notify"


def pusher(**changes):
    body = {"kind": "http", "app_id": "org.example.app", "pushkey": "key1",
            "app_display_name": "Example", "device_display_name": "Phone",
            "lang": "en", "data": {"url": GATEWAY}}
    body.update(changes)
    return body


class UnreadAndNotificationsTests(SyncTestCase):
    async def setup_room(self):
        alice_id, alice = await self.register("alice")
        _, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        return alice_id, alice, bob, room_id

    async def test_override_rule_silences_room(self):
        """A user override with no actions for a room stops its counts."""
        alice_id, alice, bob, room_id = await self.setup_room()
        await self.ok("PUT", f"{V3}/pushrules/global/override/quiet", {
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
            "actions": []}, token=alice)
        await self.send(bob, room_id, {"msgtype": "m.text", "body": "hey",
                                       "m.mentions": {"user_ids": [alice_id]}})
        room = (await self.sync_ok(alice))["rooms"]["join"][room_id]
        self.assertEqual(room["unread_notifications"],
                         {"notification_count": 0, "highlight_count": 0})

    async def test_thread_counts_and_threaded_receipt(self):
        """With unread_thread_notifications, thread messages count per root and a
        threaded receipt clears only its thread."""
        alice_id, alice, bob, room_id = await self.setup_room()
        root = await self.send(bob, room_id, {"msgtype": "m.text", "body": "root"})
        reply = await self.send(bob, room_id, {
            "msgtype": "m.text", "body": "in thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
        filt = {"room": {"timeline": {"unread_thread_notifications": True}}}
        room = (await self.sync_ok(alice, filter=filt))["rooms"]["join"][room_id]
        self.assertEqual(room["unread_notifications"]["notification_count"], 1)
        self.assertEqual(room["unread_thread_notifications"],
                         {root: {"notification_count": 1, "highlight_count": 0}})
        plain = (await self.sync_ok(alice))["rooms"]["join"][room_id]
        self.assertEqual(plain["unread_notifications"]["notification_count"], 2)
        self.assertNotIn("unread_thread_notifications", plain)
        await self.ok("POST", self.room(room_id, f"/receipt/m.read/{q(reply)}"),
                      {"thread_id": root}, token=alice)
        room = (await self.sync_ok(alice, filter=filt))["rooms"]["join"][room_id]
        self.assertEqual(room["unread_thread_notifications"], {})
        self.assertEqual(room["unread_notifications"]["notification_count"], 1)

    async def test_notifications_listing(self):
        """GET /notifications lists notifying events newest first, pages, filters
        highlights and tells which are read."""
        alice_id, alice, bob, room_id = await self.setup_room()
        first = await self.send(bob, room_id, {"msgtype": "m.text", "body": "one"})
        await self.send(bob, room_id, {"msgtype": "m.text", "body": "two",
                                       "m.mentions": {"user_ids": [alice_id]}})
        await self.ok("POST", self.room(room_id, f"/receipt/m.read/{q(first)}"), {},
                      token=alice)
        body = await self.ok("GET", f"{V3}/notifications", token=alice)
        got = [(n["event"]["content"]["body"], n["read"]) for n in body["notifications"]]
        self.assertEqual(got, [("two", False), ("one", True)])
        self.assertEqual(body["notifications"][0]["room_id"], room_id)
        page = await self.ok("GET", f"{V3}/notifications?limit=1", token=alice)
        self.assertEqual(len(page["notifications"]), 1)
        rest = await self.ok("GET", f"{V3}/notifications?limit=1&from={page['next_token']}",
                             token=alice)
        self.assertEqual(rest["notifications"][0]["event"]["content"]["body"], "one")
        high = await self.ok("GET", f"{V3}/notifications?only=highlight", token=alice)
        self.assertEqual([n["event"]["content"]["body"] for n in high["notifications"]],
                         ["two"])
        self.assertError(await self.request("GET", f"{V3}/notifications?from=x",
                                            token=alice), 400, "M_INVALID_PARAM")


class PushersApiTests(SyncTestCase):
    async def test_set_list_delete(self):
        """A pusher set reads back; kind null deletes it."""
        _, token = await self.register("alice")
        await self.ok("POST", f"{V3}/pushers/set", pusher(), token=token)
        listed = (await self.ok("GET", f"{V3}/pushers", token=token))["pushers"]
        self.assertEqual([(p["pushkey"], p["data"]["url"]) for p in listed],
                         [("key1", GATEWAY)])
        await self.ok("POST", f"{V3}/pushers/set",
                      {"kind": None, "app_id": "org.example.app", "pushkey": "key1"},
                      token=token)
        self.assertEqual((await self.ok("GET", f"{V3}/pushers", token=token))["pushers"], [])

    async def test_append_false_takes_over_pushkey(self):
        """Without append, the same app_id and pushkey leave other users."""
        _, alice = await self.register("alice")
        _, bob = await self.register("bob")
        await self.ok("POST", f"{V3}/pushers/set", pusher(), token=alice)
        await self.ok("POST", f"{V3}/pushers/set", pusher(append=True), token=bob)
        self.assertEqual(len((await self.ok("GET", f"{V3}/pushers", token=alice))["pushers"]),
                         1)
        await self.ok("POST", f"{V3}/pushers/set", pusher(), token=bob)
        self.assertEqual((await self.ok("GET", f"{V3}/pushers", token=alice))["pushers"], [])

    async def test_validation(self):
        """Missing fields, bad URLs, kinds and types are 400s and write nothing."""
        _, token = await self.register("alice")
        for body, code in [
            ({"app_id": "a", "pushkey": "k"}, "M_MISSING_PARAM"),
            (pusher(lang=None), "M_MISSING_PARAM"),
            (pusher(data={}), "M_INVALID_PARAM"),
            (pusher(data={"url": "https://x.org/notify"}), "M_INVALID_PARAM"),
            (pusher(data={"url": "ftp://x.org/_matrix/push/v1/notify"}), "M_INVALID_PARAM"),
            (pusher(kind="email"), "M_INVALID_PARAM"),
            (pusher(app_id="a" * 65), "M_INVALID_PARAM"),
            (pusher(pushkey=5), "M_BAD_JSON"),
            (pusher(append="yes"), "M_BAD_JSON"),
            (pusher(data="x"), "M_BAD_JSON"),
        ]:
            self.assertError(await self.request("POST", f"{V3}/pushers/set", body,
                                                token=token), 400, code)
        self.assertEqual((await self.ok("GET", f"{V3}/pushers", token=token))["pushers"], [])


class RedactionTests(SyncTestCase):
    async def test_redacted_event_no_longer_counts(self):
        """Redacting a notifying event removes it from the counts and the list."""
        alice_id, alice = await self.register("alice")
        _, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        await self.join(bob, room_id)
        await self.send(bob, room_id, {"msgtype": "m.text", "body": "keep"})
        gone = await self.send(bob, room_id, {"msgtype": "m.text", "body": "oops",
                                              "m.mentions": {"user_ids": [alice_id]}})
        room = (await self.sync_ok(alice))["rooms"]["join"][room_id]
        self.assertEqual(room["unread_notifications"],
                         {"notification_count": 2, "highlight_count": 1})
        await self.ok("PUT", self.room(room_id, f"/redact/{q(gone)}/r1"), {}, token=bob)
        room = (await self.sync_ok(alice))["rooms"]["join"][room_id]
        self.assertEqual(room["unread_notifications"],
                         {"notification_count": 1, "highlight_count": 0})
        listed = await self.ok("GET", f"{V3}/notifications", token=alice)
        self.assertEqual([n["event"]["content"].get("body") for n in listed["notifications"]],
                         ["keep"])
