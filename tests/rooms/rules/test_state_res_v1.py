"""Tests for homeserver.rooms.rules.state_res_v1: room version 1's state resolution, on
small hand-made rooms (events in the v1 format, with the depths the algorithm uses)."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from twisted.trial import unittest

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.rooms.rules.state_res import resolve_state_groups

ALICE, BOB = "@alice:a.test", "@bob:b.test"
PL, TOPIC = ("m.room.power_levels", ""), ("m.room.topic", "")
V1 = KNOWN_ROOM_VERSIONS["1"]


class Room:
    def __init__(self) -> None:
        self.events: dict[str, PDU] = {}
        self._ts = itertools.count(1000)
        self.add("CREATE", "m.room.create", ALICE, {"creator": ALICE}, [], depth=1)
        self.add("MA", "m.room.member", ALICE, {"membership": "join"}, ["CREATE"],
                 state_key=ALICE, depth=2)
        self.add("PL", "m.room.power_levels", ALICE,
                 {"users": {ALICE: 100, BOB: 50}}, ["CREATE", "MA"], depth=3)
        self.add("JR", "m.room.join_rules", ALICE, {"join_rule": "public"},
                 ["CREATE", "MA", "PL"], depth=4)
        self.add("MB", "m.room.member", BOB, {"membership": "join"},
                 ["CREATE", "PL", "JR"], state_key=BOB, depth=5)

    def add(self, name: str, type_: str, sender: str, content: dict, auth: list[str], *,
            depth: int, state_key: str = "") -> str:
        event_id = f"${name}:a.test"
        body: dict[str, Any] = {
            "event_id": event_id, "type": type_, "sender": sender, "content": content,
            "room_id": "!room:a.test", "state_key": state_key, "depth": depth,
            "auth_events": [[f"${a}:a.test", {"sha256": "x"}] for a in auth],
            "prev_events": [], "origin_server_ts": next(self._ts)}
        self.events[event_id] = PDU(V1, body, event_id)
        return event_id

    def state(self, *names: str) -> dict:
        return {self.events[f"${n}:a.test"].state_pair: f"${n}:a.test"
                for n in ("CREATE", "MA", "PL", "JR", "MB", *names)}

    def resolve(self, *state_sets: dict) -> dict:
        return resolve_state_groups(V1, state_sets, self.events.get)


class StateResV1Tests(unittest.TestCase):
    def test_power_levels_in_ascending_depth_until_refused(self) -> None:
        """Alice's demotion of Bob (shallower) comes first; Bob's later change is then
        refused, so the demotion stands."""
        room = Room()
        room.add("PA", "m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 0}},
                 ["CREATE", "MA", "PL"], depth=6)
        room.add("PB", "m.room.power_levels", BOB,
                 {"users": {ALICE: 100, BOB: 50}, "users_default": 10},
                 ["CREATE", "MB", "PL"], depth=7)
        resolved = room.resolve(room.state("PA"), room.state("PB"))
        self.assertEqual(resolved[PL], "$PA:a.test")

    def test_power_levels_accepted_in_turn(self) -> None:
        """Without the demotion each change is accepted on top of the one before:
        the deepest wins."""
        room = Room()
        room.add("PA", "m.room.power_levels", ALICE,
                 {"users": {ALICE: 100, BOB: 50}, "kick": 40}, ["CREATE", "MA", "PL"],
                 depth=6)
        room.add("PB", "m.room.power_levels", BOB,
                 {"users": {ALICE: 100, BOB: 50}, "users_default": 10},
                 ["CREATE", "MB", "PL"], depth=7)
        resolved = room.resolve(room.state("PB"), room.state("PA"))
        self.assertEqual(resolved[PL], "$PB:a.test")

    def test_other_events_deepest_allowed_wins(self) -> None:
        """Topics: the deepest one the resolved state allows; Bob's deeper topic
        loses once his demotion is resolved in."""
        room = Room()
        room.add("T1", "m.room.topic", ALICE, {"topic": "1"}, ["CREATE", "MA", "PL"],
                 depth=6)
        room.add("T2", "m.room.topic", BOB, {"topic": "2"}, ["CREATE", "MB", "PL"],
                 depth=8)
        self.assertEqual(room.resolve(room.state("T1"), room.state("T2"))[TOPIC],
                         "$T2:a.test")
        room.add("PA", "m.room.power_levels", ALICE, {"users": {ALICE: 100, BOB: 0}},
                 ["CREATE", "MA", "PL"], depth=7)
        resolved = room.resolve(room.state("T1", "PA"), room.state("T2", "PA"))
        self.assertEqual(resolved[TOPIC], "$T1:a.test")

    def test_equal_depth_lowest_sha1_first(self) -> None:
        """At equal depth the lower sha1(event_id) is taken for ordinary state."""
        room = Room()
        a = room.add("TA", "m.room.topic", ALICE, {"topic": "a"}, ["CREATE", "MA", "PL"],
                     depth=6)
        b = room.add("TB", "m.room.topic", ALICE, {"topic": "b"}, ["CREATE", "MA", "PL"],
                     depth=6)
        expected = min((a, b), key=lambda e: hashlib.sha1(e.encode()).hexdigest())
        self.assertEqual(room.resolve(room.state("TA"), room.state("TB"))[TOPIC], expected)
        self.assertEqual(room.resolve(room.state("TB"), room.state("TA"))[TOPIC], expected)

    def test_key_missing_from_a_set_is_not_a_conflict(self) -> None:
        """A key only some sets have is taken from them (v1 is not v2 here)."""
        room = Room()
        room.add("T1", "m.room.topic", BOB, {"topic": "1"}, ["CREATE", "MB", "PL"], depth=6)
        resolved = room.resolve(room.state(), room.state("T1"))
        self.assertEqual(resolved[TOPIC], "$T1:a.test")
        self.assertEqual(room.resolve(room.state()), room.state())
