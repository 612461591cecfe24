"""Unread notification counts for /sync's ``unread_notifications`` (spec: "Receiving
notifications": the number of notifying events after the user's read receipt).

Push rules are not implemented yet, so :func:`notification_of` applies the effect of
the spec's default rules on the events they concern (``.m.rule.message``,
``.m.rule.encrypted``, ``.m.rule.suppress_notices``, ``.m.rule.suppress_edits``,
``.m.rule.is_user_mention``, ``.m.rule.tombstone``, ``.m.rule.call``,
``.m.rule.invite_for_me``, reactions and member changes not notifying). The read
point is the later of the user's unthreaded ``m.read`` and ``m.read.private``
receipts (spec: the more "ahead" one counts), or their join if they never sent one.

Counts are kept per (room, user) and advanced incrementally: a later sync only looks
at events after the last one counted. At most :data:`MAX_SCAN` events are read for a
new read point; a room with more unread events than that reports a capped count.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Mapping

from homeserver.events.pdu import PDU

MAX_SCAN = 1000
_CACHE_SIZE = 20_000

_NOTIFYING_TYPES = frozenset({"m.room.message", "m.room.encrypted", "m.sticker",
                              "m.call.invite", "m.poll.start",
                              "org.matrix.msc3381.poll.start"})


def notification_of(event: PDU, user_id: str) -> tuple[bool, bool]:
    """(notifies, highlights) for ``user_id`` under the default push rules."""
    if event.sender == user_id:
        return False, False
    content: Mapping[str, Any] = event.content
    if event.is_state():
        if event.type == "m.room.tombstone" and event.state_key == "":
            return True, True
        if event.type == "m.room.member" and event.state_key == user_id and \
                content.get("membership") == "invite":
            return True, False
        return False, False
    if event.type not in _NOTIFYING_TYPES:
        return False, False
    relates = content.get("m.relates_to")
    if isinstance(relates, Mapping) and relates.get("rel_type") == "m.replace":
        return False, False
    if event.type == "m.room.message" and content.get("msgtype") == "m.notice":
        return False, False
    mentions = content.get("m.mentions")
    highlight = isinstance(mentions, Mapping) and isinstance(mentions.get("user_ids"), list) \
        and user_id in mentions["user_ids"]
    return True, highlight


@dataclasses.dataclass(frozen=True)
class _Counted:
    read_seq: int
    upto_seq: int
    notifications: int
    highlights: int


class UnreadCounter:
    def __init__(self) -> None:
        self._cache: collections.OrderedDict[tuple[str, str], _Counted] = \
            collections.OrderedDict()

    async def counts(self, actor: Any, user_id: str, read_seq: int,
                     upper_seq: int) -> dict[str, int]:
        """``unread_notifications`` for events with read_seq < seq <= upper_seq."""
        key = (actor.room_id, user_id)
        cached = self._cache.get(key)
        if cached is not None and cached.read_seq == read_seq and \
                cached.upto_seq <= upper_seq:
            start, notes, lights = cached.upto_seq, cached.notifications, cached.highlights
        else:
            start, notes, lights = read_seq, 0, 0
        if upper_seq > start:
            slack = max(0, await actor.last_seq() - upper_seq)
            events, _ = await actor.events_since(start, MAX_SCAN + slack)
            for event in events:
                if event.internal_metadata.get("seq", 0) > upper_seq:
                    continue
                notify, highlight = notification_of(event, user_id)
                notes += notify
                lights += highlight
        counted = _Counted(read_seq, max(start, upper_seq), notes, lights)
        self._cache[key] = counted
        self._cache.move_to_end(key)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return {"notification_count": notes, "highlight_count": lights}
