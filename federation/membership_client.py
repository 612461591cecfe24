"""Our users' memberships of rooms held elsewhere: joining a remote room, inviting a
remote user, leaving (or rejecting an invite to) a room we do not hold, and keeping
invites that arrive for such rooms.

Spec: server-server API "Joining Rooms" (make_join → send_join v2; the state and auth
chain answered are checked, then the room is ours too), "Inviting to a room" (PUT
/v2/invite: the invitee's server signs the invite before it enters the room), "Leaving
Rooms (Rejecting Invites)" (make_leave → send_leave v2), and room versions 10-12 (a v12
room ID is the create event's hash, so the creator's server comes from its sender).

Everything here is slow I/O and happens before any room actor sees the result: the
joined room is born by ``RoomRegistry.import_room`` from checked events, an outgoing
invite enters its room by ``RoomActor.apply_remote_pdus`` once the invitee's server
signed it. Remote failures never pass through as our errors: a server that says no or
cannot be reached makes us try the next; when none works the client gets our own
error naming the last reason.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol, Sequence, TypeVar

from twisted.logger import Logger

from federation.client import RemoteError, RemoteHttpError
from homeserver.errors import (
    AuthError, Forbidden, MatrixError, NotFound, UnknownError)
from homeserver.events.builder import finalize_event
from homeserver.events.client_format import strip_state_event
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.ids import RoomAlias, UserID
from homeserver.rooms.actor.protocols import Announcement
from homeserver.rooms.actor.room_writer import Outcome
from homeserver.rooms.rules.auth import check_auth_rules

log = Logger()

_T = TypeVar("_T")

_FED = "/_matrix/federation"


def _unreachable(message: str) -> MatrixError:
    """Another server could not be reached: 502, as Synapse answers (our error, not
    theirs)."""
    return MatrixError(message, errcode="M_UNKNOWN", status=502)


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class JsonClient(Protocol):
    async def get_json(self, destination: str, path: str, args: Any = None) -> Any: ...
    async def put_json(self, destination: str, path: str, body: Any) -> Any: ...


class Checker(Protocol):
    async def check(self, room_version: RoomVersion, events: Iterable[Any]
                    ) -> tuple[list[PDU], dict[str, str]]: ...
    async def check_one(self, room_version: RoomVersion, event: Any) -> PDU: ...


class Registry(Protocol):
    def known(self, room_id: str) -> bool: ...
    async def import_room(self, room_id: str, room_version: str, event: PDU,
                          state: Sequence[PDU], auth_chain: Sequence[PDU]) -> Any: ...


class Memberships(Protocol):
    """``store.remote_memberships`` (homeserver/store/remote_memberships.py)."""

    async def record(self, user_id: str, room_id: str, membership: str, event_id: str,
                     room_version: str, event: dict[str, Any],
                     stripped_state: Sequence[dict[str, Any]]) -> int: ...
    async def latest(self, user_id: str, room_id: str) -> Any: ...


class StreamWriter(Protocol):
    async def announce(self, announcements: Sequence[Announcement]) -> list[int]: ...
    async def seed_memberships(self, room_id: str,
                               members: Iterable[tuple[str, str, str]]) -> int: ...


def _send_refused(server: str, membership: str, e: RemoteError) -> MatrixError:
    """What the client hears when ``server`` did not take our ``membership`` event."""
    if not isinstance(e, RemoteHttpError):
        return _unreachable(f"{server} is unreachable over federation")
    if e.status == 403:
        return Forbidden(f"{server} refused the {membership}")
    return UnknownError(f"{server} did not take the {membership}: HTTP {e.status}")


def _leave_refused(server: str, membership: str, e: RemoteError) -> MatrixError:
    """A leave (rejecting an invite) refused or lost: M_UNKNOWN, however it failed."""
    return UnknownError(f"{server} did not take the {membership}")


def server_of_room(room_id: str) -> str | None:
    """The server part of a pre-v12 room ID (v12 IDs have none)."""
    return room_id.split(":", 1)[1] if ":" in room_id else None


class RemoteMembership:
    def __init__(self, *, server_name: str, client: JsonClient, checker: Checker,
                 rooms: Registry, memberships: Memberships, stream: StreamWriter,
                 notify_user: Callable[[str], None], signing_key: Any,
                 now_ms: Callable[[], int]) -> None:
        self._server_name = server_name
        self._client = client
        self._checker = checker
        self._rooms = rooms
        self._memberships = memberships
        self._stream = stream
        self._notify_user = notify_user
        self._signing_key = signing_key
        self._now_ms = now_ms

    # -- invites that arrive (MembershipServer's InviteInbox) ------------------------
    async def receive_invite(self, pdu: PDU, stripped_state: Sequence[dict]) -> None:
        """Keep an invite to a room we do not hold and put it in the invitee's /sync."""
        await self._record(pdu, stripped_state)

    async def _record(self, pdu: PDU, stripped_state: Sequence[dict]) -> None:
        row_id = await self._memberships.record(
            pdu.state_key, pdu.room_id, pdu.membership, pdu.event_id,
            pdu.room_version.identifier, dict(pdu.get_dict()), list(stripped_state))
        await self._stream.announce([Announcement(
            pdu.room_id, -row_id, pdu.event_id, pdu.type, pdu.state_key, pdu.sender,
            pdu.membership)])
        self._notify_user(pdu.state_key)

    # -- aliases ----------------------------------------------------------------------
    async def resolve_alias(self, alias: str) -> tuple[str, list[str]]:
        """A remote alias's room ID and servers (GET /query/directory on its server)."""
        domain = RoomAlias.parse(alias).domain
        try:
            body = await self._client.get_json(domain, f"{_FED}/v1/query/directory",
                                               {"room_alias": alias})
        except RemoteHttpError as e:
            if e.status == 404:
                raise NotFound(f"Room alias {alias} not found") from None
            raise _unreachable(f"Could not resolve {alias} over federation: HTTP "
                               f"{e.status}") from None
        except RemoteError:
            raise _unreachable(f"Could not resolve {alias}: {domain} is unreachable "
                               "over federation") from None
        room_id = body.get("room_id") if isinstance(body, dict) else None
        if not isinstance(room_id, str):
            raise UnknownError(f"{domain} answered no room for {alias}")
        servers = body.get("servers")
        servers = [s for s in servers if isinstance(s, str)] if isinstance(servers, list) \
            else []
        return room_id, [domain, *servers]

    async def _candidates(self, room_id: str, user_id: str,
                          servers: Iterable[str]) -> list[str]:
        found = list(servers)
        invite = await self._memberships.latest(user_id, room_id)
        if invite is not None:
            found.append(UserID.parse(invite.event["sender"]).domain)
        room_server = server_of_room(room_id)
        if room_server:
            found.append(room_server)
        result: list[str] = []
        for server in found:
            if server and server != self._server_name and server not in result:
                result.append(server)
        return result

    # -- joining ----------------------------------------------------------------------
    async def join(self, room_id: str, user_id: str, servers: Iterable[str],
                   content: Mapping[str, Any]) -> str:
        """Join ``user_id`` to a room we do not hold, through the first of ``servers``
        (then the inviter's and the room ID's server) that lets us; returns the join's
        event ID once the room is imported here."""
        return await self._first_server(
            "join", room_id, user_id, servers,
            f"No known servers to join {room_id} through",
            lambda server: self._join_via(server, room_id, user_id, content))

    async def _first_server(self, membership: str, room_id: str, user_id: str,
                            servers: Iterable[str], none_known: str,
                            attempt: Callable[[str], Awaitable[_T]]) -> _T:
        """``attempt(server)`` through each candidate server in turn (``servers``, then
        the inviter's and the room ID's) until one does not raise ``_TryNext``; when
        none works, the last one's error."""
        candidates = await self._candidates(room_id, user_id, servers)
        if not candidates:
            raise NotFound(none_known)
        last: MatrixError | None = None
        for server in candidates:
            try:
                return await attempt(server)
            except _TryNext as e:
                log.info("{membership} {room} via {server} failed: {why}",
                         membership=membership, room=room_id, server=server, why=e.reason)
                last = e.error
        assert last is not None
        raise last

    async def _make_and_send(self, server: str, room_id: str, user_id: str,
                             membership: str, content: Mapping[str, Any], *,
                             versioned: bool, send: str,
                             refused: Callable[[str, str, RemoteError], MatrixError]
                             = _send_refused) -> tuple[RoomVersion, PDU, Any]:
        """The make_*/send_* handshake with ``server``: its template, our signed event
        (``membership``, ``content``), PUT to ``send`` (e.g. ``v2/send_join``). Returns
        the room version, our event and ``server``'s answer; ``refused(server,
        membership, error)`` is what the client hears of a failed send."""
        version, template = await self._make(server, room_id, user_id, membership,
                                             versioned)
        event = self._sign(version, template, room_id, user_id, membership, content)
        try:
            answer = await self._client.put_json(
                server, f"{_FED}/{send}/{_q(room_id)}/{_q(event.event_id)}",
                dict(event.get_dict()))
        except RemoteError as e:
            raise _TryNext(str(e), refused(server, membership, e)) from None
        return version, event, answer

    async def _make(self, server: str, room_id: str, user_id: str, membership: str,
                    versioned: bool) -> tuple[RoomVersion, dict[str, Any]]:
        args = {"ver": sorted(KNOWN_ROOM_VERSIONS)} if versioned else None
        try:
            body = await self._client.get_json(
                server, f"{_FED}/v1/make_{membership}/{_q(room_id)}/{_q(user_id)}", args)
        except RemoteHttpError as e:
            error: MatrixError
            if e.status == 403:
                error = Forbidden(f"{server} refused: {e.error or e.errcode}")
            elif e.status == 404:
                error = NotFound(f"{server} does not know room {room_id}")
            elif e.errcode == "M_INCOMPATIBLE_ROOM_VERSION":
                error = MatrixError("The room's version is not supported here",
                                    errcode="M_INCOMPATIBLE_ROOM_VERSION", status=400)
            else:
                error = UnknownError(f"{server} could not help us {membership}: HTTP "
                                     f"{e.status}")
            raise _TryNext(str(e), error) from None
        except RemoteError as e:
            raise _TryNext(str(e), _unreachable(
                f"{server} is unreachable over federation")) from None
        if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
            raise _TryNext("bad template", UnknownError(f"{server} sent a bad template"))
        version = KNOWN_ROOM_VERSIONS.get(body.get("room_version") or "1")
        if version is None:
            raise _TryNext("unsupported version", MatrixError(
                "The room's version is not supported here",
                errcode="M_INCOMPATIBLE_ROOM_VERSION", status=400))
        return version, body["event"]

    def _sign(self, version: RoomVersion, template: Mapping[str, Any], room_id: str,
              user_id: str, membership: str, content: Mapping[str, Any]) -> PDU:
        """Our member event from a resident server's template: its prev/auth events
        and depth, our content (keeping a restricted join's authoriser), our
        signature."""
        if template.get("room_id") != room_id or template.get("sender") != user_id \
                or template.get("state_key") != user_id \
                or template.get("type") != "m.room.member":
            raise _TryNext("template for something else",
                           UnknownError("The remote server sent a wrong template"))
        new_content = dict(content)
        new_content["membership"] = membership
        via = (template.get("content") or {}).get("join_authorised_via_users_server")
        if membership == "join" and isinstance(via, str):
            new_content["join_authorised_via_users_server"] = via
        event = {k: v for k, v in template.items()
                 if k in ("room_id", "type", "sender", "state_key", "prev_events",
                          "auth_events", "depth", "origin")}
        event["content"] = new_content
        try:
            return finalize_event(version, event, self._server_name, self._signing_key,
                                  self._now_ms())
        except MatrixError as e:
            raise _TryNext(e.message, UnknownError("The remote template is invalid")) \
                from None

    async def _join_via(self, server: str, room_id: str, user_id: str,
                        content: Mapping[str, Any]) -> str:
        version, join, answer = await self._make_and_send(
            server, room_id, user_id, "join", content, versioned=True, send="v2/send_join")
        if not isinstance(answer, dict):
            raise _TryNext("bad answer", UnknownError(f"{server} sent a bad answer"))
        join = await self._resident_signed(version, join, answer.get("event"))
        state, _ = await self._checker.check(version, _list(answer.get("state")))
        chain, _ = await self._checker.check(version, _list(answer.get("auth_chain")))
        self._check_create(version, room_id, state)
        try:
            await self._rooms.import_room(room_id, version.identifier, join, state, chain,
                                          joined_via=server)
        except MatrixError as e:
            raise _TryNext(e.message, e) from None
        # the state arrived as outliers, never announced: index the other servers'
        # members, or our EDUs (typing, receipts, presence, device lists) reach nobody
        await self._stream.seed_memberships(room_id, [
            (e.state_key, e.membership, e.event_id) for e in state
            if e.type == "m.room.member" and e.state_key is not None
            and e.membership is not None
            and e.state_key.split(":", 1)[-1] != self._server_name])
        return join.event_id

    async def _resident_signed(self, version: RoomVersion, join: PDU, event: Any) -> PDU:
        """For a restricted join the resident server answers the join with its
        signature added (spec "Restricted rooms"); it must be our event."""
        if not isinstance(event, dict):
            return join
        try:
            signed = await self._checker.check_one(version, event)
        except MatrixError as e:
            raise _TryNext(e.message, UnknownError("The remote server broke our join")) \
                from None
        if signed.event_id != join.event_id:
            raise _TryNext("changed join", UnknownError("The remote server changed our join"))
        return signed

    def _check_create(self, version: RoomVersion, room_id: str, state: Sequence[PDU]) -> None:
        create = next((e for e in state if e.type == "m.room.create" and e.state_key == ""),
                      None)
        if create is None:
            raise _TryNext("no create event", UnknownError("The room state has no create "
                                                           "event"))
        if create.content.get("room_version", "1") != version.identifier:
            raise _TryNext("version mismatch", UnknownError("The room's create event names "
                                                            "another room version"))
        if create.room_id != room_id:
            raise _TryNext("create event of another room",
                           UnknownError("The create event is for another room"))

    # -- knocking on a room we do not hold ---------------------------------------------
    async def knock(self, room_id: str, user_id: str, servers: Iterable[str] = (),
                    reason: str | None = None) -> str:
        """Knock on a room held elsewhere (spec: "Knocking upon a room"): make_knock →
        send_knock; the knock and the answered ``knock_room_state`` are kept like an
        invite, so the room shows in the user's /sync ``rooms.knock``."""
        content = {} if reason is None else {"reason": reason}
        _, knock, answer = await self._first_server(
            "knock", room_id, user_id, servers,
            f"No known servers to knock on {room_id} through",
            lambda server: self._make_and_send(server, room_id, user_id, "knock", content,
                                               versioned=True, send="v1/send_knock"))
        stripped = answer.get("knock_room_state") if isinstance(answer, dict) else None
        stripped = [e for e in stripped if isinstance(e, dict)] \
            if isinstance(stripped, list) else []
        await self._record(knock, [*stripped, strip_state_event(knock)])
        return knock.event_id

    # -- leaving a room we do not hold ------------------------------------------------
    async def leave(self, room_id: str, user_id: str, servers: Iterable[str] = (),
                    reason: str | None = None) -> str:
        """Reject an invite (or retract a knock) to a room we do not hold: make_leave
        and send_leave through the inviter's server; the leave then replaces the invite
        in the user's /sync."""
        content = {} if reason is None else {"reason": reason}
        _, leave, _ = await self._first_server(
            "leave", room_id, user_id, servers, f"Room {room_id} not found",
            lambda server: self._make_and_send(server, room_id, user_id, "leave", content,
                                               versioned=False, send="v2/send_leave",
                                               refused=_leave_refused))
        await self._record(leave, [])
        return leave.event_id

    # -- inviting a remote user into our room -----------------------------------------
    async def invite(self, actor: Any, sender: str, target: str,
                     content: Mapping[str, Any], stripped_state: Sequence[dict]) -> str:
        """Invite a user of another server into one of our rooms: build and sign the
        invite, have their server sign it too (PUT /v2/invite), then write it through
        the room's actor. Forbidden if the auth rules refuse it or their server does."""
        version = actor.room_version
        event, auth_state = await actor.event_template({
            "type": "m.room.member", "sender": sender, "state_key": target,
            "content": dict(content)})
        pdu = finalize_event(version, event, self._server_name, self._signing_key,
                             self._now_ms())
        try:
            check_auth_rules(version, pdu, auth_state)
        except AuthError as e:
            raise Forbidden(e.message) from None
        domain = UserID.parse(target).domain
        try:
            answer = await self._client.put_json(
                domain, f"{_FED}/v2/invite/{_q(actor.room_id)}/{_q(pdu.event_id)}",
                {"room_version": version.identifier, "event": dict(pdu.get_dict()),
                 "invite_room_state": list(stripped_state)})
        except RemoteHttpError as e:
            if e.status == 403:
                raise Forbidden(f"{domain} refused the invite") from None
            raise UnknownError(f"{domain} did not take the invite: HTTP {e.status}") \
                from None
        except RemoteError:
            raise _unreachable(f"Could not reach {domain} over federation to invite "
                               f"{target}") from None
        signed_dict = answer.get("event") if isinstance(answer, dict) else None
        try:
            signed = await self._checker.check_one(version, signed_dict)
        except MatrixError:
            raise UnknownError(f"{domain} answered the invite with a bad event") from None
        if signed.event_id != pdu.event_id:
            raise UnknownError(f"{domain} changed the invite")
        if domain not in (signed.get("signatures") or {}):
            raise UnknownError(f"{domain} did not sign the invite")
        [outcome] = await actor.apply_remote_pdus([signed])
        if outcome.status not in (Outcome.ACCEPTED, Outcome.DUPLICATE):
            raise Forbidden(f"The invite was not accepted: {outcome.status}")
        return signed.event_id


class _TryNext(Exception):
    """This server could not help; ``error`` is what the client hears if none can."""

    def __init__(self, reason: str, error: MatrixError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

