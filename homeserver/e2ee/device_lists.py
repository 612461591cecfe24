"""Whose device lists a client must refresh: ``device_lists`` of /sync and
``GET /keys/changes`` (spec: Client-Server API, "Tracking the device list for a
user", "Extensions to sync").

Between two sync tokens:

- ``changed``: users sharing a room with us now whose devices or cross-signing keys
  changed (device-lists stream), and users who newly share a room with us (they
  joined one of our rooms, or we joined theirs): we have not been tracking them;
- ``left``: users who shared a room with us and no longer share any (they left, or we
  did).

The second part reads the memberships index only for the rooms whose memberships
changed in the token range. Which rooms those are, ``Streams.member_changes`` knows
for everything this process announced in rooms still awake; a ``since`` older than
the process start, or than the last change of a room that has since hibernated,
reads every room of ours. So a message that wakes a thousand long-polls costs none
of them a query here.

The spec speaks of *encrypted* rooms; the memberships index does not know which rooms
are encrypted, so every shared room counts (as in Synapse): a client may refresh a
few device lists it did not need.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Awaitable, Callable

from homeserver.sync.tokens import StreamToken

ALL_MEMBERSHIPS = ("join", "invite", "leave", "ban", "knock")


def device_list_waker(streams: Any, notifier: Any) -> Callable[[str], Awaitable[None]]:
    """``await wake(user_id)`` after the user's devices or keys changed (a new login,
    a rename, a deletion, a key upload; the change is already on the device-lists
    stream): wakes the long-polls of everyone whose /sync lists the user in
    ``device_lists.changed``, i.e. the user and everyone sharing a room with them."""
    async def wake(user_id: str) -> None:
        sharing = await streams.users_sharing_a_room_with(user_id)
        notifier.notify_users(sharing | {user_id})

    return wake


@dataclasses.dataclass(frozen=True)
class DeviceListDelta:
    changed: list[str]
    left: list[str]

    def to_json(self) -> dict[str, list[str]]:
        return {"changed": self.changed, "left": self.left}


class DeviceListChanges:
    def __init__(self, store: Any) -> None:
        self._store = store
        #: room stream position when first asked: every membership change above it
        #: was announced by this process and is in ``Streams.member_changes``
        self._floor: int | None = None

    async def between(self, user_id: str, since: StreamToken, upto: StreamToken,
                      sharing: Callable[[], Awaitable[set[str]]]) -> DeviceListDelta:
        """``sharing()``: the users sharing a room with ``user_id`` now (them too)."""
        store = self._store
        if self._floor is None:
            self._floor = (await store.current_positions())["room"]
        changed: set[str] = set()
        if since.device_lists < upto.device_lists:
            changed = await store.devices.users_with_device_list_changes(
                since.device_lists, upto.device_lists, user_ids=await sharing())
        left: set[str] = set()
        if since.room < upto.room:
            newly, gone = await self._membership_delta(user_id, since.room, upto.room)
            if newly or gone:
                now_sharing = await sharing()
                changed |= (newly - {user_id}) & now_sharing
                left = gone - now_sharing - {user_id}
        # our own user is in ``changed`` when one of our devices changed (``sharing``
        # includes us): a client tracks its own user's other devices too
        return DeviceListDelta(sorted(changed), sorted(left))

    async def _membership_delta(self, user_id: str, since: int, upto: int,
                                ) -> tuple[set[str], set[str]]:
        """(users newly sharing a room with us, users who stopped sharing one)."""
        streams = self._store.streams
        mine = await streams.get_rooms_for_user(user_id, ALL_MEMBERSHIPS,
                                                include_forgotten=True)
        if since < max(self._floor or 0, streams.member_changes_floor):
            rooms = [m.room_id for m in mine]
        else:
            rooms = [m.room_id for m in mine
                     if streams.member_changes.get(m.room_id, 0) > since]
        if not rooms:
            return set(), set()
        newly: set[str] = set()
        gone: set[str] = set()
        for m in await streams.membership_changes(rooms, since, upto):
            if m.user_id == user_id:
                members = set(await streams.get_room_members(m.room_id))
                (newly if m.membership == "join" else gone).update(members)
            elif m.membership == "join":
                newly.add(m.user_id)
            elif m.membership in ("leave", "ban"):
                gone.add(m.user_id)
        return newly, gone
