"""``unsigned.membership``: the requesting user's membership at each event served in a
timeline (spec: "UnsignedData"; MSC4115, Complement TestMembershipOnEvents): /sync,
/messages, /context and /event."""

from __future__ import annotations

from tests.client_api.sync_helpers import SyncTestCase, q, timeline

TEXT = {"msgtype": "m.text", "body": "hi"}


def memberships(events: list[dict]) -> list[tuple[str, str | None]]:
    return [(e["event_id"], e.get("unsigned", {}).get("membership")) for e in events]


class UnsignedMembershipTests(SyncTestCase):
    async def _room(self):
        """Alice's public room: a message before bob joins, bob's join, one after."""
        _, alice = await self.register("alice")
        bob_id, bob = await self.register("bob")
        room_id = await self.create_room(alice, preset="public_chat")
        before = await self.send(alice, room_id, TEXT)
        await self.join(bob, room_id)
        after = await self.send(alice, room_id, TEXT)
        return alice, bob_id, bob, room_id, before, after

    def _expected(self, events: list[dict], bob_id: str) -> list[tuple[str, str]]:
        """``leave`` up to bob's join, ``join`` from it on (Complement's rule)."""
        out, joined = [], False
        for e in events:
            if e["type"] == "m.room.member" and e["state_key"] == bob_id:
                joined = e["content"]["membership"] == "join"
            out.append((e["event_id"], "join" if joined else "leave"))
        return out

    async def test_initial_and_incremental_sync(self):
        """An initial sync marks the events before bob's join leave and the rest
        join; an incremental one while joined marks join; after bob leaves, his
        leave event says leave."""
        alice, bob_id, bob, room_id, before, after = await self._room()
        body = await self.sync_ok(bob)
        events = timeline(body, room_id)
        self.assertIn(before, [e["event_id"] for e in events])
        self.assertEqual(memberships(events), self._expected(events, bob_id))
        self.assertEqual(memberships(events)[-1], (after, "join"))
        since = body["next_batch"]
        later = await self.send(alice, room_id, TEXT)
        body = await self.sync_ok(bob, since=since)
        self.assertEqual(memberships(timeline(body, room_id)), [(later, "join")])
        await self.leave(bob, room_id)
        body = await self.sync_ok(bob, since=body["next_batch"])
        left = timeline(body, room_id, "leave")
        self.assertEqual(memberships(left)[-1][1], "leave")
        self.assertEqual(left[-1]["state_key"], bob_id)

    async def test_messages_context_and_event(self):
        """/messages, /context and /event carry it too; state listings do not."""
        alice, bob_id, bob, room_id, before, after = await self._room()
        status, body = await self.messages(bob, room_id, dir="f", limit=50)
        self.assertEqual(status, 200, body)
        self.assertEqual(memberships(body["chunk"]), self._expected(body["chunk"], bob_id))
        context = await self.ok("GET", self.room(room_id, f"/context/{q(after)}"),
                                token=bob)
        self.assertEqual(context["event"]["unsigned"]["membership"], "join")
        newest_first = context["events_before"]
        self.assertEqual((newest_first[0]["state_key"], memberships(newest_first)[0][1]),
                         (bob_id, "join"))
        self.assertIn((before, "leave"), memberships(newest_first))
        self.assertTrue(all("membership" not in e.get("unsigned", {})
                            for e in context["state"]))
        for event_id, expected in ((before, "leave"), (after, "join")):
            event = await self.ok("GET", self.room(room_id, f"/event/{q(event_id)}"),
                                  token=bob)
            self.assertEqual(event["unsigned"]["membership"], expected)
