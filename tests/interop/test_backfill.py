"""Outbound backfill against a real Synapse: our user joins a room held by Synapse and
reads its earlier history through /messages, which we fetch with Synapse's
``/backfill`` (spec: Server-Server "GET /backfill/{roomId}"); the history does not
come back through /sync as new. Room versions 10 and 12. (Synapse backfilling *our*
history is ``test_inbound.InboundTest.test_synapse_backfills_our_history``.)
"""

from __future__ import annotations

import uuid

from twisted.trial import unittest

from tests.interop.common import (
    SyncCursor, call, create_room, join, q, register, room_events, say)
from tests.interop.synapse import Federation


class BackfillFromSynapseTest(unittest.TestCase):
    timeout = 300

    def setUp(self):
        self.fed = Federation.get()
        self.syn = self.fed.synapse
        self.ours = self.fed.ours

    def synapse_user(self) -> str:
        """A fresh Synapse user's access token."""
        name = f"syn{uuid.uuid4().hex[:8]}"
        self.syn.register(name, "pw-" + name)
        return self.syn.login(name, "pw-" + name)

    def page(self, token: str, room_id: str, since: str | None, limit: int) -> dict:
        path = f"/_matrix/client/v3/rooms/{q(room_id)}/messages?dir=b&limit={limit}"
        if since:
            path += f"&from={q(since)}"
        return call(self.ours, "GET", path, None, token)

    def check_history(self, version: str) -> None:
        syn_token = self.synapse_user()
        room_id = create_room(self.syn, syn_token, version, preset="public_chat")
        earlier = [f"earlier {version} {i}" for i in range(20)]
        for text in earlier:
            say(self.syn, syn_token, room_id, text)
        _user, token = register(self.ours, "ours")
        join(self.ours, token, room_id, via=self.syn.server_name)
        after_join = SyncCursor(self.ours, token)
        after_join.once()

        # the first /messages after the join already holds the history, in order
        chunk = self.page(token, room_id, None, 100)["chunk"]
        bodies = [e["content"].get("body") for e in reversed(chunk)
                  if e["type"] == "m.room.message"]
        self.assertEqual(bodies, earlier)

        # small pages walk it all once, down to the room's create event
        seen, since = [], None
        for _ in range(100):
            page = self.page(token, room_id, since, 5)
            seen += page["chunk"]
            if "end" not in page:
                break
            since = page["end"]
        self.assertEqual(seen[-1]["type"], "m.room.create")
        ids = [e["event_id"] for e in seen]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual([e["content"].get("body") for e in reversed(seen)
                          if e["type"] == "m.room.message"], earlier)

        # history is not news: /sync after the join does not bring it
        said = say(self.syn, syn_token, room_id, "after the join")
        synced: list[dict] = []

        def arrived(body: dict) -> bool:
            synced.extend(room_events(body, room_id))
            return said in [e["event_id"] for e in synced]

        after_join.until(arrived, "the message after the join")
        self.assertFalse(set(earlier) & {e.get("content", {}).get("body") for e in synced})

    def test_joiner_reads_synapse_history_v10(self):
        """Room v10: 20 messages written on Synapse before our user joined are in our
        /messages, in order, down to the create event, and not in /sync."""
        self.check_history("10")

    def test_joiner_reads_synapse_history_v12(self):
        """Room v12: the same."""
        self.check_history("12")

