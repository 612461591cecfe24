"""History visibility as later joiners see it through /sync, /messages and /context
(spec: "Room History Visibility"; sytest tests/31sync/06state.pl "Current state
appears in timeline in private history", tests/30rooms/30history-visibility.pl)."""

from __future__ import annotations

from tests.client_api.room_helpers import RoomsTestCase


class CurrentStateInTimelineTests(RoomsTestCase):
    async def _scenario(self, before: int, after: int) -> None:
        """Syncer leaves a "joined"-visibility room, the invitee joins while it is
        away, ``before``/``after`` messages are sent around that; on rejoining, the
        syncer's incremental sync shows the invitee's join in the timeline."""
        _, creator = await self.register("creator")
        _, syncer = await self.register("syncer")
        invitee, invitee_tok = await self.register("invitee")
        room_id = await self.create_room(creator, preset="public_chat")
        await self.join(syncer, room_id)
        await self.put_state(creator, room_id, "m.room.history_visibility",
                             {"history_visibility": "joined"})
        await self.invite(creator, room_id, invitee)
        since = (await self.sync(syncer))["next_batch"]
        for i in range(before):
            await self.send(creator, room_id, {"msgtype": "m.text", "body": f"b{i}"})
        await self.leave(syncer, room_id)
        await self.join(invitee_tok, room_id)
        for i in range(after):
            await self.send(creator, room_id, {"msgtype": "m.text", "body": f"a{i}"})
        await self.join(syncer, room_id)
        sync = await self.sync(syncer, since=since)
        events = sync["rooms"]["join"][room_id]["timeline"]["events"]
        self.assertTrue(any(e["type"] == "m.room.member" and e["state_key"] == invitee
                            and e["content"]["membership"] == "join" for e in events),
                        events)
        # history hidden from the syncer stays hidden
        self.assertFalse([e for e in events if e["type"] == "m.room.message"
                          and e["content"]["body"].startswith("a")])

    async def test_current_state_in_timeline(self):
        """sytest "Current state appears in timeline in private history"."""
        await self._scenario(0, 0)

    async def test_with_many_messages_before(self):
        """sytest "… in private history with many messages before"."""
        await self._scenario(50, 0)

    async def test_with_many_messages_after(self):
        """sytest "… in private history with many messages after"."""
        await self._scenario(0, 50)
