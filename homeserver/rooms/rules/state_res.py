"""State resolution v2 (room versions 2-11) and v2.1 (room version 12); room version
1's algorithm is in :mod:`homeserver.rooms.rules.state_res_v1`.

Pure: state maps of event IDs and a ``fetch_event`` callback in, a state map out.
Spec: rooms/v2 "State resolution" (fragment v2-state-res) and rooms/v12 "State
resolution" (MSC4297: the conflicted state subgraph joins the full conflicted set,
and the first iterative auth checks start from an empty state map). Each step below
is commented with its place in the spec's "Algorithm".

Interpretations, shared with Synapse and ruma so that rooms converge across servers:

* The auth chain of a state set includes the set's own events (an unconflicted event
  is then never part of the auth difference).
* Power events include the create event, and only the ``""`` state key of
  power_levels/join_rules (``is_power_event``).
* Step 1 enlarges X with auth ancestors of its power events by walking auth edges
  *within the full conflicted set*; the same edges order X.
* An event that was rejected before is re-checked like any other ("Rejected events"
  says they are handled as usual); rejected events are never used as *auth* events.

Events ``fetch_event`` cannot return are left out wherever they are referenced.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

from homeserver.errors import AuthError
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion, StateResAlgorithm
from homeserver.rooms.rules.auth import auth_types_for_event, check_auth_rules
from homeserver.rooms.rules.power_levels import POWER_LEVELS_KEY
from homeserver.rooms.rules.state_res_ordering import (
    EventSource, mainline_order, reverse_topological_power_order)
from homeserver.rooms.rules.state_res_v1 import resolve_v1

StateKey = tuple[str, str]
StateIds = Mapping[StateKey, str]


def _default_is_rejected(event: PDU) -> bool:
    return bool(event.internal_metadata.get("rejected"))


def is_power_event(event: PDU) -> bool:
    """Spec "Power events": events that might take away someone's ability to act.

    power_levels, join_rules, and memberships ``leave``/``ban`` sent about someone
    else (kicks and bans). As Synapse and ruma do, the create event counts too and
    power_levels/join_rules count only with state key ``""``.
    """
    if not event.is_state():
        return False
    if event.state_key == "" and event.type in (
            "m.room.power_levels", "m.room.join_rules", "m.room.create"):
        return True
    return event.type == "m.room.member" and event.membership in ("leave", "ban") \
        and event.sender != event.state_key


def split_conflicted(state_sets: Sequence[StateIds]) -> tuple[dict[StateKey, str],
                                                               set[str]]:
    """Spec "Unconflicted state map and conflicted state set".

    A key present in every set with the same event is unconflicted; otherwise each
    event any set has for it is conflicted (a key missing from some set conflicts).
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: set[str] = set()
    keys = set().union(*(s.keys() for s in state_sets))
    for key in keys:
        values = {s.get(key) for s in state_sets}
        if len(values) == 1 and None not in values:
            unconflicted[key] = values.pop()
        else:
            conflicted.update(v for v in values if v is not None)
    return unconflicted, conflicted


class AuthGraph:
    """The auth DAG above the input state sets, in an order that visits ancestors first.

    Holds every fetchable event reachable from the state sets' events by auth edges
    (themselves included): the union of the sets' auth chains.
    """

    def __init__(self, roots: Iterable[str], source: EventSource) -> None:
        self.source = source
        self.auth: dict[str, tuple[str, ...]] = {}
        #: post-order: each event comes after all its auth events
        self.ancestors_first: list[str] = []
        for root in roots:
            if root in self.auth or source.get(root) is None:
                continue
            self._visit(root)

    def _visit(self, root: str) -> None:
        # iterative DFS: real rooms have auth chains far deeper than Python's stack
        self.auth[root] = self._fetchable_auth(root)
        stack = [(root, iter(self.auth[root]))]
        while stack:
            event_id, todo = stack[-1]
            for auth_id in todo:
                if auth_id not in self.auth:
                    self.auth[auth_id] = self._fetchable_auth(auth_id)
                    stack.append((auth_id, iter(self.auth[auth_id])))
                    break
            else:
                stack.pop()
                self.ancestors_first.append(event_id)

    def _fetchable_auth(self, event_id: str) -> tuple[str, ...]:
        event = self.source.get(event_id)
        return tuple(a for a in self.source.auth_ids(event) if self.source.get(a) is not None)

    def auth_difference(self, state_sets: Sequence[StateIds]) -> set[str]:
        """Spec "Auth difference": events in some but not all sets' full auth chains."""
        reached_by: dict[str, int] = dict.fromkeys(self.auth, 0)   # bit i: set i reaches
        for i, state_set in enumerate(state_sets):
            for event_id in state_set.values():
                if event_id in reached_by:
                    reached_by[event_id] |= 1 << i
        for event_id in reversed(self.ancestors_first):    # descendants before ancestors
            mask = reached_by[event_id]
            for auth_id in self.auth[event_id]:
                reached_by[auth_id] |= mask
        everyone = (1 << len(state_sets)) - 1
        return {e for e, mask in reached_by.items() if mask and mask != everyone}

    def conflicted_subgraph(self, conflicted: set[str]) -> set[str]:
        """Spec v12 "Conflicted state subgraph" (MSC4297).

        The events on auth paths between two conflicted events (endpoints included):
        those reachable from a conflicted event that can themselves reach one.
        """
        below_conflicted = {e for e in conflicted if e in self.auth}
        for event_id in reversed(self.ancestors_first):
            if event_id in below_conflicted:
                below_conflicted.update(self.auth[event_id])
        reaches_conflicted: set[str] = set()
        for event_id in self.ancestors_first:
            if event_id in conflicted or any(a in reaches_conflicted
                                             for a in self.auth[event_id]):
                reaches_conflicted.add(event_id)
        return below_conflicted & reaches_conflicted


def _power_events_and_their_auth(full_conflicted: set[str], source: EventSource) -> set[str]:
    """Algorithm step 1: power events of the full conflicted set, plus their auth
    ancestors that are in the full conflicted set (walking through it)."""
    selected = {e for e in full_conflicted if is_power_event(source.get(e))}
    todo = list(selected)
    while todo:
        event = source.get(todo.pop())
        for auth_id in source.auth_ids(event):
            if auth_id in full_conflicted and auth_id not in selected:
                selected.add(auth_id)
                todo.append(auth_id)
    return selected


def iterative_auth_checks(room_version: RoomVersion, event_ids: Iterable[str],
                          base_state: StateIds, source: EventSource,
                          is_rejected: Callable[[PDU], bool]) -> dict[StateKey, str]:
    """Spec "Iterative auth checks": apply each event in turn if the rules allow it.

    An event is judged by the partially resolved state; keys the rules need that the
    state lacks come from the event's own auth events. Rejected events never serve as
    auth events.
    """
    state = dict(base_state)
    for event_id in event_ids:
        event = source.get(event_id)
        if event is None or not event.is_state():
            continue
        auth_events = {a.state_pair: a for a in source.auth_events(event)
                       if a.is_state() and not is_rejected(a)}
        for key in auth_types_for_event(room_version, event.type, event.sender,
                                        event.state_key, event.content):
            current_id = state.get(key)
            current = source.get(current_id) if current_id is not None else None
            if current is not None and not is_rejected(current):
                auth_events[key] = current
        try:
            check_auth_rules(room_version, event, auth_events)
        except AuthError:
            continue
        state[event.state_pair] = event_id
    return state


def resolve_state_groups(room_version: RoomVersion, state_sets: Sequence[StateIds],
                         fetch_event: Callable[[str], PDU | None], *,
                         is_rejected: Callable[[PDU], bool] = _default_is_rejected
                         ) -> dict[StateKey, str]:
    """Resolve ``state_sets`` into one state map, by the room version's algorithm.

    ``fetch_event`` returns an event of this room (including rejected ones), or None
    if it is unknown. ``is_rejected`` says whether an event was rejected (default:
    ``internal_metadata["rejected"]`` is set). The result does not depend on the
    order of ``state_sets`` or of their items.
    """
    if not state_sets:
        return {}
    if room_version.state_res == StateResAlgorithm.V1:
        return resolve_v1(room_version, state_sets, fetch_event, is_rejected)
    unconflicted, conflicted_ids = split_conflicted(state_sets)
    if not conflicted_ids:
        return unconflicted
    source = EventSource(room_version, fetch_event)
    conflicted = {e for e in conflicted_ids if source.get(e) is not None}
    v2_1 = room_version.state_res == StateResAlgorithm.V2_1

    # Full conflicted set: conflicted state set + auth difference (+ v2.1: subgraph).
    graph = AuthGraph((e for s in state_sets for e in s.values()), source)
    full_conflicted = conflicted | graph.auth_difference(state_sets)
    if v2_1:
        full_conflicted |= graph.conflicted_subgraph(conflicted)

    # Step 1: power events and their conflicted auth ancestors, in reverse
    # topological power order.
    power_set = _power_events_and_their_auth(full_conflicted, source)
    power_order = reverse_topological_power_order(power_set, source)

    # Step 2: iterative auth checks from the unconflicted state (v2) or, so that
    # events replay on their own auth histories, from an empty state (v2.1).
    base = {} if v2_1 else unconflicted
    partial = iterative_auth_checks(room_version, power_order, base, source, is_rejected)

    # Step 3: the other events, by mainline ordering on the resolved power levels.
    others = mainline_order(full_conflicted - power_set, partial.get(POWER_LEVELS_KEY),
                            source)

    # Step 4: iterative auth checks on the partially resolved state.
    resolved = iterative_auth_checks(room_version, others, partial, source, is_rejected)

    # Step 5: the unconflicted state map wins wherever it has the key.
    resolved.update(unconflicted)
    return resolved
