"""RoomService: the rooms domain API that the client servlets, /sync and search use.

Spec: Client-Server API "Rooms" (creation, membership, sending, state, redaction).
Built once in the composition root and published as ``components["room_service"]``.
Its parts are attributes too, each from its module in this package
(:mod:`homeserver.rooms.features`): ``membership``, ``visibility``, ``history``,
``directory``, ``stats``, ``upgrader`` (``upgrade``) and ``serializer``
(``client_events``).

For other engineers (stable API; all ``async`` unless noted):

``joined_room_ids(user_id) -> list[str]``
    the user's joined rooms (memberships index).
``is_joined(room_id, user_id) -> bool`` / ``membership_of(room_id, user_id)``
    from the room's own current state (authoritative).
``can_see_event(room_id, user_id, event) -> bool``,
``filter_events_for_user(room_id, user_id, events) -> list[PDU]``
    history visibility (spec "Room History Visibility"); events of one room.
``ignored_users(user_id) -> frozenset[str]``
    from ``m.ignored_user_list``; callers drop non-state events from these senders.
``serialize_events(room_id, events, user_id=, scope=, include_room_id=,
prev_content=True) -> list[dict]``
    ClientEvent JSON with ``prev_content``/``replaces_state`` (one state read per state
    event: pass ``prev_content=False`` for whole-state blocks), ``redacted_because``
    and, for the sending device, ``unsigned.transaction_id``.
``transaction_ids(room_id, event_ids, user_id, scope) -> dict[event_id, txn_id]``
    just the transaction IDs (``scope`` = ``transactions.scope_of(requester)``: the
    device ID, or ``"token:<token_id>"``), from the room's own DB, which records each
    send's key with its event.
``stripped_state(room_id, event_id=None, members=()) -> list[dict]``
    stripped state for invites/knocks (``invite_state``/``knock_state``), after
    ``event_id`` or now, with the member events of ``members`` (the inviter).
``membership_change(room_id, sender, target, membership, reason=, content=) -> event_id``
``send_event(room_id, sender, event_type, content, state_key=, txn=) -> event_id``
``set_state(room_id, sender, event_type, state_key, content) -> event_id``
``redact(room_id, sender, event_id, reason=, txn=) -> event_id``
``create_room(requester, body) -> room_id``
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, Mapping, Sequence

from homeserver.errors import (
    AuthError, BadJson, Forbidden, InvalidParam, InvalidRoomState, MatrixError, RoomInUse,
    UnsupportedRoomVersionError)
from homeserver.events.client_format import STRIPPED_STATE_TYPES, strip_state_event
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import UnsupportedRoomVersion, get_room_version
from homeserver.ids import InvalidId, RoomAlias, UserID
from homeserver.rooms.features.client_events import ClientEventSerializer
from homeserver.rooms.features.directory import RoomDirectory
from homeserver.rooms.features.history import RoomHistory
from homeserver.rooms.features.membership import FEDERATION_MISSING, MembershipService
from homeserver.rooms.features.stats import RoomStatsUpdater
from homeserver.rooms.features.upgrade import RoomUpgrader
from homeserver.rooms.features.visibility import HistoryVisibility
from homeserver.rooms.rules.creation import initial_room_events
from homeserver.rooms.rules.owned_state import CALL_MEMBER_TYPES, check_call_member_key
from homeserver.rooms.rules.transactions import redact_endpoint, send_endpoint, txn_key

_ALIAS_LOCALPART_RE = re.compile(r"^[^\s:#]+\Z")


@dataclasses.dataclass(frozen=True)
class Txn:
    """A client transaction: who sent it from where (``scope``), and its ID."""

    scope: str
    txn_id: str


class RoomService:
    def __init__(self, *, rooms, store, notifier, ratelimiter, server_name: str,
                 default_room_version: str, now_ms) -> None:
        self._rooms = rooms
        self._store = store
        self._ratelimiter = ratelimiter
        self._server_name = server_name
        self._default_room_version = str(default_room_version)
        self.serializer = ClientEventSerializer(now_ms)
        self.visibility = HistoryVisibility(store.streams, store.erased_users)
        self.membership = MembershipService(rooms=rooms, store=store,
                                            ratelimiter=ratelimiter, notifier=notifier,
                                            server_name=server_name)
        self.history = RoomHistory(rooms=rooms, store=store, visibility=self.visibility,
                                   serializer=self.serializer,
                                   ignored_users=self.ignored_users)
        self.directory = RoomDirectory(rooms=rooms, store=store, server_name=server_name,
                                       send_state=self.set_state)
        self.stats = RoomStatsUpdater(rooms=rooms, store=store)
        self.upgrader = RoomUpgrader(rooms=rooms, store=store, server_name=server_name,
                                     membership=self.membership, now_ms=now_ms)
        notifier.add_event_observer(self.stats.on_event)
        notifier.add_event_observer(self.membership.on_event)

    def stop(self):
        """A Deferred firing once background work (stats refreshes) is done; the
        composition root stops this service before the rooms and the database."""
        return self.stats.stop()

    # -- queries ------------------------------------------------------------------------
    async def joined_room_ids(self, user_id: str) -> list[str]:
        return [m.room_id for m in await self._store.streams.get_rooms_for_user(user_id)]

    async def membership_of(self, room_id: str, user_id: str) -> str | None:
        """The user's current membership of a local room (None: never any, or the
        room is unknown here)."""
        if not self._rooms.known(room_id):
            return None
        return await (await self._rooms.get(room_id)).membership(user_id)

    async def is_joined(self, room_id: str, user_id: str) -> bool:
        return await self.membership_of(room_id, user_id) == "join"

    async def can_see_event(self, room_id: str, user_id: str, event: PDU) -> bool:
        actor = await self._rooms.get(room_id)
        viewer = await self.visibility.viewer(actor, user_id)
        return await self.visibility.is_visible(actor, viewer, event)

    async def filter_events_for_user(self, room_id: str, user_id: str,
                                     events: Sequence[PDU]) -> list[PDU]:
        if not events:
            return []
        actor = await self._rooms.get(room_id)
        return await self.visibility.filter_events(actor, user_id, events)

    async def ignored_users(self, user_id: str) -> frozenset[str]:
        content = await self._store.account_data.get_account_data(
            user_id, "m.ignored_user_list")
        ignored = content.get("ignored_users") if isinstance(content, dict) else None
        return frozenset(ignored) if isinstance(ignored, dict) else frozenset()

    async def serialize_events(self, room_id: str, events: Sequence[PDU], *,
                               user_id: str | None = None, scope: str | None = None,
                               include_room_id: bool = True,
                               prev_content: bool = True) -> list[dict[str, Any]]:
        actor = await self._rooms.get(room_id)
        return await self.serializer.serialize(actor, events, user_id=user_id, scope=scope,
                                               include_room_id=include_room_id,
                                               prev_content=prev_content)

    async def transaction_ids(self, room_id: str, event_ids: Iterable[str], user_id: str,
                              scope: str) -> dict[str, str]:
        actor = await self._rooms.get(room_id)
        events = await actor.get_events(event_ids)
        return await actor.transaction_ids(list(events.values()), user_id, scope)

    async def stripped_state(self, room_id: str, event_id: str | None = None, *,
                             members: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Stripped state events (spec "Stripped state": create, name, avatar, topic,
        join rules, canonical alias, encryption) now, or after ``event_id``; plus the
        member events of ``members`` (e.g. the inviter)."""
        actor = await self._rooms.get(room_id)
        types: list = [t for t in STRIPPED_STATE_TYPES if t != "m.room.member"]
        types += [("m.room.member", user_id) for user_id in members]
        if event_id is None:
            state = await actor.current_state(types)
        else:
            state = await actor.state_at(event_id, after=True, types=types)
        return [strip_state_event(e) for _, e in sorted(state.items())]

    # -- writes -------------------------------------------------------------------------
    async def membership_change(self, room_id: str, sender: str, target: str,
                                membership: str, *, reason: str | None = None,
                                content: Mapping[str, Any] | None = None,
                                ratelimit: bool = False) -> str:
        return await self.membership.change(room_id, sender, target, membership,
                                            reason=reason, content=content,
                                            ratelimit=ratelimit)

    async def send_event(self, room_id: str, sender: str, event_type: str,
                         content: Mapping[str, Any], *, state_key: str | None = None,
                         txn: Txn | None = None, ratelimit: bool = False) -> str:
        """Send a message (or, with ``state_key``, a state) event; returns its ID.

        ``txn`` makes the send idempotent per device (a retry returns the first
        event's ID). ``m.room.redaction`` sent this way is a redaction (its
        ``redacts`` moves to where the room version wants it).
        """
        if not isinstance(content, Mapping):
            raise BadJson("content must be an object")
        if event_type == "m.room.create":
            raise Forbidden("m.room.create events can only be sent when creating a room")
        endpoint = send_endpoint(room_id, event_type)
        if txn is not None and ratelimit:
            # a retry is answered before the rate limit is charged: by the room, whose
            # DB holds the key with the event (the send wakes the room anyway)
            actor = await self._rooms.get(room_id)
            done = await actor.event_for_txn(txn_key(sender, txn.scope, endpoint, txn.txn_id))
            if done is not None:
                return done
        if ratelimit:
            self._ratelimiter.check("rc_message", sender)
        partial: dict[str, Any] = {"type": event_type, "sender": sender,
                                   "content": dict(content)}
        if state_key is not None:
            partial["state_key"] = state_key
            await self._check_owned_key(room_id, sender, event_type, state_key)
        if event_type == "m.room.redaction" and state_key is None:
            redacts = content.get("redacts")
            if not isinstance(redacts, str):
                raise BadJson("a redaction needs content.redacts (an event ID)")
            partial["redacts"] = redacts
        return await self._create(room_id, partial, endpoint, txn)

    async def _create(self, room_id: str, partial: dict[str, Any], endpoint: str,
                      txn: Txn | None) -> str:
        sender = partial["sender"]
        actor = await self._rooms.get(room_id)
        if txn is None:
            return (await actor.create_event(partial)).event_id
        key = txn_key(sender, txn.scope, endpoint, txn.txn_id)
        # a retry is answered inside the room (RoomWriter.create_local): its DB holds
        # the key with the event, written in the event's own transaction
        return (await actor.create_event(partial, txn_key=key)).event_id

    async def set_state(self, room_id: str, sender: str, event_type: str, state_key: str,
                        content: Mapping[str, Any], *, is_guest: bool = False) -> str:
        """PUT /rooms/{roomId}/state/{eventType}/{stateKey}: returns the event ID.

        Identical content to the current state answers with the current event (no new
        event, as Synapse does); ``m.room.member`` goes through the membership rules.
        """
        if not isinstance(content, Mapping):
            raise BadJson("content must be an object")
        if event_type == "m.room.create":
            # 400 as Synapse ("Cannot resend"; Complement
            # TestMSC4291RoomIDAsHashOfCreateEvent_CannotSendCreateEvent)
            raise InvalidParam("m.room.create events can only be sent when creating a room")
        if event_type == "m.room.member":
            membership = content.get("membership")
            if not isinstance(membership, str):
                raise BadJson("m.room.member content needs a membership")
            extra = {k: v for k, v in content.items() if k not in ("membership", "reason")}
            reason = content.get("reason")
            return await self.membership.change(
                room_id, sender, state_key, membership, reason=reason, content=extra,
                ratelimit=True, sender_is_guest=is_guest)
        actor = await self._rooms.get(room_id)
        current = (await actor.current_state([(event_type, state_key)])).get(
            (event_type, state_key))
        if current is not None and current.sender == sender \
                and dict(current.content) == dict(content):
            return current.event_id
        if event_type == "m.room.canonical_alias":
            await self.directory.check_canonical_alias(room_id, content, current)
        await self._check_owned_key(room_id, sender, event_type, state_key)
        return (await actor.create_event({"type": event_type, "sender": sender,
                                          "state_key": state_key,
                                          "content": dict(content)})).event_id

    async def _check_owned_key(self, room_id: str, sender: str, event_type: str,
                               state_key: str) -> None:
        """MatrixRTC call memberships keyed to a user are that user's
        (rooms/rules/owned_state.py); other state needs no extra read."""
        if event_type not in CALL_MEMBER_TYPES:
            return
        actor = await self._rooms.get(room_id)
        state = await actor.current_state([("m.room.create", ""), ("m.room.power_levels", "")])
        check_call_member_key(event_type, state_key, sender, state)

    async def redact(self, room_id: str, sender: str, event_id: str, *,
                     reason: str | None = None, txn: Txn | None = None) -> str:
        """PUT /rooms/{roomId}/redact/{eventId}/{txnId}: returns the redaction's ID.

        Anyone allowed to send ``m.room.redaction`` may redact their own events; the
        ``redact`` level is needed for other users' (403 otherwise).
        """
        content: dict[str, Any] = {"redacts": event_id}
        if reason is not None:
            if not isinstance(reason, str):
                raise BadJson("reason must be a string")
            content["reason"] = reason
        endpoint = redact_endpoint(room_id, event_id)
        partial = {"type": "m.room.redaction", "sender": sender, "content": content,
                   "redacts": event_id}
        return await self._create(room_id, partial, endpoint, txn)

    # -- creation -----------------------------------------------------------------------
    async def create_room(self, requester, body: Mapping[str, Any]) -> str:
        """POST /createRoom (spec: "Creation"): returns the new room's ID."""
        user_id = requester.user_id
        self._ratelimiter.check("rc_message", user_id)
        version_id = body.get("room_version", self._default_room_version)
        if not isinstance(version_id, str):
            raise BadJson("room_version must be a string")
        try:
            version = get_room_version(version_id)
        except UnsupportedRoomVersion:
            raise UnsupportedRoomVersionError(
                f"This server does not support room version {version_id!r}") from None
        for key, kind in (("is_direct", bool), ("invite_3pid", list), ("name", str),
                          ("topic", str), ("room_alias_name", str), ("preset", str)):
            if body.get(key) is not None and not isinstance(body[key], kind) \
                    or isinstance(body.get(key), bool) and kind is not bool:
                raise BadJson(f"{key} has the wrong type")
        if body.get("invite_3pid"):
            raise InvalidParam("invite_3pid is not supported: this server has no "
                               "identity server integration")
        invitees = self._parse_invitees(body.get("invite"), user_id)
        alias = await self._free_alias(body.get("room_alias_name"))
        profile = await self._store.accounts.get_profile(user_id)
        partials = initial_room_events(
            version, user_id, body, alias=alias,
            creator_profile=None if profile is None else {
                "displayname": profile.displayname, "avatar_url": profile.avatar_url})
        try:
            room_id, _ = await self._rooms.create_room(
                user_id, version.identifier, partials,
                is_public=body.get("visibility") == "public")
        except AuthError as e:
            raise InvalidRoomState(f"the initial state is not allowed: {e.message}") from None
        if alias is not None and not await self._store.rooms.create_alias(
                alias, room_id, [self._server_name], user_id):
            raise RoomInUse(f"Room alias {alias} was taken while the room was created")
        direct = {"is_direct": True} if body.get("is_direct") else None
        for invitee in invitees:
            await self.membership.change(room_id, user_id, invitee, "invite",
                                         content=direct, ratelimit=False)
        return room_id

    def _parse_invitees(self, invite: Any, creator: str) -> list[str]:
        if invite is None:
            return []
        if not isinstance(invite, list) or not all(isinstance(u, str) for u in invite):
            raise BadJson("invite must be a list of user IDs")
        invitees = []
        for user_id in invite:
            parsed = UserID.parse(user_id)
            if parsed.domain != self._server_name:
                raise MatrixError(f"cannot invite {user_id}: {FEDERATION_MISSING}",
                                  errcode="M_UNKNOWN", status=400)
            if user_id != creator and user_id not in invitees:
                invitees.append(user_id)
        return invitees

    async def _free_alias(self, localpart: Any) -> str | None:
        if localpart is None:
            return None
        if not isinstance(localpart, str) or not _ALIAS_LOCALPART_RE.match(localpart):
            raise InvalidParam("room_alias_name must be a localpart without ':', '#' or "
                               "whitespace")
        try:
            alias = RoomAlias.parse(f"#{localpart}:{self._server_name}").to_string()
        except InvalidId as e:
            raise InvalidParam(f"invalid room_alias_name: {e.message}") from None
        if await self._store.rooms.get_alias(alias) is not None:
            raise RoomInUse("Room alias already taken")
        return alias
