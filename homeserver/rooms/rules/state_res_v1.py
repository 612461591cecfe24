"""State resolution v1 (room version 1 only).

Pure: state maps of event IDs and a ``fetch_event`` callback in, a state map out.
Spec: rooms/v1 "State resolution". Where the spec is loose, this follows Synapse
(``synapse/state/v1.py``, read for its behaviour) so that v1 rooms converge:

* A key that some state sets lack is not a conflict: the sets that have it agree.
* Conflicted events are judged against the *unconflicted* state's auth events.
* "Ascending depth then descending sha1" for auth events, "highest depth and lowest
  sha1" for the others; sha1 is of the event ID, compared as hex.
* Power levels, then join rules, then memberships are resolved by walking their
  conflicting events in order and keeping the last one the auth rules accept on
  top of its predecessor; any other key takes the first event, in the second order,
  that the auth rules accept (the last one if none is).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Mapping, Sequence

from homeserver.errors import AuthError
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.rules.auth import auth_types_for_event, check_auth_rules
from homeserver.rooms.rules.power_levels import POWER_LEVELS_KEY

StateKey = tuple[str, str]
StateIds = Mapping[StateKey, str]


def _separate(state_sets: Sequence[StateIds]) -> tuple[dict[StateKey, str],
                                                       dict[StateKey, set[str]]]:
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    for state_set in state_sets:
        for key, event_id in state_set.items():
            if key in conflicted:
                conflicted[key].add(event_id)
            elif key not in unconflicted:
                unconflicted[key] = event_id
            elif unconflicted[key] != event_id:
                conflicted[key] = {unconflicted.pop(key), event_id}
    return unconflicted, conflicted


def _ordered(events: Iterable[PDU]) -> list[PDU]:
    """Highest depth first, then lowest sha1(event_id)."""
    return sorted(events, key=lambda e: (-e.depth,
                                         hashlib.sha1(e.event_id.encode()).hexdigest()))


def _auth_types(room_version: RoomVersion, event: PDU) -> set[StateKey]:
    return auth_types_for_event(room_version, event.type, event.sender, event.state_key,
                                event.content)


def _allowed(room_version: RoomVersion, event: PDU,
             auth_events: Mapping[StateKey, PDU]) -> bool:
    try:
        check_auth_rules(room_version, event, auth_events)
    except AuthError:
        return False
    return True


def _resolve_auth_events(room_version: RoomVersion, events: Sequence[PDU],
                         auth_events: Mapping[StateKey, PDU]) -> PDU:
    """Ascending depth (descending sha1): each accepted on top of the one before
    it; the walk stops at the first refused."""
    ascending = list(reversed(_ordered(events)))
    keys = set().union(*(_auth_types(room_version, e) for e in events))
    state = {k: auth_events[k] for k in keys if k in auth_events}
    previous = ascending[0]
    for event in ascending[1:]:
        state[previous.state_pair] = previous
        if not _allowed(room_version, event, state):
            return previous
        previous = event
    return previous


def _resolve_normal_events(room_version: RoomVersion, events: Sequence[PDU],
                           auth_events: Mapping[StateKey, PDU]) -> PDU:
    ordered = _ordered(events)
    for event in ordered:
        if _allowed(room_version, event, auth_events):
            return event
    return ordered[-1]


def resolve_v1(room_version: RoomVersion, state_sets: Sequence[StateIds],
               fetch_event: Callable[[str], PDU | None],
               is_rejected: Callable[[PDU], bool]) -> dict[StateKey, str]:
    """Resolve ``state_sets`` (see ``state_res.resolve_state_groups``)."""
    unconflicted, conflicted_ids = _separate(state_sets)
    conflicted: dict[StateKey, list[PDU]] = {}
    for key, event_ids in conflicted_ids.items():
        events = [e for e in (fetch_event(i) for i in sorted(event_ids)) if e is not None]
        if len(events) == 1:
            unconflicted[key] = events[0].event_id
        elif events:
            conflicted[key] = events
    if not conflicted:
        return unconflicted

    auth_events: dict[StateKey, PDU] = {}
    for events in conflicted.values():
        for event in events:
            for key in _auth_types(room_version, event):
                if key in auth_events or key not in unconflicted:
                    continue
                auth_event = fetch_event(unconflicted[key])
                if auth_event is not None and not is_rejected(auth_event):
                    auth_events[key] = auth_event

    resolved: dict[StateKey, PDU] = {}
    # power levels, then join rules, then memberships: each may change the next
    for wanted in (lambda k: k == POWER_LEVELS_KEY,
                   lambda k: k[0] == "m.room.join_rules",
                   lambda k: k[0] == "m.room.member"):
        for key in sorted(k for k in conflicted if wanted(k) and k not in resolved):
            resolved[key] = _resolve_auth_events(room_version, conflicted[key],
                                                 auth_events)
        auth_events.update(resolved)
    for key in sorted(k for k in conflicted if k not in resolved):
        resolved[key] = _resolve_normal_events(room_version, conflicted[key], auth_events)

    result = dict(unconflicted)
    result.update({key: event.event_id for key, event in resolved.items()})
    return result
