"""User profiles: display name and avatar (spec: Client-Server API, "Profiles").

Setting a profile field updates the global profile, then propagates it: the user gets
a new ``m.room.member`` event (membership ``join``, the updated ``displayname`` /
``avatar_url``) in every room they are joined to (spec: "Events on Change of Profile
Information"), and their user directory entry is refreshed.

The rooms come from the memberships index. One room refusing the update (the user's
power was taken away mid-way, the room is shutting down) does not fail the request:
the global profile is the source of truth and the other rooms still get it.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger

from homeserver.errors import Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.ids import UserID

log = Logger()

#: the longest display name (in characters) and avatar URL we accept
MAX_DISPLAYNAME_LEN = 256
MAX_AVATAR_URL_LEN = 1000

FIELDS = ("displayname", "avatar_url")


class Directory(Protocol):
    async def update_user(self, user_id: str, displayname: str | None,
                          avatar_url: str | None) -> None: ...

    async def get_entry(self, user_id: str) -> Any: ...


class RemoteProfiles(Protocol):
    async def profile(self, user_id: str, domain: str) -> dict[str, str]: ...


class ProfileService:
    def __init__(self, *, server_name: str, store: Any, rooms: Any,
                 directory: Directory, remote: RemoteProfiles | None = None) -> None:
        """``remote``: asks a remote user's server (federation ``/query/profile``)."""
        self._remote = remote
        self._server_name = server_name
        self._accounts = store.accounts
        self._streams = store.streams
        self._rooms = rooms
        self._directory = directory

    def is_mine(self, user_id: str) -> bool:
        return UserID.parse(user_id).domain == self._server_name

    # -- reading ------------------------------------------------------------------------
    async def get_profile(self, user_id: str) -> dict[str, str]:
        """The user's profile fields that are set; M_NOT_FOUND for an unknown user.

        Remote profiles are asked of the user's server (``remote``, cached there
        briefly); without federation, or if the server cannot be reached, they are
        answered from what this server has seen of the user (their member events, via
        the user directory).
        """
        UserID.parse(user_id)  # M_INVALID_PARAM for a malformed ID
        if self.is_mine(user_id):
            user = await self._accounts.get_user(user_id)
            profile = await self._accounts.get_profile(user_id) if user else None
            if profile is None:
                raise NotFound("Profile not found")
            fields = {"displayname": profile.displayname, "avatar_url": profile.avatar_url}
        else:
            found = await self._remote_profile(user_id)
            if found is None:
                raise NotFound("Profile not found")
            fields = found
        return {k: v for k, v in fields.items() if v is not None}

    async def get_field(self, user_id: str, field: str) -> dict[str, str]:
        """``{field: value}``; M_NOT_FOUND if the user is unknown or the field unset."""
        profile = await self.get_profile(user_id)
        if field not in profile:
            raise NotFound(f"The user has no {field}")
        return {field: profile[field]}

    async def _remote_profile(self, user_id: str) -> dict[str, str | None] | None:
        if self._remote is not None:
            try:
                return dict(await self._remote.profile(user_id,
                                                       UserID.parse(user_id).domain))
            except NotFound:
                return None  # the user's own server says so
            except MatrixError:
                pass  # unreachable: what we saw of them is better than nothing
        # the directory is the only copy we keep of remote users' profiles
        entry = await self._directory.get_entry(user_id)
        if entry is None:
            return None
        return {"displayname": entry.display_name, "avatar_url": entry.avatar_url}

    # -- writing ------------------------------------------------------------------------
    async def set_field(self, requester: Any, user_id: str, field: str, value: Any) -> None:
        """Set ``field`` of ``user_id``'s profile as ``requester``, then propagate it.

        Only the user may change their profile (M_FORBIDDEN otherwise); guests may
        change their display name only (spec: "Guest Access"). An empty string or
        null clears the field.
        """
        if field not in FIELDS:
            raise InvalidParam(f"unknown profile field {field!r}")
        UserID.parse(user_id)
        if requester.user_id != user_id:
            raise Forbidden("You may only change your own profile")
        if requester.is_guest and field != "displayname":
            raise Forbidden("Guests may only set a display name",
                            errcode="M_GUEST_ACCESS_FORBIDDEN")
        value = _validated(field, value)
        if not self.is_mine(user_id) or await self._accounts.get_user(user_id) is None:
            raise NotFound("Profile not found")
        if field == "displayname":
            await self._accounts.set_displayname(user_id, value)
        else:
            await self._accounts.set_avatar_url(user_id, value)
        profile = await self._accounts.get_profile(user_id)
        await self._directory.update_user(user_id, profile.displayname, profile.avatar_url)
        await self._propagate(user_id, profile.displayname, profile.avatar_url)

    async def _propagate(self, user_id: str, displayname: str | None,
                         avatar_url: str | None) -> None:
        joined = await self._streams.get_rooms_for_user(user_id, ("join",))
        await defer.gatherResults([
            defer.ensureDeferred(self._update_member(m.room_id, user_id, displayname,
                                                     avatar_url))
            for m in joined], consumeErrors=True)

    async def _update_member(self, room_id: str, user_id: str, displayname: str | None,
                             avatar_url: str | None) -> None:
        try:
            actor = await self._rooms.get(room_id)
            current = (await actor.current_state([("m.room.member", user_id)])).get(
                ("m.room.member", user_id))
            if current is None or current.membership != "join":
                return  # the index was a step behind: nothing to update
            content = dict(current.content)
            for key, value in (("displayname", displayname), ("avatar_url", avatar_url)):
                if value is None:
                    content.pop(key, None)
                else:
                    content[key] = value
            if content == dict(current.content):
                return
            await actor.create_event({"type": "m.room.member", "state_key": user_id,
                                      "sender": user_id, "content": content})
        except MatrixError as e:
            log.info("profile of {user} not propagated to {room}: {error}", user=user_id,
                     room=room_id, error=e.message)
        except Exception:
            log.failure("propagating the profile of {user} to {room}", user=user_id,
                        room=room_id)


def _validated(field: str, value: Any) -> str | None:
    """The value to store (None clears the field); M_BAD_JSON / M_INVALID_PARAM."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MatrixError(f"{field} must be a string", errcode="M_BAD_JSON")
    if field == "displayname":
        if len(value) > MAX_DISPLAYNAME_LEN:
            raise InvalidParam(f"displayname is too long (max {MAX_DISPLAYNAME_LEN})")
        if any(ord(ch) < 0x20 and ch not in "\t" for ch in value):
            raise InvalidParam("displayname may not contain control characters")
    else:
        # any string, as in Synapse: the spec's "format: uri" is not enforced there
        # and clients and sytest ("avatar_url updates affect room member events")
        # set http(s) URLs and plain strings
        if len(value) > MAX_AVATAR_URL_LEN:
            raise InvalidParam(f"avatar_url is too long (max {MAX_AVATAR_URL_LEN})")
    return value
