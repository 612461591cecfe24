"""The authorization rules for room events, room versions 3-12.

Pure: events and state in, ``None`` or ``AuthError`` out. Rule numbers in comments
follow the room v12 text (spec: Room Versions, rooms/v12 "Authorisation rules"); the
version flags say where older versions differ (v3 fragment "v3-auth-rules", v6-v11
pages). "Auth events selection" is in the server-server API.

The rules are split the way the federation checks use them:

* ``check_state_independent_auth``: rules about the event's *own* ``auth_events``
  list (duplicates, selection, rejected entries, room IDs) and the create event.
* ``check_auth_rules``: every rule, evaluated against a state map. The map is the
  event's auth events, the state before the event, or the current state (checks 4-6
  on receipt of a PDU), or the partial state during state resolution. In v12 rooms
  the map must contain the create event although events no longer list it: callers
  look it up by ``implied_create_event_id``.

Signatures are not checked here except the one the rules compute themselves
(``third_party_invite.signed``). v8+'s "validly signed by the authorising server"
rule for restricted joins needs the server's keys, so it runs only if the caller
passes ``is_signed_by``; otherwise the caller must have required that signature when
it checked the event's signatures.

Rule 10 (power levels changes) lives in ``power_levels.check_power_levels_change``,
beside the code that reads levels, so that the client API can pre-check a change.

Redactions (v3+) are authorised like any other event by the send level of
``m.room.redaction``; the redact level and the "same server" allowance decide only
whether the redaction is *applied* (``redaction_applies``, spec "Handling
redactions"), which happens once both events are known.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable, Mapping, Sequence

import canonicaljson
import nacl.exceptions
import nacl.signing

from homeserver.errors import AuthError
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.ids import InvalidId, UserID
from homeserver.rooms.rules import power_levels as pl
from homeserver.rooms.rules.power_levels import CREATE_KEY, POWER_LEVELS_KEY, StateMap

JOIN_RULES_KEY = ("m.room.join_rules", "")

#: (event, server name) -> is the event validly signed by that server?
SignatureCheck = Callable[[PDU, str], bool]


def _default_is_rejected(event: PDU) -> bool:
    return bool(event.internal_metadata.get("rejected"))


def _event_id_server(event_id: str) -> str | None:
    """The server of a room v1/v2 event ID (``$opaque:server``)."""
    _, sep, server = event_id.partition(":")
    return server if sep else None


def _server_of(user_id: Any) -> str | None:
    try:
        return UserID.parse(user_id).domain
    except InvalidId:
        return None


def implied_create_event_id(room_version: RoomVersion, room_id: str) -> str | None:
    """v12 (MSC4291): the create event's ID is the room ID with sigil ``$``; else None."""
    if not room_version.room_id_from_create_event or not isinstance(room_id, str) \
            or not room_id.startswith("!"):
        return None
    return "$" + room_id[1:]


# -- auth events selection ----------------------------------------------------------

def auth_types_for_event(room_version: RoomVersion, event_type: str, sender: str,
                         state_key: str | None, content: Mapping[str, Any]
                         ) -> set[tuple[str, str]]:
    """The state keys an event's ``auth_events`` should cite.

    Spec: server-server API, "Auth events selection". The create event cites nothing;
    in v12 no event cites the create event (it is implied by the room ID).
    """
    if event_type == "m.room.create":
        return set()
    keys: set[tuple[str, str]] = {POWER_LEVELS_KEY, ("m.room.member", sender)}
    if not room_version.room_id_from_create_event:
        keys.add(CREATE_KEY)
    if event_type == "m.room.member" and isinstance(state_key, str):
        keys.add(("m.room.member", state_key))
        membership = content.get("membership")
        if membership in ("join", "invite", "knock"):
            keys.add(JOIN_RULES_KEY)
        if membership == "invite":
            tpi = content.get("third_party_invite")
            signed = tpi.get("signed") if isinstance(tpi, Mapping) else None
            token = signed.get("token") if isinstance(signed, Mapping) else None
            if isinstance(token, str):
                keys.add(("m.room.third_party_invite", token))
        if membership == "join" and room_version.restricted_join_rule:
            authoriser = content.get("join_authorised_via_users_server")
            if isinstance(authoriser, str):
                keys.add(("m.room.member", authoriser))
    return keys


# -- state-independent rules ----------------------------------------------------------

def _check_create(room_version: RoomVersion, event: PDU) -> None:
    """Rule 1: the create event is authorised by its own content."""
    if event.prev_event_ids:
        raise AuthError("create event has prev_events")
    if room_version.room_id_from_create_event:
        # MSC4291: the room ID is derived from this event, so it may not carry one
        if "room_id" in event.get_dict():
            raise AuthError("create event must not have a room_id in this room version")
    else:
        room_id = event.get("room_id")
        room_server = room_id.partition(":")[2] if isinstance(room_id, str) else None
        if room_server != _server_of(event.sender):
            raise AuthError("create event's room_id is not on the sender's server")
    content = event.content
    if "room_version" in content and not (isinstance(content["room_version"], str)
                                          and content["room_version"] in KNOWN_ROOM_VERSIONS):
        raise AuthError("create event names an unknown room version")
    if not room_version.implicit_room_creator and "creator" not in content:
        raise AuthError("create event has no creator")
    if room_version.privileged_creators and "additional_creators" in content:
        extra = content["additional_creators"]
        # MSC4289: the same user ID validation as is applied to the sender
        if not isinstance(extra, list) or any(_server_of(u) is None for u in extra):
            raise AuthError("additional_creators must be a list of user IDs")


def check_state_independent_auth(
        room_version: RoomVersion, event: PDU, auth_events: Sequence[PDU], *,
        is_rejected: Callable[[PDU], bool] = _default_is_rejected) -> None:
    """Rules that look only at the event and the events its ``auth_events`` cite.

    ``auth_events`` are the events named by ``event.auth_event_ids`` (the caller
    fetched them; a missing one should fail the event before this). Checks rule 1
    for create events and rules 3.1-3.5 (v3-v11: 2.1-2.5) for the others:
    duplicates, entries outside the auth events selection, rejected entries, the
    create event's presence (before v12) and matching room IDs.
    """
    if event.type == "m.room.create":
        _check_create(room_version, event)
        return
    cited = list(event.auth_event_ids)
    if len(cited) != len(set(cited)):
        raise AuthError("auth_events names an event twice")
    if {e.event_id for e in auth_events} != set(cited):
        raise AuthError("the given auth events are not the ones the event names")
    allowed = auth_types_for_event(room_version, event.type, event.sender,
                                   event.state_key, event.content)
    seen: set[tuple[str, str]] = set()
    for auth_event in auth_events:
        key = (auth_event.type, auth_event.state_key)
        if key in seen:
            raise AuthError(f"duplicate auth event for {key}")
        seen.add(key)
        if key not in allowed:
            raise AuthError(f"auth event {auth_event.event_id} {key} is not allowed here")
        if is_rejected(auth_event):
            raise AuthError(f"auth event {auth_event.event_id} was rejected")
        if auth_event.room_id != event.room_id:
            raise AuthError(f"auth event {auth_event.event_id} is in another room")
    if not room_version.room_id_from_create_event and CREATE_KEY not in seen:
        raise AuthError("no create event in auth_events")


# -- the full rules, against a state map ----------------------------------------------

def check_auth_rules(room_version: RoomVersion, event: PDU,
                     auth_events: Mapping[tuple[str, str], PDU], *,
                     is_signed_by: SignatureCheck | None = None) -> None:
    """Raise ``AuthError`` unless ``event`` is allowed given the state ``auth_events``.

    Spec: rooms/v1 .. rooms/v12, "Authorisation rules". ``auth_events`` maps
    ``(type, state_key)`` to the events to judge by; it must include the create
    event (also in v12) and no rejected events: the caller knows which events were
    rejected. ``is_signed_by(event, server)`` answers rule 5.2.1 (v8+
    ``join_authorised_via_users_server`` signature); None means the caller has
    verified it with the event's other signatures.
    """
    if not isinstance(event.content, Mapping):
        # the event-format check drops these; never let one crash a resolution
        raise AuthError("event content is not an object")
    # Rule 1: the create event needs no state.
    if event.type == "m.room.create":
        _check_create(room_version, event)
        return

    create = auth_events.get(CREATE_KEY)
    if create is None:
        raise AuthError("no create event in the room state")
    # Rule 2 (v12): the room ID names the create event. Earlier versions' rule 2.5
    # (auth events in the same room) gives the same for the create event.
    if create.room_id != event.room_id:
        raise AuthError("event's room_id does not match the room's create event")
    for auth_event in auth_events.values():
        if auth_event.room_id != event.room_id:
            raise AuthError(f"auth event {auth_event.event_id} is in another room")

    # Rule 4: m.federate = false keeps out other servers' users.
    if create.content.get("m.federate", True) is False \
            and _server_of(event.sender) != _server_of(create.sender):
        raise AuthError("room is not federated and sender is on another server")

    # v3-v5 rule 4: aliases are vouched for by the server named in the state key.
    if room_version.special_case_aliases_auth and event.type == "m.room.aliases":
        if not event.is_state():
            raise AuthError("m.room.aliases event has no state_key")
        if event.state_key != _server_of(event.sender):
            raise AuthError("m.room.aliases state_key is not the sender's server")
        return

    # Rule 5: membership changes have their own rules.
    if event.type == "m.room.member":
        _check_membership(room_version, event, auth_events, is_signed_by)
        return

    # Rule 6: everything else needs the sender to be in the room.
    if _membership(auth_events, event.sender) != "join":
        raise AuthError(f"{event.sender} is not in the room")

    sender_level = pl.user_power_level(event.sender, auth_events)

    # Rule 7: third-party invites need the invite level.
    if event.type == "m.room.third_party_invite":
        if sender_level < pl.invite_level(auth_events):
            raise AuthError(f"{event.sender} may not invite users")
        return

    # Rule 8: the event type's required power level.
    required = pl.required_power_for_event(event.type, event.is_state(), auth_events)
    if sender_level < required:
        raise AuthError(f"{event.sender} needs power level {required} to send {event.type}")

    # Rule 9: state keys naming a user belong to that user.
    state_key = event.state_key
    if isinstance(state_key, str) and state_key.startswith("@") \
            and state_key != event.sender:
        raise AuthError("state_key names another user")

    # Rule 10: power level changes.
    if event.type == "m.room.power_levels":
        pl.check_power_levels_change(room_version, event.sender, event.content,
                                     auth_events, sender_level)

    # v1-v2 rule 11: a redaction needs the redact level, or to come from the server
    # of the event it redacts (both event IDs carry their server).
    if room_version.redaction_auth_rule and event.type == "m.room.redaction":
        if sender_level >= pl.redact_level(auth_events):
            return
        redacts = event.redacts
        if not isinstance(redacts, str) or \
                _event_id_server(redacts) != _event_id_server(event.event_id):
            raise AuthError(f"{event.sender} may not redact this event")


def _membership(state: StateMap, user_id: Any) -> str:
    """``user_id``'s current membership, "leave" if there is none."""
    if not isinstance(user_id, str):
        return "leave"
    member = state.get(("m.room.member", user_id))
    if member is None:
        return "leave"
    membership = member.content.get("membership")
    return membership if isinstance(membership, str) else "leave"


def _join_rule(state: StateMap) -> str:
    # No join_rules event, or no join_rule in it: "invite" (as Synapse reads it; an
    # invited user can always join). A value that is no string matches no rule.
    event = state.get(JOIN_RULES_KEY)
    rule = event.content.get("join_rule", "invite") if event is not None else "invite"
    return rule if isinstance(rule, str) else "<invalid>"


def _check_membership(room_version: RoomVersion, event: PDU, state: StateMap,
                      is_signed_by: SignatureCheck | None) -> None:
    """Rule 5 (v3-v11: 4/5): ``m.room.member`` events."""
    target = event.state_key
    membership = event.content.get("membership")
    # 5.1
    if not isinstance(target, str) or not isinstance(membership, str):
        raise AuthError("member event needs a state_key and a membership")

    # 5.2 (v8+): the authorising server must have signed the join.
    authoriser = event.content.get("join_authorised_via_users_server")
    if room_version.restricted_join_rule and "join_authorised_via_users_server" \
            in event.content:
        server = _server_of(authoriser)
        if server is None:
            raise AuthError("join_authorised_via_users_server is not a user ID")
        if is_signed_by is not None and not is_signed_by(event, server):
            raise AuthError(f"join is not signed by the authorising server {server}")

    sender = event.sender
    sender_membership = _membership(state, sender)
    target_membership = _membership(state, target)
    join_rule = _join_rule(state)
    create = state[CREATE_KEY]

    if membership == "join":
        # 5.3.1: the creator's own join right after the create event.
        prevs = event.prev_event_ids
        creator = create.sender if room_version.implicit_room_creator \
            else create.content.get("creator")
        if len(prevs) == 1 and prevs[0] == create.event_id and target == creator:
            return
        if sender != target:                                            # 5.3.2
            raise AuthError("cannot make another user join")
        if target_membership == "ban":                                  # 5.3.3
            raise AuthError(f"{target} is banned")
        if join_rule == "invite" or (join_rule == "knock" and room_version.knock_join_rule):
            if target_membership in ("invite", "join"):                 # 5.3.4
                return
            raise AuthError(f"{target} is not invited")
        if (join_rule == "restricted" and room_version.restricted_join_rule) or \
                (join_rule == "knock_restricted" and room_version.knock_restricted_join_rule):
            if target_membership in ("invite", "join"):                 # 5.3.5.1
                return
            # 5.3.5.2: a joined member able to invite vouched for the join
            if _membership(state, authoriser) != "join" or \
                    pl.user_power_level(authoriser, state) < pl.invite_level(state):
                raise AuthError("join is not authorised by a member able to invite")
            return
        if join_rule == "public":                                       # 5.3.6
            return
        raise AuthError(f"join rule {join_rule!r} does not allow joining")   # 5.3.7

    if membership == "invite":
        if "third_party_invite" in event.content:                       # 5.4.1
            if target_membership == "ban":
                raise AuthError(f"{target} is banned")
            _check_third_party_invite(event, state)
            return
        if sender_membership != "join":                                 # 5.4.2
            raise AuthError(f"{sender} is not in the room")
        if target_membership in ("join", "ban"):                        # 5.4.3
            raise AuthError(f"{target} is already {target_membership}")
        if pl.user_power_level(sender, state) >= pl.invite_level(state):   # 5.4.4
            return
        raise AuthError(f"{sender} may not invite users")

    if membership == "leave":
        if sender == target:                                            # 5.5.1
            may_leave = ("invite", "join", "knock") if room_version.knock_join_rule \
                else ("invite", "join")
            if target_membership in may_leave:
                return
            raise AuthError(f"{target} cannot leave from {target_membership!r}")
        if sender_membership != "join":                                 # 5.5.2
            raise AuthError(f"{sender} is not in the room")
        sender_level = pl.user_power_level(sender, state)
        if target_membership == "ban" and sender_level < pl.ban_level(state):   # 5.5.3
            raise AuthError(f"{sender} may not unban users")
        if sender_level >= pl.kick_level(state) \
                and pl.user_power_level(target, state) < sender_level:  # 5.5.4
            return
        raise AuthError(f"{sender} may not kick {target}")

    if membership == "ban":
        if sender_membership != "join":                                 # 5.6.1
            raise AuthError(f"{sender} is not in the room")
        sender_level = pl.user_power_level(sender, state)
        if sender_level >= pl.ban_level(state) \
                and pl.user_power_level(target, state) < sender_level:  # 5.6.2
            return
        raise AuthError(f"{sender} may not ban {target}")

    if membership == "knock" and room_version.knock_join_rule:          # 5.7 (v7+)
        knockable = ("knock", "knock_restricted") if room_version.knock_restricted_join_rule \
            else ("knock",)
        if join_rule not in knockable:
            raise AuthError(f"join rule {join_rule!r} does not allow knocking")
        if sender != target:
            raise AuthError("cannot knock on behalf of another user")
        if sender_membership not in ("ban", "invite", "join"):
            return
        raise AuthError(f"{sender} cannot knock from {sender_membership!r}")

    raise AuthError(f"unknown membership {membership!r}")              # 5.8


def _decode_base64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None


def _third_party_public_keys(tpi_event: PDU) -> list[bytes]:
    content = tpi_event.content
    candidates = [content.get("public_key")]
    public_keys = content.get("public_keys")
    if isinstance(public_keys, list):
        candidates.extend(k.get("public_key") for k in public_keys if isinstance(k, Mapping))
    keys = [_decode_base64(k) for k in candidates]
    return [k for k in keys if k is not None and len(k) == 32]


def _signed_block_verifies(signed: Mapping[str, Any], public_keys: Sequence[bytes]) -> bool:
    """True if any ed25519 signature in ``signed`` verifies under any of the keys."""
    signatures = signed.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    unsigned = {k: v for k, v in signed.items() if k not in ("signatures", "unsigned")}
    try:
        message = canonicaljson.encode_canonical_json(unsigned)
    except (TypeError, ValueError):
        return False
    for by_key in signatures.values():
        if not isinstance(by_key, Mapping):
            continue
        for key_id, signature in by_key.items():
            if not isinstance(key_id, str) or not key_id.startswith("ed25519:"):
                continue
            raw = _decode_base64(signature)
            if raw is None or len(raw) != 64:
                continue
            for key in public_keys:
                try:
                    nacl.signing.VerifyKey(key).verify(message, raw)
                    return True
                except nacl.exceptions.BadSignatureError:
                    continue
    return False


def _check_third_party_invite(event: PDU, state: StateMap) -> None:
    """Rules 5.4.1.2-5.4.1.8: an invite that redeems an ``m.room.third_party_invite``."""
    tpi = event.content.get("third_party_invite")
    signed = tpi.get("signed") if isinstance(tpi, Mapping) else None
    if not isinstance(signed, Mapping):
        raise AuthError("third_party_invite has no signed block")
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError("third_party_invite.signed needs mxid and token")
    if mxid != event.state_key:
        raise AuthError("third_party_invite is for another user")
    tpi_event = state.get(("m.room.third_party_invite", token))
    if tpi_event is None:
        raise AuthError("no m.room.third_party_invite matches the token")
    if tpi_event.sender != event.sender:
        raise AuthError("third_party_invite redeemed by someone other than its sender")
    if not _signed_block_verifies(signed, _third_party_public_keys(tpi_event)):
        raise AuthError("third_party_invite signature does not verify")


# -- handling redactions --------------------------------------------------------------

def redaction_applies(redaction: PDU, original: PDU, state: StateMap) -> bool:
    """Spec "Handling redactions" (v3+): apply an authorised redaction to ``original``?

    Yes if the redaction's sender reaches the redact level in ``state``, or is on the
    same server as the original event's sender.
    """
    if pl.user_power_level(redaction.sender, state) >= pl.redact_level(state):
        return True
    return _server_of(redaction.sender) == _server_of(original.sender)


__all__ = [
    "auth_types_for_event", "check_auth_rules", "check_state_independent_auth",
    "implied_create_event_id", "redaction_applies",
]
