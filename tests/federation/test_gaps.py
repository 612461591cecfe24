"""GapFiller: what it fetches from the origin for PDUs we cannot place, and its
bounds (spec: "POST /get_missing_events", "GET /state_ids", "GET /state")."""

from urllib.parse import quote

from twisted.trial import unittest

from federation.gaps import MAX_GAPS, MISSING_EVENTS_LIMIT, MAX_SINGLE_FETCHES, GapFiller
from federation.pdu_checks import PduChecker
from homeserver.crypto.signing import SigningKey
from homeserver.events.builder import finalize_event
from homeserver.events.room_versions import get_room_version
from tests.federation.fakes import FakeKeyring, FakeRemote

V10 = get_room_version("10")
KEY = SigningKey.from_seed("r1", b"\x01" * 32)
FORGER = SigningKey.from_seed("r1", b"\x09" * 32)
ROOM = "!room:here.example"
ROOM_Q = quote(ROOM, safe="")


def event(n, prev=(), *, room=ROOM, key=KEY, state_key=None):
    partial = {"type": "m.room.message" if state_key is None else "m.room.topic",
               "sender": "@bob:remote.example", "room_id": room,
               "content": {"body": str(n)}, "prev_events": list(prev), "auth_events": [],
               "depth": n, "origin_server_ts": n}
    if state_key is not None:
        partial["state_key"] = state_key
    return finalize_event(V10, partial, "remote.example", key)


class FakeRoom:
    room_id = ROOM
    room_version = V10

    def __init__(self, events=(), extremities=()):
        self.events = {e.event_id: e for e in events}
        self.extremities = list(extremities)

    async def get_events(self, ids):
        return {i: self.events[i] for i in ids if i in self.events}

    async def forward_extremities(self):
        return self.extremities


def d(pdu):
    return dict(pdu.get_dict())


class GapFillerTest(unittest.TestCase):
    def setUp(self):
        self.remote = FakeRemote()
        checker = PduChecker(FakeKeyring({("remote.example", KEY.key_id):
                                          KEY.verify_key_bytes}))
        self.gaps = GapFiller(client=self.remote, checker=checker)
        self.known = event(1)
        self.room = FakeRoom([self.known], [self.known.event_id])

    async def test_nothing_missing_no_requests(self):
        """PDUs whose prev events we have need no fetching."""
        pdu = event(2, [self.known.event_id])
        done = await self.gaps.complete(self.room, "remote.example", [pdu])
        self.assertEqual((done.pdus, done.outliers, done.state_before), ([pdu], [], {}))
        self.assertEqual(self.remote.calls, [])

    async def test_missing_events_bounded_and_checked(self):
        """Of a /get_missing_events answer only the first `limit` events are used, and
        badly signed events or events of other rooms are dropped."""
        chain = [self.known]
        for n in range(2, 16):
            chain.append(event(n, [chain[-1].event_id]))
        tip = event(16, [chain[-1].event_id])
        forged = event(3, [self.known.event_id], key=FORGER)
        elsewhere = event(3, [self.known.event_id], room="!other:here.example")
        answer = [d(e) for e in chain[1:]]
        self.remote.answers[("POST", f"/_matrix/federation/v1/get_missing_events/{ROOM_Q}")] \
            = {"events": [d(forged), d(elsewhere)] + answer}
        done = await self.gaps.complete(self.room, "remote.example", [tip])
        ids = {p.event_id for p in done.pdus}
        self.assertNotIn(forged.event_id, ids)
        self.assertNotIn(elsewhere.event_id, ids)
        self.assertEqual(len(ids), MISSING_EVENTS_LIMIT - 2 + 1)
        [(_, _, _, body)] = [c for c in self.remote.calls if c[0] == "POST"]
        self.assertEqual(body["earliest_events"], [self.known.event_id])
        self.assertEqual(body["latest_events"], [tip.event_id])

    async def test_gaps_bounded(self):
        """At most MAX_GAPS missing prev events get their state fetched per batch."""
        pdus = [event(10 + n, [f"$missing{n}"]) for n in range(MAX_GAPS + 2)]
        await self.gaps.complete(self.room, "remote.example", pdus)
        asked = [p for m, p in self.remote.paths() if m == "GET"]
        self.assertEqual(len(asked), MAX_GAPS)  # one /event each, all 404

    async def test_large_state_fetched_whole(self):
        """When more than MAX_SINGLE_FETCHES state events are unknown, /state is asked
        once instead of /event per event."""
        prev = event(5, [self.known.event_id])
        tip = event(6, [prev.event_id])
        state = [event(2, [self.known.event_id], state_key=f"k{n}")
                 for n in range(MAX_SINGLE_FETCHES + 1)]
        self.remote.answers[("GET", f"/_matrix/federation/v1/event/"
                                    f"{quote(prev.event_id, safe='')}")] = {"pdus": [d(prev)]}
        self.remote.answers[("GET", f"/_matrix/federation/v1/state_ids/{ROOM_Q}")] = {
            "pdu_ids": [s.event_id for s in state], "auth_chain_ids": []}
        self.remote.answers[("GET", f"/_matrix/federation/v1/state/{ROOM_Q}")] = {
            "pdus": [d(s) for s in state], "auth_chain": []}
        done = await self.gaps.complete(self.room, "remote.example", [tip])
        self.assertEqual({p.event_id for p in done.pdus}, {prev.event_id, tip.event_id})
        self.assertEqual({e.event_id for e in done.state_before[prev.event_id]},
                         {s.event_id for s in state})
        self.assertEqual({e.event_id for e in done.outliers}, {s.event_id for s in state})
        gets = [p for m, p in self.remote.paths() if m == "GET"]
        self.assertEqual(sum(p.startswith("/_matrix/federation/v1/event/") for p in gets), 1)

    async def test_incomplete_state_leaves_gap(self):
        """If a state event cannot be had, the missing prev is not placed at all."""
        prev = event(5, [self.known.event_id])
        tip = event(6, [prev.event_id])
        self.remote.answers[("GET", f"/_matrix/federation/v1/event/"
                                    f"{quote(prev.event_id, safe='')}")] = {"pdus": [d(prev)]}
        self.remote.answers[("GET", f"/_matrix/federation/v1/state_ids/{ROOM_Q}")] = {
            "pdu_ids": ["$unobtainable"], "auth_chain_ids": []}
        done = await self.gaps.complete(self.room, "remote.example", [tip])
        self.assertEqual(done.pdus, [tip])
        self.assertEqual(done.state_before, {})
