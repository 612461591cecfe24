"""Deactivating an account (spec: ``POST /account/deactivate``).

The account is marked deactivated first, so nothing can log in or use a token while
the rest happens; then its password, devices and tokens go, then what ``add_hook``
adds (end-to-end keys, cross-signing keys and key backups, pushers, push rules), it
leaves the user directory, and it leaves (or rejects) every room it is in or invited
to. Parting a
room is best effort: a room that refuses (or is gone) does not stop the others.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.logger import Logger

from homeserver.errors import MatrixError

log = Logger()

#: memberships a deactivated user is taken out of ("leave" also rejects an invite and
#: rescinds a knock)
_PARTED_MEMBERSHIPS = ("join", "invite", "knock")


#: ``await hook(user_id)``: see ``Deactivator.add_hook``
DeactivationHook = Callable[[str], Awaitable[None]]


class Deactivator:
    def __init__(self, store: Any, devices: Any, rooms: Any) -> None:
        self._store = store
        self._devices = devices  # homeserver.accounts.devices.DeviceManager
        self._rooms = rooms
        self._hooks: list[DeactivationHook] = []

    def add_hook(self, hook: DeactivationHook) -> None:
        """Have ``await hook(user_id)`` remove more of a deactivated user's data (E2EE
        keys and backups, pushers, push rules), after their devices are gone and
        while they are still in their rooms (so room mates are told). A hook's
        failure is logged, never raised: the account is deactivated regardless."""
        self._hooks.append(hook)

    async def deactivate(self, user_id: str, *, erase: bool = False) -> dict[str, Any]:
        """Deactivate ``user_id``; the response body (no third-party IDs exist here, so
        there is nothing to unbind: ``success``, as the spec requires)."""
        accounts = self._store.accounts
        await accounts.set_deactivated(user_id, True)
        await accounts.set_password_hash(user_id, None)
        await self._devices.delete_all_devices(user_id)
        # an unspent m.login.token would be refused anyway; do not keep it around
        await self._store.login_tokens.delete_for_user(user_id)
        for hook in self._hooks:
            try:
                await hook(user_id)
            except Exception:
                log.failure("deactivation hook failed for {user}", user=user_id)
        await self._store.user_directory.remove_user(user_id)
        if erase:
            # spec: erase non-event data as far as possible; the profile is such data
            await accounts.set_displayname(user_id, None)
            await accounts.set_avatar_url(user_id, None)
            # and their messages are served pruned to those who join later
            # (homeserver.rooms.features.visibility)
            await self._store.erased_users.mark_erased(user_id)
        await self.part_rooms(user_id)
        return {"id_server_unbind_result": "success"}

    async def part_rooms(self, user_id: str) -> list[str]:
        """Leave every joined room, reject every invite; the rooms left."""
        parted = []
        memberships = await self._store.streams.get_rooms_for_user(
            user_id, _PARTED_MEMBERSHIPS, include_forgotten=True)
        for membership in memberships:
            try:
                room = await self._rooms.get(membership.room_id)
                await room.create_event({
                    "type": "m.room.member", "state_key": user_id, "sender": user_id,
                    "content": {"membership": "leave"},
                })
            except MatrixError as e:  # an unknown room, or the auth rules said no
                log.info("deactivation: {user} could not leave {room}: {error}",
                         user=user_id, room=membership.room_id, error=e.message)
                continue
            except Exception:
                log.failure("deactivation: {user} could not leave {room}", user=user_id,
                            room=membership.room_id)
                continue
            parted.append(membership.room_id)
        return parted
