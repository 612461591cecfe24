"""Tests for homeserver.rooms.rules.state_res: state resolution v2 and v2.1 on small DAGs.

Each fixture names its events and their auth events explicitly, like the diagrams in
the spec and MSC4297. Scenarios run in room v11 (state res v2) and v12 (v2.1).
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.trial import unittest

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.rooms.rules.state_res import (
    AuthGraph, is_power_event, iterative_auth_checks, resolve_state_groups,
    split_conflicted)
from homeserver.rooms.rules.state_res_ordering import (
    EventSource, mainline_order, reverse_topological_power_order)

ALICE, BOB, CAROL, DAVE = "@alice:a.test", "@bob:b.test", "@carol:c.test", "@dave:d.test"
PL, JR, TOPIC = ("m.room.power_levels", ""), ("m.room.join_rules", ""), ("m.room.topic", "")


def member(user: str) -> tuple[str, str]:
    return ("m.room.member", user)


class Dag:
    """Named events of one room; ``$CREATE`` is implied in auth events as v12 requires."""

    def __init__(self, version: str) -> None:
        self.rv = KNOWN_ROOM_VERSIONS[version]
        self.events: dict[str, PDU] = {}
        self.room_id = "!CREATE" if self.rv.room_id_from_create_event else "!room:a.test"
        self._ts = itertools.count(1000, 10)
        content: dict[str, Any] = {"room_version": version}
        if not self.rv.implicit_room_creator:
            content["creator"] = ALICE
        body: dict[str, Any] = {"type": "m.room.create", "sender": ALICE, "state_key": "",
                                "content": content, "prev_events": [], "auth_events": [],
                                "origin_server_ts": 0}
        if not self.rv.room_id_from_create_event:
            body["room_id"] = self.room_id
        self.events["$CREATE"] = PDU(self.rv, body, "$CREATE")

    def add(self, name: str, type_: str, sender: str, content: dict, auth: list[str],
            state_key: str | None = "", ts: int | None = None) -> str:
        auth_ids = [f"${a}" for a in auth]
        if not self.rv.room_id_from_create_event:
            auth_ids.insert(0, "$CREATE")
        body: dict[str, Any] = {"type": type_, "sender": sender, "content": content,
                                "room_id": self.room_id, "auth_events": auth_ids,
                                "prev_events": [],
                                "origin_server_ts": next(self._ts) if ts is None else ts}
        if state_key is not None:
            body["state_key"] = state_key
        self.events[f"${name}"] = PDU(self.rv, body, f"${name}")
        return f"${name}"

    def levels(self, users: dict[str, int], **rest: Any) -> dict:
        """PL content; v12 creators may not be listed, so Alice is left out there."""
        if self.rv.privileged_creators:
            users = {u: v for u, v in users.items() if u != ALICE}
        return {"users": users, **rest}

    def member(self, name: str, sender: str, target: str, membership: str,
               auth: list[str], ts: int | None = None) -> str:
        return self.add(name, "m.room.member", sender, {"membership": membership}, auth,
                        target, ts)

    def state(self, *names: str) -> dict[tuple[str, str], str]:
        result = {}
        for name in ("CREATE",) + names:
            event = self.events[f"${name}"]
            result[event.state_pair] = event.event_id
        return result

    def resolve(self, *state_sets: dict) -> dict:
        return resolve_state_groups(self.rv, state_sets, self.events.get)


def base_room(version: str, bob: int = 50, carol: bool = True) -> Dag:
    """Alice creates; PL gives Alice 100 and Bob ``bob``; public; Bob (and Carol) join."""
    dag = Dag(version)
    dag.member("IMA", ALICE, ALICE, "join", [])
    dag.add("IPL", "m.room.power_levels", ALICE, dag.levels({ALICE: 100, BOB: bob}),
            ["IMA"])
    dag.add("IJR", "m.room.join_rules", ALICE, {"join_rule": "public"}, ["IMA", "IPL"])
    dag.member("IMB", BOB, BOB, "join", ["IPL", "IJR"])
    if carol:
        dag.member("IMC", CAROL, CAROL, "join", ["IPL", "IJR"])
    return dag


BASE = ("IMA", "IPL", "IJR", "IMB", "IMC")


class _ScenarioTests:
    VERSION = "11"

    def test_ban_races_demotion(self) -> None:
        """Alice demoting Bob wins over Bob's concurrent ban of Carol."""
        dag = base_room(self.VERSION)
        dag.add("PA", "m.room.power_levels", ALICE, dag.levels({ALICE: 100, BOB: 0}),
                ["IMA", "IPL"])
        dag.member("MB", BOB, CAROL, "ban", ["IMB", "IPL", "IMC"])
        resolved = dag.resolve(dag.state(*BASE, "PA"), dag.state(*BASE, "MB"))
        self.assertEqual(resolved[PL], "$PA")
        self.assertEqual(resolved[member(CAROL)], "$IMC")

    def test_ban_stands_without_demotion(self) -> None:
        """If the concurrent PL change leaves Bob's power, his ban stands."""
        dag = base_room(self.VERSION)
        dag.add("PA", "m.room.power_levels", ALICE,
                dag.levels({ALICE: 100, BOB: 50, DAVE: 10}), ["IMA", "IPL"])
        dag.member("MB", BOB, CAROL, "ban", ["IMB", "IPL", "IMC"])
        resolved = dag.resolve(dag.state(*BASE, "PA"), dag.state(*BASE, "MB"))
        self.assertEqual((resolved[PL], resolved[member(CAROL)]), ("$PA", "$MB"))

    def test_topic_reset_after_demotion(self) -> None:
        """Bob's topics, legal when sent, are undone when his demotion is resolved in."""
        dag = base_room(self.VERSION, bob=0, carol=False)
        dag.add("T1", "m.room.topic", ALICE, {"topic": "1"}, ["IMA", "IPL"])
        dag.add("PA1", "m.room.power_levels", ALICE, dag.levels({ALICE: 100, BOB: 50}),
                ["IMA", "IPL"])
        dag.add("T2", "m.room.topic", BOB, {"topic": "2"}, ["IMB", "PA1"])
        dag.add("PA2", "m.room.power_levels", ALICE, dag.levels({ALICE: 100, BOB: 0}),
                ["IMA", "PA1"])
        dag.add("T3", "m.room.topic", BOB, {"topic": "3"}, ["IMB", "PA1"])
        base = BASE[:4]
        resolved = dag.resolve(dag.state(*base, "T2", "PA2"), dag.state(*base, "T3", "PA1"))
        self.assertEqual(resolved[PL], "$PA2")
        self.assertNotIn(TOPIC, resolved)

    def test_latest_topic_on_mainline_wins(self) -> None:
        """A topic authorised by a later power levels event wins, whatever its timestamp."""
        dag = base_room(self.VERSION, carol=False)
        dag.add("PA1", "m.room.power_levels", ALICE, dag.levels({ALICE: 100, BOB: 50}),
                ["IMA", "IPL"])
        dag.add("PA2", "m.room.power_levels", ALICE,
                dag.levels({ALICE: 100, BOB: 50, CAROL: 5}), ["IMA", "PA1"])
        dag.add("TB", "m.room.topic", ALICE, {"topic": "newer PL, early ts"}, ["IMA", "PA2"],
                ts=1)
        dag.add("TA", "m.room.topic", BOB, {"topic": "older PL, late ts"}, ["IMB", "PA1"],
                ts=99999)
        base = BASE[:4]
        resolved = dag.resolve(dag.state(*base, "PA2", "TB"), dag.state(*base, "PA1", "TA"))
        self.assertEqual((resolved[PL], resolved[TOPIC]), ("$PA2", "$TB"))

    def test_same_mainline_position_later_timestamp_wins(self) -> None:
        """Topics on the same power levels are applied by origin_server_ts."""
        dag = base_room(self.VERSION, carol=False)
        dag.add("TX", "m.room.topic", ALICE, {"topic": "x"}, ["IMA", "IPL"], ts=5000)
        dag.add("TY", "m.room.topic", BOB, {"topic": "y"}, ["IMB", "IPL"], ts=4000)
        base = BASE[:4]
        resolved = dag.resolve(dag.state(*base, "TX"), dag.state(*base, "TY"))
        self.assertEqual(resolved[TOPIC], "$TX")

    def test_join_rules_change_races_join(self) -> None:
        """Carol's join under "public" loses to Alice's concurrent switch to "invite"."""
        dag = base_room(self.VERSION, carol=False)
        dag.add("JR2", "m.room.join_rules", ALICE, {"join_rule": "invite"}, ["IMA", "IPL"])
        dag.member("JC", CAROL, CAROL, "join", ["IPL", "IJR"])
        base = BASE[:4]
        resolved = dag.resolve(dag.state(*base, "JR2"), dag.state(*base, "JC"))
        self.assertEqual(resolved[JR], "$JR2")
        self.assertNotIn(member(CAROL), resolved)

    def test_invited_join_survives_join_rules_change(self) -> None:
        """A join backed by an invite survives a concurrent switch to "invite"."""
        dag = base_room(self.VERSION, carol=False)
        dag.member("INV", ALICE, CAROL, "invite", ["IMA", "IPL", "IJR"])
        dag.add("JR2", "m.room.join_rules", ALICE, {"join_rule": "invite"}, ["IMA", "IPL"])
        dag.member("JC", CAROL, CAROL, "join", ["IPL", "IJR", "INV"])
        base = BASE[:4]
        resolved = dag.resolve(dag.state(*base, "INV", "JR2"), dag.state(*base, "JC"))
        self.assertEqual((resolved[JR], resolved[member(CAROL)]), ("$JR2", "$JC"))

    def test_kick_and_power_war(self) -> None:
        """Two moderators kicking each other: the higher-powered one wins."""
        dag = base_room(self.VERSION)
        dag.add("PC", "m.room.power_levels", ALICE,
                dag.levels({ALICE: 100, BOB: 50, CAROL: 60}), ["IMA", "IPL"])
        dag.member("KB", CAROL, BOB, "leave", ["IMC", "PC", "IMB"])
        dag.member("KC", BOB, CAROL, "leave", ["IMB", "IPL", "IMC"])
        s1 = dag.state(*BASE, "PC", "KB")
        s2 = dag.state(*BASE, "KC")
        resolved = dag.resolve(s1, s2)
        self.assertEqual(resolved[PL], "$PC")
        self.assertEqual(resolved[member(BOB)], "$KB")
        self.assertEqual(resolved[member(CAROL)], "$IMC")

    def test_unfetchable_events_are_ignored(self) -> None:
        """Conflicted events the store cannot return are left out."""
        dag = base_room(self.VERSION, carol=False)
        dag.add("TX", "m.room.topic", ALICE, {"topic": "x"}, ["IMA", "IPL"])
        base = BASE[:4]
        s1, s2 = dag.state(*base, "TX"), dag.state(*base)
        s2[TOPIC] = "$MISSING"
        self.assertEqual(dag.resolve(s1, s2)[TOPIC], "$TX")
        s1[TOPIC] = "$GONE"
        self.assertNotIn(TOPIC, dag.resolve(s1, s2))

    def test_malformed_events_are_ignored(self) -> None:
        """Conflicted events with nonsense content fail auth instead of breaking resolution."""
        dag = base_room(self.VERSION, carol=False)
        dag.add("BADPL", "m.room.power_levels", ALICE, {"users": ["x"], "ban": []},
                ["IMA", "IPL"])
        dag.add("BADJR", "m.room.join_rules", ALICE, {"join_rule": 7}, ["IMA", "IPL"])
        dag.add("BADM", "m.room.member", CAROL, {"membership": {"no": 1}}, ["IPL", "IJR"],
                CAROL)
        dag.add("BADC", "m.room.topic", ALICE, ["not", "an", "object"], ["IMA", "IPL"])
        base = BASE[:4]
        resolved = dag.resolve(dag.state(*base, "BADPL", "BADJR", "BADC"),
                               dag.state(*base, "BADM"))
        # the rules don't judge join_rules content: BADJR applies (and admits nobody)
        self.assertEqual((resolved[PL], resolved[JR]), ("$IPL", "$BADJR"))
        self.assertNotIn(member(CAROL), resolved)
        self.assertNotIn(TOPIC, resolved)

    def test_input_order_does_not_matter(self) -> None:
        """Every permutation of the state sets resolves alike."""
        dag = base_room(self.VERSION)
        dag.add("PA", "m.room.power_levels", ALICE, dag.levels({ALICE: 100, BOB: 0}),
                ["IMA", "IPL"])
        dag.member("MB", BOB, CAROL, "ban", ["IMB", "IPL", "IMC"])
        dag.add("TX", "m.room.topic", BOB, {"topic": "x"}, ["IMB", "IPL"])
        sets = [dag.state(*BASE, "PA"), dag.state(*BASE, "MB"), dag.state(*BASE, "TX")]
        results = {tuple(sorted(dag.resolve(*p).items()))
                   for p in itertools.permutations(sets)}
        self.assertEqual(len(results), 1)

    def test_trivial_inputs(self) -> None:
        """No sets gives {}; one set or identical sets give that state back."""
        dag = base_room(self.VERSION)
        state = dag.state(*BASE)
        self.assertEqual(dag.resolve(), {})
        self.assertEqual(dag.resolve(state), state)
        self.assertEqual(dag.resolve(state, dict(state)), state)


class StateResV2ScenarioTests(_ScenarioTests, unittest.TestCase):
    VERSION = "11"


class StateResV2Room3ScenarioTests(_ScenarioTests, unittest.TestCase):
    VERSION = "3"


class StateResV21ScenarioTests(_ScenarioTests, unittest.TestCase):
    VERSION = "12"


class V21SpecificTests(unittest.TestCase):
    """MSC4297's two changes, each shown against v2 on the same DAG."""

    def _problem_a(self, version: str) -> dict:
        """Both forks agree Alice (who set the join rules) left; one has stale rules."""
        dag = Dag(version)
        dag.member("IMA", ALICE, ALICE, "join", [])
        dag.add("IPL", "m.room.power_levels", ALICE,
                dag.levels({ALICE: 100, BOB: 100}), ["IMA"])
        dag.add("JR1", "m.room.join_rules", ALICE, {"join_rule": "public"}, ["IMA", "IPL"])
        dag.member("IMB", BOB, BOB, "join", ["IPL", "JR1"])
        dag.add("JR2", "m.room.join_rules", ALICE, {"join_rule": "invite"}, ["IMA", "IPL"])
        dag.member("LA", ALICE, ALICE, "leave", ["IMA", "IPL"])
        common = ("IPL", "IMB", "LA")
        return dag.resolve(dag.state(*common, "JR2"), dag.state(*common, "JR1"))

    def test_problem_a_v2_resets_join_rules(self) -> None:
        """v2 replays the join rules on Alice's unconflicted leave: both fail."""
        self.assertNotIn(JR, self._problem_a("11"))

    def test_problem_a_v21_replays_on_auth_history(self) -> None:
        """v2.1 starts from an empty state, so the newer join rules survive."""
        self.assertEqual(self._problem_a("12")[JR], "$JR2")

    def _problem_b(self, version: str) -> dict:
        """Alice promotes Bob, Bob promotes Carol; one fork has the oldest PL as state."""
        dag = Dag(version)
        dag.member("IMA", ALICE, ALICE, "join", [])
        dag.add("PL1", "m.room.power_levels", ALICE, dag.levels({ALICE: 100}), ["IMA"])
        dag.add("IJR", "m.room.join_rules", ALICE, {"join_rule": "public"}, ["IMA", "PL1"])
        dag.member("IMB", BOB, BOB, "join", ["PL1", "IJR"])
        dag.member("IMC", CAROL, CAROL, "join", ["PL1", "IJR"])
        dag.add("PL2", "m.room.power_levels", ALICE,
                dag.levels({ALICE: 100, BOB: 100}), ["IMA", "PL1"])
        dag.add("PL3", "m.room.power_levels", BOB,
                dag.levels({ALICE: 100, BOB: 100, CAROL: 100}), ["IMB", "PL2"])
        # Dave joined after PL3: both forks' auth chains reach PL2 and PL3
        dag.member("IMD", DAVE, DAVE, "join", ["PL3", "IJR"])
        common = ("IMA", "IJR", "IMB", "IMC", "IMD")
        return dag.resolve(dag.state(*common, "PL3"), dag.state(*common, "PL1"))

    def test_problem_b_v2_resets_power_levels(self) -> None:
        """v2 misses PL2 (in both auth chains), so Bob's PL3 fails: PL resets to PL1."""
        self.assertEqual(self._problem_b("11")[PL], "$PL1")

    def test_problem_b_v21_includes_conflicted_subgraph(self) -> None:
        """v2.1 replays PL2, on the auth path between PL1 and PL3: PL3 stands."""
        self.assertEqual(self._problem_b("12")[PL], "$PL3")


class AuthGraphTests(unittest.TestCase):
    def _graph(self) -> tuple[Dag, dict, dict]:
        dag = base_room("11")
        dag.add("PA", "m.room.power_levels", ALICE, dag.levels({ALICE: 100, BOB: 0}),
                ["IMA", "IPL"])
        dag.add("TB", "m.room.topic", ALICE, {"topic": "b"}, ["IMA", "PA"])
        dag.member("MB", BOB, CAROL, "ban", ["IMB", "IPL", "IMC"])
        return dag, dag.state(*BASE, "PA", "TB"), dag.state(*BASE, "MB")

    def test_auth_difference(self) -> None:
        """Events in only one side's auth chains, its own state included, differ."""
        dag, s1, s2 = self._graph()
        source = EventSource(dag.rv, dag.events.get)
        graph = AuthGraph([e for s in (s1, s2) for e in s.values()], source)
        self.assertEqual(graph.auth_difference([s1, s2]), {"$PA", "$TB", "$MB"})
        self.assertEqual(graph.auth_difference([s1, s1]), set())

    def test_split_conflicted(self) -> None:
        """Keys differing or missing in some set are conflicted."""
        unconflicted, conflicted = split_conflicted(
            [{("a", ""): "$1", ("b", ""): "$2", ("c", ""): "$3"},
             {("a", ""): "$1", ("b", ""): "$4"}])
        self.assertEqual(unconflicted, {("a", ""): "$1"})
        self.assertEqual(conflicted, {"$2", "$3", "$4"})

    def test_conflicted_subgraph(self) -> None:
        """Only events on auth paths between conflicted events are in the subgraph."""
        dag = Dag("12")
        dag.member("IMA", ALICE, ALICE, "join", [])
        dag.add("P1", "m.room.power_levels", ALICE, {"users": {}}, ["IMA"])
        dag.add("P2", "m.room.power_levels", ALICE, {"users": {BOB: 1}}, ["IMA", "P1"])
        dag.add("P3", "m.room.power_levels", ALICE, {"users": {BOB: 2}}, ["IMA", "P2"])
        dag.add("T", "m.room.topic", ALICE, {"topic": "t"}, ["IMA", "P3"])
        source = EventSource(dag.rv, dag.events.get)
        graph = AuthGraph(["$T", "$P1"], source)
        self.assertEqual(graph.conflicted_subgraph({"$P1", "$P3"}), {"$P1", "$P2", "$P3"})
        self.assertEqual(graph.conflicted_subgraph({"$P2"}), {"$P2"})
        self.assertEqual(graph.conflicted_subgraph({"$T", "$IMA"}),
                         {"$T", "$P3", "$P2", "$P1", "$IMA"})


class OrderingTests(unittest.TestCase):
    def test_power_order_prefers_power_then_ts_then_id(self) -> None:
        """Ready events sort by sender power (desc), origin_server_ts, event_id."""
        dag = base_room("11", bob=50)
        dag.add("X", "m.room.join_rules", BOB, {"join_rule": "public"}, ["IMB", "IPL"], ts=1)
        dag.add("Y", "m.room.join_rules", ALICE, {"join_rule": "public"}, ["IMA", "IPL"],
                ts=9)
        dag.add("Z2", "m.room.join_rules", BOB, {"join_rule": "public"}, ["IMB", "IPL"],
                ts=1)
        dag.add("Z1", "m.room.join_rules", BOB, {"join_rule": "public"}, ["IMB", "IPL", "Y"],
                ts=0)
        source = EventSource(dag.rv, dag.events.get)
        order = reverse_topological_power_order(["$X", "$Y", "$Z2", "$Z1"], source)
        # Z1 has the smallest ts but cites Y, so it must wait for it
        self.assertEqual(order, ["$Y", "$Z1", "$X", "$Z2"])

    def test_power_order_respects_auth_edges(self) -> None:
        """An event never precedes its auth events, whatever its power."""
        dag = base_room("11")
        source = EventSource(dag.rv, dag.events.get)
        order = reverse_topological_power_order(["$IMB", "$IJR", "$IPL", "$IMA"], source)
        self.assertEqual(order, ["$IMA", "$IPL", "$IJR", "$IMB"])

    def test_creators_sort_first_in_v12(self) -> None:
        """v12 creators outrank a user at the maximum integer level."""
        dag = base_room("12")
        dag.add("PA", "m.room.power_levels", ALICE, {"users": {BOB: 2 ** 53 - 1}},
                ["IMA", "IPL"])
        dag.add("X", "m.room.join_rules", BOB, {"join_rule": "invite"}, ["IMB", "PA"], ts=1)
        dag.add("Y", "m.room.join_rules", ALICE, {"join_rule": "knock"}, ["IMA", "PA"], ts=2)
        source = EventSource(dag.rv, dag.events.get)
        self.assertEqual(reverse_topological_power_order(["$X", "$Y"], source), ["$Y", "$X"])

    def test_mainline_positions(self) -> None:
        """Events on older power levels come first; no PL at all comes before those."""
        dag = base_room("11", carol=False)
        dag.add("PA1", "m.room.power_levels", ALICE, dag.levels({ALICE: 100}), ["IMA", "IPL"])
        dag.add("PA2", "m.room.power_levels", ALICE, dag.levels({ALICE: 100}), ["IMA", "PA1"])
        dag.add("PF", "m.room.power_levels", ALICE, dag.levels({ALICE: 100, BOB: 1}),
                ["IMA", "PA1"])   # a fork off the mainline
        dag.add("E0", "m.room.topic", ALICE, {}, ["IMA", "PA2"], ts=1)
        dag.add("E1", "m.room.topic", ALICE, {}, ["IMA", "PA1"], ts=2)
        dag.add("E1b", "m.room.topic", ALICE, {}, ["IMA", "PF"], ts=3)
        dag.add("E2", "m.room.topic", ALICE, {}, ["IMA", "IPL"], ts=4)
        dag.add("EN", "m.room.topic", ALICE, {}, ["IMA"], ts=5)
        source = EventSource(dag.rv, dag.events.get)
        order = mainline_order(["$E0", "$E1", "$E1b", "$E2", "$EN"], "$PA2", source)
        self.assertEqual(order, ["$EN", "$E2", "$E1", "$E1b", "$E0"])

    def test_power_events(self) -> None:
        """Power events: PL, join rules, create, kicks and bans; not self-leaves."""
        dag = base_room("11")
        dag.member("SELF", BOB, BOB, "leave", ["IMB", "IPL"])
        dag.member("KICK", ALICE, BOB, "leave", ["IMA", "IMB", "IPL"])
        dag.add("T", "m.room.topic", ALICE, {}, ["IMA", "IPL"])
        power = {e for e in ("IPL", "IJR", "CREATE", "SELF", "KICK", "T", "IMB")
                 if is_power_event(dag.events[f"${e}"])}
        self.assertEqual(power, {"IPL", "IJR", "CREATE", "KICK"})


class IterativeAuthTests(unittest.TestCase):
    def test_rejected_auth_events_are_not_used(self) -> None:
        """An event whose power came from a rejected auth event is not applied."""
        dag = base_room("12", bob=0, carol=False)
        dag.add("BAD", "m.room.power_levels", ALICE, {"users": {BOB: 100}}, ["IMA", "IPL"])
        dag.add("T", "m.room.topic", BOB, {"topic": "x"}, ["IMB", "BAD"])
        source = EventSource(dag.rv, dag.events.get)
        state = iterative_auth_checks(dag.rv, ["$T"], {}, source, lambda e: False)
        self.assertEqual(state, {TOPIC: "$T"})
        rejected = iterative_auth_checks(dag.rv, ["$T"], {}, source,
                                         lambda e: e.event_id == "$BAD")
        self.assertEqual(rejected, {})

    def test_state_overrides_own_auth_events(self) -> None:
        """The partial state, not the event's own auth events, decides."""
        dag = base_room("12", bob=100, carol=False)
        dag.add("DEMOTE", "m.room.power_levels", ALICE, {"users": {BOB: 0}}, ["IMA", "IPL"])
        dag.add("T", "m.room.topic", BOB, {"topic": "x"}, ["IMB", "IPL"])
        source = EventSource(dag.rv, dag.events.get)
        self.assertEqual(iterative_auth_checks(dag.rv, ["$T"], {PL: "$DEMOTE"}, source,
                                               lambda e: False), {PL: "$DEMOTE"})
