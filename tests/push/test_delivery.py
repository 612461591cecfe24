"""Push gateway delivery with a fake HTTP client and a fake clock (Push Gateway API,
``/_matrix/push/v1/notify``): the body, retries with backoff, rejected pushkeys."""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.trial import unittest

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version
from homeserver.push import delivery
from homeserver.push.delivery import PushDelivery, notification_body
from homeserver.store.notifications import Notification
from homeserver.store.pushers import Pusher

ALICE = "@alice:x"
URL = "http://gw.example/_matrix/push/v1/notify"
MENTION = ["notify", {"set_tweak": "sound", "value": "default"},
           {"set_tweak": "highlight"}]


def event() -> PDU:
    return PDU(get_room_version("10"), {
        "type": "m.room.message", "sender": "@bob:x", "room_id": "!r:x",
        "content": {"msgtype": "m.text", "body": "hi"}}, "$e")


def pusher(**data) -> Pusher:
    return Pusher(ALICE, "app", "key", "http", "App", "Phone", None, "en",
                  {"url": URL, **data}, 5000)


class _Pushers:
    def __init__(self, pushers):
        self.pushers = list(pushers)

    async def for_users(self, user_ids):
        return [p for p in self.pushers if p.user_id in user_ids]

    async def delete(self, user_id, app_id, pushkey):
        self.pushers = [p for p in self.pushers if p.pushkey != pushkey]
        return True


class _Gateway:
    """Answers from a script: an int status, or an exception to raise."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls = []

    async def post(self, url, body):
        self.calls.append((url, body))
        answer = self.script.pop(0) if self.script else (200, {"rejected": []})
        if isinstance(answer, Exception):
            raise answer
        return answer


def make(gateway, pushers=None):
    clock = task.Clock()
    store = _Pushers(pushers if pushers is not None else [pusher()])

    async def unread(user_id):
        return 3

    async def describe(ev):
        return "Bob", "Lounge"

    d = PushDelivery(pushers=store, clock=clock, post=gateway.post, unread_count=unread,
                     describe=describe)
    return d, clock, store


def notify(d):
    d.on_notified([Notification(ALICE, "!r:x", 1, "$e", 10, None, True, MENTION, 0)],
                  event())


class BodyTests(unittest.TestCase):
    def test_full_body(self):
        """The notification carries the event, names, counts and the device."""
        body = notification_body(event(), pusher(extra=1), MENTION, 3,
                                 sender_display_name="Bob", room_name="Lounge")["notification"]
        self.assertEqual((body["event_id"], body["type"], body["sender_display_name"],
                          body["room_name"], body["prio"], body["counts"]),
                         ("$e", "m.room.message", "Bob", "Lounge", "high", {"unread": 3}))
        self.assertEqual(body["content"]["body"], "hi")
        self.assertEqual(body["devices"], [{
            "app_id": "app", "pushkey": "key", "pushkey_ts": 5, "data": {"extra": 1},
            "tweaks": {"sound": "default", "highlight": True}}])

    def test_event_id_only(self):
        """format event_id_only leaves out the content and names."""
        body = notification_body(event(), pusher(format="event_id_only"), ["notify"], 0,
                                 sender_display_name="Bob", room_name="R")["notification"]
        self.assertNotIn("content", body)
        self.assertNotIn("sender", body)
        self.assertEqual(body["prio"], "low")


class DeliveryTests(unittest.TestCase):
    def test_delivers_once(self):
        """One notification, one POST to the pusher's URL."""
        gateway = _Gateway()
        d, _, _ = make(gateway)
        notify(d)
        self.assertEqual([c[0] for c in gateway.calls], [URL])

    def test_retries_with_backoff(self):
        """Failures are retried after 1, 2, 4 seconds; then it is delivered."""
        gateway = _Gateway(ConnectionError("down"), (500, None), (502, None))
        d, clock, _ = make(gateway)
        notify(d)
        self.assertEqual(len(gateway.calls), 1)
        clock.advance(1)
        self.assertEqual(len(gateway.calls), 2)
        clock.advance(1.5)
        self.assertEqual(len(gateway.calls), 2)  # the second wait is 2 s
        clock.advance(0.5)
        self.assertEqual(len(gateway.calls), 3)
        clock.advance(4)
        self.assertEqual((len(gateway.calls), d.dropped), (4, 0))

    def test_gives_up_after_max_attempts(self):
        """A gateway that never answers 2xx costs MAX_ATTEMPTS tries, then a drop."""
        gateway = _Gateway(*[(500, None)] * delivery.MAX_ATTEMPTS)
        d, clock, _ = make(gateway)
        notify(d)
        clock.pump([delivery.MAX_BACKOFF] * delivery.MAX_ATTEMPTS)
        self.assertEqual((len(gateway.calls), d.dropped), (delivery.MAX_ATTEMPTS, 1))

    def test_rejected_pushkey_removes_pusher(self):
        """A pushkey the gateway rejects loses its pusher; nothing more is sent."""
        gateway = _Gateway((200, {"rejected": ["key"]}))
        d, _, store = make(gateway)
        notify(d)
        self.assertEqual(store.pushers, [])
        notify(d)
        self.assertEqual(len(gateway.calls), 1)

    def test_queue_keeps_order_while_failing(self):
        """Pushes queued behind a failing one go out in order once it succeeds."""
        gateway = _Gateway((500, None))
        d, clock, _ = make(gateway)
        notify(d)
        notify(d)
        self.assertEqual(len(gateway.calls), 1)
        clock.advance(1)
        self.assertEqual(len(gateway.calls), 3)

    def test_no_pushers_no_requests(self):
        """Users without pushers cause no HTTP at all."""
        gateway = _Gateway()
        d, _, _ = make(gateway, pushers=[])
        notify(d)
        self.assertEqual(gateway.calls, [])


class OrderTests(unittest.TestCase):
    def test_room_order_kept_when_lookups_are_slow(self):
        """A room's pushes reach the gateway in event order even if looking up the
        first event's details takes longer than the second's."""
        gateway = _Gateway()
        gates = {"$1": defer.Deferred()}

        async def describe(ev):
            if ev.event_id in gates:
                await gates[ev.event_id]
            return None, None

        async def unread(user_id):
            return 0

        d = PushDelivery(pushers=_Pushers([pusher()]), clock=task.Clock(),
                         post=gateway.post, unread_count=unread, describe=describe)
        for event_id in ("$1", "$2"):
            ev = PDU(get_room_version("10"), {"type": "m.room.message", "sender": "@b:x",
                                              "room_id": "!r:x", "content": {}}, event_id)
            d.on_notified([Notification(ALICE, "!r:x", 1, event_id, 1, None, False,
                                        ["notify"], 0)], ev)
        self.assertEqual(gateway.calls, [])
        gates["$1"].callback(None)
        self.assertEqual([c[1]["notification"]["event_id"] for c in gateway.calls],
                         ["$1", "$2"])
