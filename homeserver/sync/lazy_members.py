"""Which membership events each device has already been sent (spec: "Lazy-loading
room members": the server MAY skip *redundant* membership events).

A member event counts as known to a device only if it was sent in a response whose
token the device has since used as ``since``: a response the client never received
(a dropped connection) must not make us skip the member event next time. Everything
is in memory and bounded; forgetting only makes responses more redundant, which the
spec allows.
"""

from __future__ import annotations

import collections
from typing import Iterable

_MAX_DEVICES = 2000
_MAX_MEMBERS_PER_ROOM = 5000

DeviceKey = tuple[str, str]


class LazyMemberCache:
    def __init__(self) -> None:
        #: (user, device) → room → member → (member event ID, room stream pos sent at)
        self._devices: collections.OrderedDict[
            DeviceKey, dict[str, dict[str, tuple[str, int]]]] = collections.OrderedDict()

    def known(self, device: DeviceKey, room_id: str, member: str, event_id: str,
              since_room_pos: int | None) -> bool:
        if since_room_pos is None:
            return False
        rooms = self._devices.get(device)
        entry = rooms.get(room_id, {}).get(member) if rooms is not None else None
        return entry is not None and entry[0] == event_id and entry[1] <= since_room_pos

    def remember(self, device: DeviceKey, room_id: str,
                 members: Iterable[tuple[str, str]], sent_at_pos: int) -> None:
        """``members``: (member user ID, member event ID) pairs sent in a response
        whose ``next_batch`` has room position ``sent_at_pos``."""
        rooms = self._devices.get(device)
        if rooms is None:
            rooms = self._devices[device] = {}
        self._devices.move_to_end(device)
        while len(self._devices) > _MAX_DEVICES:
            self._devices.popitem(last=False)
        known = rooms.setdefault(room_id, {})
        for member, event_id in members:
            previous = known.get(member)
            if previous is not None and previous[0] == event_id:
                continue  # keep the earlier (smaller) position: it is already usable
            known[member] = (event_id, sent_at_pos)
        if len(known) > _MAX_MEMBERS_PER_ROOM:
            known.clear()

    def forget_device(self, device: DeviceKey) -> None:
        self._devices.pop(device, None)
