"""The two orderings of state resolution v2: reverse topological power and mainline.

Pure helpers of ``rooms.rules.state_res``. Spec: rooms/v2 "State resolution" (fragment
v2-state-res), Definitions: "Reverse topological power ordering", "Mainline ordering".
Events are reached through an ``EventSource`` so that both orderings share one cache.
"""

from __future__ import annotations

import heapq
from typing import Callable, Collection, Iterable

from homeserver.events.pdu import PDU
from homeserver.events.room_versions import RoomVersion
from homeserver.rooms.rules import power_levels
from homeserver.rooms.rules.power_levels import POWER_LEVELS_KEY


class EventSource:
    """Memoised ``fetch_event`` plus the auth edges state resolution walks.

    An event the callback cannot return is ``None`` here and is skipped wherever it
    is referenced: it cannot be ordered or authorised, and state resolution uses only
    events it holds (spec: "Rejected events": events failing their auth chain never
    reach resolution).
    """

    def __init__(self, room_version: RoomVersion,
                 fetch_event: Callable[[str], PDU | None]) -> None:
        self.room_version = room_version
        self._fetch = fetch_event
        self._events: dict[str, PDU | None] = {}
        self._auth_ids: dict[str, tuple[str, ...]] = {}

    def get(self, event_id: str) -> PDU | None:
        try:
            return self._events[event_id]
        except KeyError:
            event = self._events[event_id] = self._fetch(event_id)
            return event

    def auth_ids(self, event: PDU) -> tuple[str, ...]:
        """The event's auth event IDs, without repeats.

        v12 (MSC4291) events no longer cite the create event: it is implied by the
        room ID, so it is added here, as every auth lookup needs it. It adds nothing
        to the auth difference or the conflicted subgraph (every state set reaches
        it and it reaches no other event).
        """
        try:
            return self._auth_ids[event.event_id]
        except KeyError:
            pass
        ids = list(dict.fromkeys(event.auth_event_ids))
        if self.room_version.room_id_from_create_event and event.type != "m.room.create":
            room_id = event.room_id
            if isinstance(room_id, str) and room_id.startswith("!"):
                create_id = "$" + room_id[1:]
                if create_id not in ids:
                    ids.insert(0, create_id)
        result = self._auth_ids[event.event_id] = tuple(ids)
        return result

    def auth_events(self, event: PDU) -> list[PDU]:
        """The event's auth events that can be fetched."""
        found = (self.get(a) for a in self.auth_ids(event))
        return [a for a in found if a is not None]

    def power_levels_auth_event(self, event: PDU) -> PDU | None:
        """The ``m.room.power_levels`` event among the event's auth events, if any."""
        for auth_event in self.auth_events(event):
            if auth_event.is_state() and auth_event.state_pair == POWER_LEVELS_KEY:
                return auth_event
        return None


def _ts(event: PDU) -> int:
    # a malformed timestamp must not break the comparison (bool is an int subclass)
    ts = event.origin_server_ts
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else 0


def sender_power_level(event: PDU, source: EventSource) -> power_levels.PowerLevel:
    """The sender's power level "when looking at their respective auth_events".

    The auth events stand in for the room state, so the usual rules apply: the
    creator's 100 without a power_levels event (before v12), creators' infinite power
    in v12.
    """
    state = {a.state_pair: a for a in source.auth_events(event) if a.is_state()}
    return power_levels.user_power_level(event.sender, state)


def reverse_topological_power_order(event_ids: Collection[str],
                                    source: EventSource) -> list[str]:
    """Sort ``event_ids`` earliest first: auth events before the events citing them.

    Spec: "Reverse topological power ordering": Kahn's algorithm on the auth DAG
    restricted to ``event_ids``, taking at each step the smallest ready event by
    (higher sender power first, lower origin_server_ts, lower event_id).
    """
    members = set(event_ids)
    # edges inside the set only: e -> each of its auth events that is in the set
    pending_auth: dict[str, int] = {}
    cited_by: dict[str, list[str]] = {e: [] for e in members}
    for event_id in members:
        event = source.get(event_id)
        inside = [a for a in source.auth_ids(event) if a in members] if event else []
        pending_auth[event_id] = len(inside)
        for auth_id in inside:
            cited_by[auth_id].append(event_id)

    def key(event_id: str) -> tuple[power_levels.PowerLevel, int, str]:
        event = source.get(event_id)
        return (-sender_power_level(event, source), _ts(event), event_id)

    ready = [(key(e), e) for e, n in pending_auth.items() if n == 0]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        _, event_id = heapq.heappop(ready)
        ordered.append(event_id)
        for child in cited_by[event_id]:
            pending_auth[child] -= 1
            if pending_auth[child] == 0:
                heapq.heappush(ready, (key(child), child))
    # the auth graph is acyclic (event IDs are hashes of content naming the auth
    # events), so every event was emitted; a cycle would leave events out, not loop
    return ordered


def mainline_order(event_ids: Iterable[str], power_levels_id: str | None,
                   source: EventSource) -> list[str]:
    """Sort ``event_ids`` by mainline ordering based on the event ``power_levels_id``.

    Spec: "Mainline ordering". The mainline is P0 (the resolved power levels) and the
    chain of power levels events each one cites. An event's position is where the
    chain of power levels events *cited by* it (not itself) first meets the mainline:
    0 for P0, larger for older ones, infinity if never. Larger positions sort first,
    then lower origin_server_ts, then lower event_id.

    Internally the position is stored as a "depth" counted from the mainline's
    oldest end (oldest = 1, P0 = len(mainline), never = 0) so the sort is ascending.
    """
    mainline: list[str] = []
    current = source.get(power_levels_id) if power_levels_id is not None else None
    while current is not None and current.event_id not in mainline:
        mainline.append(current.event_id)
        current = source.power_levels_auth_event(current)
    depth_on_mainline = {pid: len(mainline) - i for i, pid in enumerate(mainline)}
    depth_memo: dict[str, int] = {}

    def depth_from(pl_event: PDU | None) -> int:
        """Depth of the first mainline event on the power levels chain from here."""
        walked: list[str] = []
        while pl_event is not None:
            pid = pl_event.event_id
            if pid in depth_on_mainline:
                result = depth_on_mainline[pid]
                break
            if pid in depth_memo:
                result = depth_memo[pid]
                break
            if pid in walked:       # defensive: a malformed cycle never meets it
                result = 0
                break
            walked.append(pid)
            pl_event = source.power_levels_auth_event(pl_event)
        else:
            result = 0
        for pid in walked:
            depth_memo[pid] = result
        return result

    def key(event_id: str) -> tuple[int, int, str]:
        event = source.get(event_id)
        return (depth_from(source.power_levels_auth_event(event)), _ts(event), event_id)

    return sorted(event_ids, key=key)
