"""A room's timeline slice for /sync: the newest events of a range of room seqs.

The range ``(lower, upper]`` comes from the global room stream: ``upper`` is the last
seq the response's token covers, so an event committed in the room DB but not yet
announced (or announced after the token was taken) is left for the next sync, which
will find it after its own ``since``. ``RoomActor.events_since`` has no upper bound,
so it is asked for enough extra events to cover whatever lies above ``upper``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from homeserver.events.pdu import PDU

#: with a type/sender filter, read at most this many events to find ``limit`` matches
MAX_SCAN = 2000


@dataclasses.dataclass(frozen=True)
class Timeline:
    events: list[PDU]
    #: events of the range were left out (the client sees a gap; spec: ``limited``)
    limited: bool
    #: event ID → the user's membership at it (``unsigned.membership``), as far as
    #: known while loading; the rest is worked out when serializing
    memberships: Mapping[str, str] | None = None


def seq_of(event: PDU) -> int:
    return event.internal_metadata.get("seq", 0)


async def load_timeline(actor: Any, lower: int, upper: int, limit: int,
                        wanted_event: Callable[[PDU], bool]) -> Timeline:
    """The newest ``limit`` events with ``lower < seq <= upper`` for which
    ``wanted_event`` holds (the client's filter), oldest first."""
    if upper <= lower or limit <= 0:
        return Timeline([], upper > lower)
    slack = max(0, await actor.last_seq() - upper)
    # one more than the limit: a full page then tells by itself whether it is limited
    wanted = limit + 1
    while True:
        raw, raw_limited = await actor.events_since(lower, wanted + slack)
        matching = [e for e in raw
                    if seq_of(e) <= upper and wanted_event(e)]
        if len(matching) > limit or not raw_limited or wanted >= MAX_SCAN:
            break
        # the filter left too few: look further back
        wanted = min(wanted * 4, MAX_SCAN)
    return Timeline(matching[-limit:], raw_limited or len(matching) > limit)
