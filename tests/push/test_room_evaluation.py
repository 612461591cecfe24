"""Per-room evaluation of committed events: recipients, order, and /sync's wait for
it (``caught_up``), with fake rooms and stores."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import get_room_version
from homeserver.push import rulesets
from homeserver.push.room_evaluation import RoomPushEvaluator, thread_of

V = get_room_version("10")
ROOM = "!r:hs"


def pdu(seq, event_type="m.room.message", sender="@bob:hs", content=None,
        state_key=None) -> PDU:
    d = {"type": event_type, "sender": sender, "room_id": ROOM,
         "content": content if content is not None else {"msgtype": "m.text", "body": "x"}}
    if state_key is not None:
        d["state_key"] = state_key
    p = PDU(V, d, f"${seq}")
    p.internal_metadata["seq"] = seq
    return p


def member(user, membership="join", name=None):
    content = {"membership": membership}
    if name:
        content["displayname"] = name
    return pdu(0, "m.room.member", user, content, state_key=user)


class _Actor:
    room_id = ROOM

    def __init__(self, members, events=()):
        self.state = {("m.room.member", m.state_key): m for m in members}
        self.events = {e.event_id: e for e in events}
        self.state_reads = 0

    async def current_state(self, keys):
        self.state_reads += 1
        return self.state

    async def get_events(self, event_ids):
        return {i: self.events[i] for i in event_ids if i in self.events}


class _Progress:
    """The stored progress and the room stream's announced events."""

    def __init__(self, stored, announced):
        self.stored = stored
        self.announced = announced  # [(seq, event_id, pos)]
        self.written = []
        self.forgotten = []

    def forget(self, room_id):
        self.forgotten.append(room_id)

    async def get(self, room_id):
        return self.stored

    async def set_many(self, seqs):
        self.written.append(dict(seqs))

    async def announced_after(self, room_id, after, upto, limit):
        return [a for a in self.announced if after < a[0] <= upto][-limit:]


class _Rooms:
    def __init__(self, actor):
        self.actor = actor

    async def get(self, room_id):
        return self.actor


class _Rules:
    gate = None

    async def rulesets(self, users):
        if self.gate is not None:
            await self.gate
        return {u: rulesets.ruleset(u, None) for u in users}


class _Notifications:
    def __init__(self):
        self.added = []
        self.gate = None

    async def add(self, found):
        if self.gate is not None:
            await self.gate
        self.added += found


def make(members, rules=None):
    store = _Notifications()
    ev = RoomPushEvaluator(rooms=_Rooms(_Actor(members)), push_rules=rules or _Rules(),
                           notifications=store, server_name="hs", now_ms=lambda: 7)
    return ev, store


class EvaluationTests(unittest.TestCase):
    def test_local_joined_members_except_sender(self):
        """Joined local members other than the sender are evaluated; remote users and
        those who left are not."""
        ev, store = make([member("@bob:hs"), member("@alice:hs"),
                          member("@carol:other"), member("@dan:hs", "leave")])
        ev.on_room_event(pdu(1), 10)
        self.assertEqual([(n.user_id, n.room_seq, n.stream_pos) for n in store.added],
                         [("@alice:hs", 1, 10)])

    def test_hibernated_room_keeps_no_context(self):
        """Members and power levels are read once per room while it is awake; once it
        hibernates they go too, and its next event reads them afresh."""
        ev, store = make([member("@bob:hs"), member("@alice:hs")])
        actor = ev._rooms.actor
        ev.on_room_event(pdu(1), 10)
        ev.on_room_event(pdu(2), 11)
        self.assertEqual(actor.state_reads, 1)
        ev.room_hibernated(ROOM)
        actor.state[("m.room.member", "@carol:hs")] = member("@carol:hs")
        ev.on_room_event(pdu(3), 12)
        self.assertEqual(actor.state_reads, 2)
        self.assertEqual(sorted(n.user_id for n in store.added if n.room_seq == 3),
                         ["@alice:hs", "@carol:hs"])

    def test_invitee_is_evaluated(self):
        """An invite notifies the invited local user (.m.rule.invite_for_me)."""
        ev, store = make([member("@bob:hs")])
        ev.on_room_event(pdu(2, "m.room.member", content={"membership": "invite"},
                             state_key="@alice:hs"), 11)
        self.assertEqual([n.user_id for n in store.added], ["@alice:hs"])

    def test_display_name_highlight_and_thread(self):
        """The recipient's display name in the room feeds contains_display_name;
        a thread reply is stored under its root."""
        ev, store = make([member("@bob:hs"), member("@alice:hs", name="Ally")])
        ev.on_room_event(pdu(3, content={"msgtype": "m.text", "body": "hi Ally",
                                         "m.relates_to": {"rel_type": "m.thread",
                                                          "event_id": "$root"}}), 12)
        [n] = store.added
        self.assertEqual((n.highlight, n.thread_id), (True, "$root"))

    def test_caught_up_waits_for_queued_events(self):
        """caught_up fires only once the events up to the seq are evaluated, in order."""
        rules = _Rules()
        gate = rules.gate = defer.Deferred()
        ev, store = make([member("@bob:hs"), member("@alice:hs")], rules)
        ev.on_room_event(pdu(1), 10)
        ev.on_room_event(pdu(2), 11)
        waited = []
        ev.caught_up(ROOM, 2).addCallback(waited.append)
        ev.caught_up(ROOM, 0).addCallback(lambda _: waited.append("zero"))
        self.assertEqual(waited, ["zero"])
        rules.gate = None
        gate.callback(None)
        self.assertEqual([n.room_seq for n in store.added], [1, 2])
        self.assertEqual(waited, ["zero", None])
        self.assertTrue(ev.caught_up(ROOM, 99).called)

    def test_evaluated_before_stored(self):
        """Observers hear of the outcome at once and again once it is stored; a
        room's writes keep their order."""
        ev, store = make([member("@bob:hs"), member("@alice:hs")])
        gate = store.gate = defer.Deferred()
        heard = []
        ev.add_observer(evaluated=lambda f: heard.append(("evaluated", f[0].room_seq)),
                        stored=lambda f, e: heard.append(("stored", f[0].room_seq)))
        ev.on_room_event(pdu(1), 10)
        ev.on_room_event(pdu(2), 11)
        self.assertEqual(heard, [("evaluated", 1), ("evaluated", 2)])
        self.assertTrue(ev.caught_up(ROOM, 2).called)
        store.gate = None
        gate.callback(None)
        self.assertEqual(heard[2:], [("stored", 1), ("stored", 2)])
        self.assertEqual([n.room_seq for n in store.added], [1, 2])

    def test_restart_catches_up_from_stored_progress(self):
        """Events announced after the stored progress (a crash) are evaluated before
        the next new event, in order; progress is flushed after a while."""
        from twisted.internet import task

        missed = [pdu(4), pdu(5)]
        progress = _Progress(3, [(4, "$4", 40), (5, "$5", 50)])
        store, clock = _Notifications(), task.Clock()
        ev = RoomPushEvaluator(
            rooms=_Rooms(_Actor([member("@bob:hs"), member("@alice:hs")], missed)),
            push_rules=_Rules(), notifications=store, server_name="hs",
            now_ms=lambda: 7, progress=progress, clock=clock)
        ev.on_room_event(pdu(6), 60)
        self.assertEqual([(n.room_seq, n.stream_pos) for n in store.added],
                         [(4, 40), (5, 50), (6, 60)])
        clock.advance(5)
        self.assertEqual(progress.written, [{ROOM: 6}])

    def test_sync_triggers_catch_up(self):
        """Asking caught_up about a room not seen since the restart evaluates what it
        missed first."""
        progress = _Progress(1, [(2, "$2", 20)])
        store = _Notifications()
        ev = RoomPushEvaluator(
            rooms=_Rooms(_Actor([member("@bob:hs"), member("@alice:hs")], [pdu(2)])),
            push_rules=_Rules(), notifications=store, server_name="hs",
            now_ms=lambda: 7, progress=progress)
        self.assertTrue(ev.caught_up(ROOM, 2).called)
        self.assertEqual([n.room_seq for n in store.added], [2])
        ev.on_room_event(pdu(3), 30)
        self.assertEqual([n.room_seq for n in store.added], [2, 3])

    def test_new_room_needs_no_catch_up(self):
        """A room with no stored progress starts with its next event."""
        progress = _Progress(None, [(1, "$1", 10)])
        ev, store = make([member("@bob:hs"), member("@alice:hs")])
        ev._progress = progress
        ev.on_room_event(pdu(2), 20)
        self.assertEqual([n.room_seq for n in store.added], [2])

    def _stored_progress(self):
        """An evaluator whose progress store keeps what is flushed, and its pieces."""
        from twisted.internet import task

        class Storing(_Progress):
            gets = 0

            async def get(self, room_id):
                self.gets += 1
                return self.stored

            async def set_many(self, seqs):
                await super().set_many(seqs)
                self.stored = seqs[ROOM]

        progress, store, clock = Storing(None, []), _Notifications(), task.Clock()
        ev = RoomPushEvaluator(
            rooms=_Rooms(_Actor([member("@bob:hs"), member("@alice:hs")])),
            push_rules=_Rules(), notifications=store, server_name="hs",
            now_ms=lambda: 7, progress=progress, clock=clock)
        return ev, progress, store, clock

    def test_hibernated_room_leaves_nothing_once_progress_is_stored(self):
        """A room that hibernates with its progress not yet flushed is forgotten
        after the flush; its next event checks the stored progress again and
        nothing is evaluated twice."""
        ev, progress, store, clock = self._stored_progress()
        ev.on_room_event(pdu(1), 10)
        ev.room_hibernated(ROOM)
        self.assertIn(ROOM, ev._known)          # progress 1 not stored yet
        self.assertEqual(progress.forgotten, [])
        clock.advance(5)
        self.assertEqual(progress.written, [{ROOM: 1}])
        self.assertEqual((ev._known, ev._forget_later), (set(), set()))
        self.assertEqual(progress.forgotten, [ROOM])
        ev.on_room_event(pdu(2), 20)
        self.assertEqual(progress.gets, 2)
        self.assertEqual([n.room_seq for n in store.added], [1, 2])

    def test_idle_hibernated_room_is_forgotten_at_once(self):
        """With its progress already stored, a hibernating room is forgotten at once;
        a sync asking about it then checks the stored progress (nothing missed)."""
        ev, progress, store, clock = self._stored_progress()
        ev.on_room_event(pdu(1), 10)
        clock.advance(5)
        ev.room_hibernated(ROOM)
        self.assertEqual((ev._known, progress.forgotten), (set(), [ROOM]))
        self.assertTrue(ev.caught_up(ROOM, 1).called)
        self.assertEqual(progress.gets, 2)
        self.assertEqual([n.room_seq for n in store.added], [1])

    def test_thread_of(self):
        """Only m.thread relations put an event in a thread."""
        self.assertIsNone(thread_of({"content": {"m.relates_to": {"rel_type": "m.replace",
                                                                  "event_id": "$x"}}}))
        self.assertEqual(thread_of({"content": {"m.relates_to": {
            "rel_type": "m.thread", "event_id": "$x"}}}), "$x")
