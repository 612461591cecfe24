"""Third-party invites over federation: ``PUT /_matrix/federation/v1/3pid/onbind`` and
``PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}`` (spec: Server-Server
API, "Third-party invites"; the invite itself is
``homeserver/rooms/features/third_party_invites.py``).

``onbind`` is called by an identity server, not by a homeserver, so it carries no
X-Matrix signature; what makes it safe is that nothing it says is taken on trust: each
invite's ``signed`` block must verify against the public keys the identity server
put in the room's ``m.room.third_party_invite`` event, which the auth rules check
when the invite is written. For each invite of the now-bound user (who must be ours
and exist): if we are in the room (we hold it and a local user is joined) we write
the invite ourselves through the room's actor; if not, we ask the servers of the
inviter and of the room ID to do it (``exchange_third_party_invite``), the first
that takes it wins. Invites that fail do not stop the others; the first failure is
the answer (Synapse also answers with its first failure).

``exchange_third_party_invite`` is asked by another homeserver (X-Matrix signed) with
a partial ``m.room.member`` event; we must be in the room, and write it as above (its
invitee on another server gets it the usual way, ``PUT /v2/invite``).
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Mapping

from twisted.logger import Logger

from federation.client import RemoteError, RemoteHttpError
from homeserver.errors import (
    BadJson, Forbidden, InvalidParam, MatrixError, NotFound, UnknownError)
from homeserver.ids import InvalidId, UserID, parse_room_id

log = Logger()
_FED = "/_matrix/federation/v1"


def _user(value: Any, what: str) -> str:
    try:
        return UserID.parse(value).to_string()
    except (InvalidId, TypeError, AttributeError):
        raise BadJson(f"{what} must be a user ID") from None


def _signed(value: Any, user_id: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not isinstance(value.get("token"), str) \
            or not isinstance(value.get("signatures"), Mapping):
        raise BadJson("signed must be an object with token and signatures")
    if value.get("mxid") != user_id:
        raise BadJson("signed.mxid is not the invited user")
    return dict(value)


class ThirdPartyInviteExchange:
    def __init__(self, *, server_name: str, rooms: Any, store: Any, invites: Any,
                 client: Any) -> None:
        """``invites``: ``ThirdPartyInvites`` (its ``redeem`` writes the invite);
        ``client``: the federation client, for asking the room's servers."""
        self._server_name = server_name
        self._rooms = rooms
        self._store = store
        self._invites = invites
        self._client = client

    async def on_bind(self, body: Any) -> dict[str, Any]:
        """``PUT /3pid/onbind`` (module docstring)."""
        if not isinstance(body, Mapping):
            raise BadJson("body must be a JSON object")
        mxid = _user(body.get("mxid"), "mxid")
        if UserID.parse(mxid).domain != self._server_name:
            raise InvalidParam("The user is not on this server")
        if await self._store.accounts.get_user(mxid) is None:
            raise NotFound(f"Unknown user {mxid}")
        invites = body.get("invites")
        if not isinstance(invites, list):
            raise BadJson("invites must be a list")
        failures: list[MatrixError] = []
        for invite in invites:
            try:
                if not isinstance(invite, Mapping):
                    raise BadJson("each invite must be an object")
                if invite.get("mxid") != mxid:
                    raise BadJson("an invite is for another user")
                room_id = parse_room_id(invite.get("room_id"))
                sender = _user(invite.get("sender"), "sender")
                signed = _signed(invite.get("signed"), mxid)
                await self._exchange(room_id, sender, mxid, signed)
            except MatrixError as e:
                log.info("third-party invite for {user} not taken: {error}", user=mxid,
                         error=e.message)
                failures.append(e)
        if failures:
            raise failures[0]
        return {}

    async def on_exchange(self, origin: str, room_id: str, body: Any) -> dict[str, Any]:
        """``PUT /exchange_third_party_invite/{roomId}`` (module docstring)."""
        room_id = parse_room_id(room_id)
        if not isinstance(body, Mapping) or body.get("type") != "m.room.member":
            raise BadJson("The event must be an m.room.member event")
        if body.get("room_id") != room_id:
            raise BadJson("The event's room_id is not the path's")
        content = body.get("content")
        if not isinstance(content, Mapping) or content.get("membership") != "invite":
            raise BadJson("The event must be an invite")
        tpi = content.get("third_party_invite")
        if not isinstance(tpi, Mapping):
            raise BadJson("The invite has no third_party_invite")
        user_id = _user(body.get("state_key"), "state_key")
        sender = _user(body.get("sender"), "sender")
        signed = _signed(tpi.get("signed"), user_id)
        if not await self._in_room(room_id):
            raise NotFound(f"This server is not in the room {room_id}")
        log.info("{origin} exchanges a third-party invite of {user} in {room}",
                 origin=origin, user=user_id, room=room_id)
        await self._invites.redeem(room_id, sender, user_id, signed)
        return {}

    async def _exchange(self, room_id: str, sender: str, user_id: str,
                        signed: dict[str, Any]) -> None:
        if await self._in_room(room_id):
            await self._invites.redeem(room_id, sender, user_id, signed)
            return
        event = {"type": "m.room.member", "room_id": room_id, "sender": sender,
                 "state_key": user_id,
                 "content": {"membership": "invite",
                             "third_party_invite": {"display_name": "", "signed": signed}}}
        servers = [UserID.parse(sender).domain]
        room_server = room_id.partition(":")[2]
        if room_server and room_server not in servers:
            servers.append(room_server)
        path = f"{_FED}/exchange_third_party_invite/{urllib.parse.quote(room_id, safe='')}"
        error: MatrixError = UnknownError(f"No server of {room_id} took the invite",
                                          status=502)
        for server in servers:
            if server == self._server_name:
                continue
            try:
                await self._client.put_json(server, path, event)
                return
            except RemoteHttpError as e:
                if e.status == 403:
                    error = Forbidden(f"{server} refused the third-party invite")
            except RemoteError:
                continue
        raise error

    async def _in_room(self, room_id: str) -> bool:
        if not self._rooms.known(room_id):
            return False
        joined = await self._store.streams.get_room_members(room_id, ("join",))
        return any(UserID.parse(u).domain == self._server_name for u in joined)


def register(router: Any, *, authenticated: Any, exchange: ThirdPartyInviteExchange
             ) -> None:
    """``/3pid/onbind`` (unsigned: identity servers call it) and the signed
    ``/exchange_third_party_invite/{roomId}``."""
    async def on_bind(request: Any) -> tuple[int, Any]:
        return 200, await exchange.on_bind(request.json())

    async def on_exchange(request: Any) -> tuple[int, Any]:
        return 200, await exchange.on_exchange(request.requester, request.path["room_id"],
                                               request.json())

    # the spec says PUT; Sydent sends POST, which is what Synapse serves: take both
    router.add("PUT", _FED + "/3pid/onbind", on_bind)
    router.add("POST", _FED + "/3pid/onbind", on_bind)
    router.add("PUT", _FED + "/exchange_third_party_invite/(?P<room_id>[^/]+)",
               authenticated(on_exchange))


__all__ = ["ThirdPartyInviteExchange", "register"]
