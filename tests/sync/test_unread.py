"""Unread counts: which events notify or highlight under the default push rules, and
the incremental counter."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version
from homeserver.sync.unread import UnreadCounter, notification_of

ME = "@me:x"
_V = get_room_version("10")


def pdu(seq: int, event_type: str = "m.room.message", sender: str = "@them:x",
        content: dict | None = None, state_key: str | None = None) -> PDU:
    event = {"type": event_type, "sender": sender, "room_id": "!r:x",
             "content": content if content is not None else {"msgtype": "m.text",
                                                            "body": "b"}}
    if state_key is not None:
        event["state_key"] = state_key
    p = PDU(_V, event, f"${seq}")
    p.internal_metadata["seq"] = seq
    return p


class NotificationOfTests(unittest.TestCase):
    def test_default_rules(self):
        """Messages notify; own, notices, edits, reactions and most state do not;
        mentions and tombstones highlight; an invite for me notifies."""
        self.assertEqual(notification_of(pdu(1), ME), (True, False))
        self.assertEqual(notification_of(pdu(1, sender=ME), ME), (False, False))
        self.assertEqual(notification_of(pdu(1, content={"msgtype": "m.notice"}), ME),
                         (False, False))
        edit = {"msgtype": "m.text", "m.relates_to": {"rel_type": "m.replace"}}
        self.assertEqual(notification_of(pdu(1, content=edit), ME), (False, False))
        self.assertEqual(notification_of(pdu(1, "m.reaction", content={}), ME),
                         (False, False))
        mention = {"msgtype": "m.text", "m.mentions": {"user_ids": [ME]}}
        self.assertEqual(notification_of(pdu(1, content=mention), ME), (True, True))
        self.assertEqual(notification_of(pdu(1, "m.room.encrypted", content={}), ME),
                         (True, False))
        self.assertEqual(notification_of(pdu(1, "m.room.tombstone", content={},
                                             state_key=""), ME), (True, True))
        self.assertEqual(notification_of(pdu(1, "m.room.member", state_key=ME,
                                             content={"membership": "invite"}), ME),
                         (True, False))
        self.assertEqual(notification_of(pdu(1, "m.room.name", state_key="",
                                             content={"name": "n"}), ME), (False, False))


class _Actor:
    room_id = "!r:x"

    def __init__(self) -> None:
        self.events: list[PDU] = []
        self.reads = 0

    async def last_seq(self) -> int:
        return self.events[-1].internal_metadata["seq"] if self.events else 0

    async def events_since(self, seq: int, limit: int):
        self.reads += 1
        after = [e for e in self.events if e.internal_metadata["seq"] > seq]
        return after[-limit:], len(after) > limit


class CounterTests(unittest.TestCase):
    async def test_counts_advance_incrementally(self):
        """Counts cover (read, upper]; a later upper only reads the new events; a new
        read point starts over."""
        actor, counter = _Actor(), UnreadCounter()
        actor.events = [pdu(i) for i in range(1, 6)]
        self.assertEqual(await counter.counts(actor, ME, 2, 4),
                         {"notification_count": 2, "highlight_count": 0})
        actor.events.append(pdu(6, content={"msgtype": "m.text",
                                            "m.mentions": {"user_ids": [ME]}}))
        self.assertEqual(await counter.counts(actor, ME, 2, 6),
                         {"notification_count": 4, "highlight_count": 1})
        self.assertEqual(await counter.counts(actor, ME, 5, 6),
                         {"notification_count": 1, "highlight_count": 1})
        reads = actor.reads
        await counter.counts(actor, ME, 5, 6)
        self.assertEqual(actor.reads, reads)  # nothing new: nothing read
