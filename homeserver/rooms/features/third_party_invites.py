"""Third-party invites: inviting someone by an email address (spec: Client-Server API,
"Third-party invites"; Server-Server API, "Third-party invites").

``POST /rooms/{roomId}/invite`` with ``id_server``/``id_access_token``/``medium``/
``address`` asks that identity server (``homeserver/http/identity_servers.py``, only a
trusted one) whether the address is bound to a Matrix user. If it is, that user is
invited as usual. If not, the invite is stored on the identity server, which answers
with a token and its public keys, and an ``m.room.third_party_invite`` state event
(state key: the token) is sent to the room; the auth rules want the sender joined
with the ``invite`` power level. The sender must be joined before the identity server
is asked at all.

When someone binds the address, the identity server tells their homeserver
(``PUT /3pid/onbind``, ``federation/third_party_invites.py``) and hands it, per
stored invite, a ``signed`` block ``{mxid, token, signatures}`` made with the key
whose public half is in the ``m.room.third_party_invite`` event. :meth:`redeem` turns
it into the ``m.room.member`` invite of that user, with ``content.third_party_invite``
= ``{display_name, signed}``, sent as the original inviter (the auth rules' rule
5.4.1 wants that sender, and allow it without the sender's membership: the identity
server's signature is the proof). It goes through the room's actor like any member
event, so the auth rules check the token's signature against the public keys in
the room's state; a bad signature is ``403 M_FORBIDDEN`` and nothing is written.
"""

from __future__ import annotations

from typing import Any, Mapping

from homeserver.errors import Forbidden
from homeserver.rooms.rules.power_levels import CREATE_KEY

THIRD_PARTY_INVITE = "m.room.third_party_invite"
#: room state copied into the store-invite request for the identity server's email
_ROOM_FIELDS = (("m.room.name", "name", "room_name"),
                ("m.room.canonical_alias", "alias", "room_alias"),
                ("m.room.avatar", "url", "room_avatar_url"),
                ("m.room.join_rules", "join_rule", "room_join_rules"))


class ThirdPartyInvites:
    def __init__(self, *, rooms: Any, membership: Any, identity: Any) -> None:
        """``membership``: the MembershipService (its ``change`` writes invites);
        ``identity``: :class:`homeserver.http.identity_servers.IdentityServers`."""
        self._rooms = rooms
        self._membership = membership
        self._identity = identity

    async def invite(self, room_id: str, sender: str, *, id_server: str,
                     id_access_token: str | None, medium: str, address: str) -> None:
        """Invite the owner of a third-party identifier (module docstring)."""
        self._identity.base_url(id_server)   # 400 M_SERVER_NOT_TRUSTED before anything
        actor = await self._rooms.get(room_id)
        if await actor.membership(sender) != "join":
            raise Forbidden(f"{sender} is not in the room")
        user_id = await self._identity.lookup(id_server, id_access_token, medium, address)
        if user_id is not None:
            await self._membership.change(room_id, sender, user_id, "invite")
            return
        stored = await self._identity.store_invite(
            id_server, id_access_token, await self._store_request(
                actor, room_id, sender, medium, address))
        await actor.create_event({"type": THIRD_PARTY_INVITE, "sender": sender,
                                  "state_key": stored["token"],
                                  "content": stored["content"]})

    async def _store_request(self, actor: Any, room_id: str, sender: str, medium: str,
                             address: str) -> dict[str, Any]:
        """What the identity server is told to word its invitation with."""
        keys = [(t, "") for t, _, _ in _ROOM_FIELDS] + [CREATE_KEY,
                                                        ("m.room.member", sender)]
        state = await actor.current_state(keys)
        request: dict[str, Any] = {"medium": medium, "address": address,
                                   "room_id": room_id, "sender": sender}
        for event_type, field, name in _ROOM_FIELDS:
            event = state.get((event_type, ""))
            value = event.content.get(field) if event is not None else None
            if isinstance(value, str) and value:
                request[name] = value
        create = state.get(CREATE_KEY)
        room_type = create.content.get("type") if create is not None else None
        if isinstance(room_type, str):
            request["room_type"] = room_type
        member = state.get(("m.room.member", sender))
        for field, name in (("displayname", "sender_display_name"),
                            ("avatar_url", "sender_avatar_url")):
            value = member.content.get(field) if member is not None else None
            if isinstance(value, str) and value:
                request[name] = value
        return request

    async def redeem(self, room_id: str, sender: str, user_id: str,
                     signed: Mapping[str, Any]) -> str:
        """Write the invite of ``user_id`` that redeems the stored invite named by
        ``signed.token`` (module docstring); its event ID. 403 if there is no such
        invite in the room, it was not ``sender``'s, or the signature fails."""
        token = signed.get("token")
        actor = await self._rooms.get(room_id)
        if not isinstance(token, str):
            raise Forbidden("The signed block names no token")
        stored = (await actor.current_state([(THIRD_PARTY_INVITE, token)])
                  ).get((THIRD_PARTY_INVITE, token))
        if stored is None:
            raise Forbidden("No third-party invite in the room has this token")
        display_name = stored.content.get("display_name")
        content = {"third_party_invite": {
            "display_name": display_name if isinstance(display_name, str) else "",
            "signed": dict(signed)}}
        return await self._membership.change(room_id, sender, user_id, "invite",
                                             content=content, ratelimit=False)


__all__ = ["THIRD_PARTY_INVITE", "ThirdPartyInvites"]
