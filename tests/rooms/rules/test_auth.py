"""Tests for homeserver.rooms.rules.auth: the authorization rules of room versions 3-12.

Each ``*Tests`` mixin runs once per room version it applies to (the subclasses at
the bottom), so a rule is shown to hold in every version that has it.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import canonicaljson
import nacl.signing
from twisted.trial import unittest

from homeserver.errors import AuthError
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from homeserver.rooms.rules.auth import (
    auth_types_for_event, check_auth_rules, check_state_independent_auth,
    implied_create_event_id, redaction_applies)

ALICE, BOB, CAROL, DAVE = "@alice:a.test", "@bob:b.test", "@carol:c.test", "@dave:d.test"
_counter = itertools.count()


class Room:
    """A room under construction: builds events citing the current state as auth."""

    def __init__(self, version: str, creator: str = ALICE,
                 create_content: dict | None = None) -> None:
        self.version: RoomVersion = KNOWN_ROOM_VERSIONS[version]
        self.state: dict[tuple[str, str], PDU] = {}
        self.last: str | None = None
        content = {"room_version": version, **(create_content or {})}
        if not self.version.implicit_room_creator:
            content.setdefault("creator", creator)
        body: dict[str, Any] = {"type": "m.room.create", "sender": creator,
                                "content": content, "state_key": "", "prev_events": [],
                                "auth_events": [], "depth": 1, "origin_server_ts": 0}
        create_id = f"$create{next(_counter)}"
        if self.version.room_id_from_create_event:
            self.room_id = "!" + create_id[1:]
        else:
            self.room_id = f"!room{next(_counter)}:{creator.split(':')[1]}"
            body["room_id"] = self.room_id
        self.create = PDU(self.version, body, create_id)
        check_auth_rules(self.version, self.create, {})
        self._apply(self.create)

    def _apply(self, event: PDU) -> None:
        if event.is_state():
            self.state[event.state_pair] = event
        self.last = event.event_id

    def auth_map(self, event: PDU) -> dict[tuple[str, str], PDU]:
        """The state the rules see: the selected auth events, plus create in v12."""
        keys = auth_types_for_event(self.version, event.type, event.sender,
                                    event.state_key, event.content)
        keys.add(("m.room.create", ""))
        return {k: self.state[k] for k in keys if k in self.state}

    def build(self, type_: str, sender: str, content: dict, state_key: str | None = None,
              prev: list[str] | None = None, **extra: Any) -> PDU:
        body: dict[str, Any] = {"type": type_, "sender": sender, "content": content,
                                "room_id": self.room_id, "depth": 2,
                                "origin_server_ts": next(_counter),
                                "prev_events": [self.last] if prev is None else prev}
        if state_key is not None:
            body["state_key"] = state_key
        body.update(extra)
        auth = auth_types_for_event(self.version, type_, sender, state_key, content)
        body["auth_events"] = [self.state[k].event_id for k in sorted(auth) if k in self.state]
        if self.version.event_format_v1:  # rooms v1/v2 cite (ID, hashes) pairs
            for key in ("prev_events", "auth_events"):
                body[key] = [[e, {"sha256": "h"}] for e in body[key]]
        return PDU(self.version, body, f"$e{next(_counter)}")

    def check(self, event: PDU) -> None:
        check_auth_rules(self.version, event, self.auth_map(event))

    def send(self, type_: str, sender: str, content: dict, state_key: str | None = None,
             **extra: Any) -> PDU:
        """Build, check (raising AuthError) and apply an event."""
        event = self.build(type_, sender, content, state_key, **extra)
        self.check(event)
        self._apply(event)
        return event

    def member(self, sender: str, target: str, membership: str, **content: Any) -> PDU:
        return self.send("m.room.member", sender, {"membership": membership, **content},
                         target)

    def force(self, type_: str, sender: str, content: dict, state_key: str = "") -> PDU:
        """Put an event into the state without checking it (test set-up only)."""
        event = self.build(type_, sender, content, state_key)
        self._apply(event)
        return event


def standard_room(version: str, join_rule: str = "public", users: dict | None = None,
                  **power: Any) -> Room:
    """Alice creates and joins; power levels give her 100 (v12: she is the creator)."""
    room = Room(version)
    room.member(ALICE, ALICE, "join")
    levels = dict(users or {})
    if not room.version.privileged_creators:
        levels.setdefault(ALICE, 100)
    room.send("m.room.power_levels", ALICE, {"users": levels, **power}, "")
    room.send("m.room.join_rules", ALICE, {"join_rule": join_rule}, "")
    return room


class _Base:
    VERSION = "11"

    def room(self, *args: Any, **kwargs: Any) -> Room:
        return standard_room(self.VERSION, *args, **kwargs)

    @property
    def rv(self) -> RoomVersion:
        return KNOWN_ROOM_VERSIONS[self.VERSION]


class CommonRulesTests(_Base):
    """Rules every supported version shares."""

    def test_create_then_creator_join(self) -> None:
        """The creator may join right after the create event."""
        room = Room(self.VERSION)
        room.member(ALICE, ALICE, "join")

    def test_other_user_cannot_take_creator_join(self) -> None:
        """Only the creator gets the join-after-create allowance."""
        room = Room(self.VERSION)
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")

    def test_create_with_prev_events_rejected(self) -> None:
        """A create event may not have prev_events."""
        room = Room(self.VERSION)
        body = dict(room.create.get_dict(), prev_events=["$x"])
        event = PDU(room.version, body, "$create-with-prev")
        self.assertRaises(AuthError, check_auth_rules, room.version, event, {})

    def test_create_with_unknown_room_version_rejected(self) -> None:
        """content.room_version must name a known version."""
        room = Room(self.VERSION)
        body = dict(room.create.get_dict(), content=dict(room.create.content,
                                                         room_version="999"))
        event = PDU(room.version, body, "$create-999")
        self.assertRaises(AuthError, check_auth_rules, room.version, event, {})

    def test_no_create_event_rejected(self) -> None:
        """Every other event needs the create event in its auth state."""
        room = self.room()
        event = room.build("m.room.message", ALICE, {"body": "hi"})
        auth = room.auth_map(event)
        del auth[("m.room.create", "")]
        self.assertRaises(AuthError, check_auth_rules, room.version, event, auth)

    def test_public_join(self) -> None:
        """Anyone may join a public room."""
        room = self.room("public")
        room.member(BOB, BOB, "join")

    def test_join_for_someone_else_rejected(self) -> None:
        """The sender of a join must be the joining user."""
        room = self.room("public")
        self.assertRaises(AuthError, room.member, ALICE, BOB, "join")

    def test_invite_only_join(self) -> None:
        """An invite-only room admits the invited only."""
        room = self.room("invite")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")
        room.member(ALICE, BOB, "invite")
        room.member(BOB, BOB, "join")

    def test_missing_join_rules_means_invite(self) -> None:
        """Without a join_rules event the room behaves as invite-only."""
        room = Room(self.VERSION)
        room.member(ALICE, ALICE, "join")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")

    def test_invalid_join_rule_admits_nobody(self) -> None:
        """A join_rule that is not a string admits even invited users to nothing."""
        room = self.room("public")
        room.member(ALICE, BOB, "invite")
        room.send("m.room.join_rules", ALICE, {"join_rule": 7}, "")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")

    def test_private_join_rule_rejected(self) -> None:
        """An unknown join rule ("private") admits nobody new."""
        room = self.room("private")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")

    def test_banned_cannot_join(self) -> None:
        """A banned user cannot join even a public room."""
        room = self.room("public")
        room.member(ALICE, BOB, "ban")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")

    def test_invite_needs_membership_and_level(self) -> None:
        """Inviting needs to be joined and at the invite level."""
        room = self.room("public", invite=50)
        room.member(BOB, BOB, "join")
        self.assertRaises(AuthError, room.member, BOB, CAROL, "invite")
        self.assertRaises(AuthError, room.member, DAVE, CAROL, "invite")
        room.member(ALICE, CAROL, "invite")

    def test_cannot_invite_joined_or_banned(self) -> None:
        """A joined or banned user cannot be invited."""
        room = self.room("public")
        room.member(BOB, BOB, "join")
        self.assertRaises(AuthError, room.member, ALICE, BOB, "invite")
        room.member(ALICE, CAROL, "ban")
        self.assertRaises(AuthError, room.member, ALICE, CAROL, "invite")

    def test_leave_own(self) -> None:
        """Joined and invited users may leave; others may not."""
        room = self.room("public")
        room.member(BOB, BOB, "join")
        room.member(BOB, BOB, "leave")
        self.assertRaises(AuthError, room.member, BOB, BOB, "leave")
        room.member(ALICE, CAROL, "invite")
        room.member(CAROL, CAROL, "leave")

    def test_kick_needs_level_above_target(self) -> None:
        """Kicking needs the kick level and a level above the target's."""
        room = self.room("public", users={BOB: 50, CAROL: 50})
        for user in (BOB, CAROL, DAVE):
            room.member(user, user, "join")
        self.assertRaises(AuthError, room.member, BOB, CAROL, "leave")
        self.assertRaises(AuthError, room.member, DAVE, CAROL, "leave")
        room.member(BOB, DAVE, "leave")
        room.member(ALICE, CAROL, "leave")

    def test_kicker_must_be_joined(self) -> None:
        """A user not in the room cannot kick."""
        room = self.room("public", users={BOB: 50})
        room.member(CAROL, CAROL, "join")
        self.assertRaises(AuthError, room.member, BOB, CAROL, "leave")

    def test_ban_rules(self) -> None:
        """Banning needs the ban level and a level above the target's."""
        room = self.room("public", users={BOB: 60}, ban=60)
        room.member(BOB, BOB, "join")
        room.member(CAROL, CAROL, "join")
        self.assertRaises(AuthError, room.member, CAROL, DAVE, "ban")
        room.member(BOB, DAVE, "ban")
        self.assertRaises(AuthError, room.member, BOB, ALICE, "ban")

    def test_unban_needs_ban_level(self) -> None:
        """Unbanning (leave over ban) needs the ban level as well as the kick level."""
        room = self.room("public", users={BOB: 50}, kick=50, ban=75)
        room.member(BOB, BOB, "join")
        room.member(ALICE, CAROL, "ban")
        self.assertRaises(AuthError, room.member, BOB, CAROL, "leave")
        room.member(ALICE, CAROL, "leave")

    def test_unknown_membership_rejected(self) -> None:
        """A membership value outside the spec is rejected."""
        room = self.room("public")
        self.assertRaises(AuthError, room.member, ALICE, ALICE, "dance")

    def test_member_event_needs_membership(self) -> None:
        """A member event without content.membership is rejected."""
        room = self.room("public")
        self.assertRaises(AuthError, room.send, "m.room.member", ALICE, {}, BOB)

    def test_non_member_cannot_send(self) -> None:
        """Only joined users send ordinary events."""
        room = self.room("public")
        self.assertRaises(AuthError, room.send, "m.room.message", BOB, {"body": "x"})
        room.member(BOB, BOB, "join")
        room.send("m.room.message", BOB, {"body": "x"})

    def test_state_needs_state_default(self) -> None:
        """State events need state_default unless events says otherwise."""
        room = self.room("public", events={"m.room.topic": 0})
        room.member(BOB, BOB, "join")
        self.assertRaises(AuthError, room.send, "m.room.name", BOB, {"name": "x"}, "")
        room.send("m.room.topic", BOB, {"topic": "x"}, "")

    def test_user_state_key_owned_by_user(self) -> None:
        """A state key starting with @ may be set only by that user."""
        room = self.room("public", state_default=0)
        room.member(BOB, BOB, "join")
        room.send("m.custom", BOB, {}, BOB)
        self.assertRaises(AuthError, room.send, "m.custom", BOB, {}, ALICE)

    def test_third_party_invite_event_needs_invite_level(self) -> None:
        """m.room.third_party_invite needs the invite level, not state_default."""
        room = self.room("public", invite=10, state_default=100)
        room.member(BOB, BOB, "join")
        self.assertRaises(AuthError, room.send, "m.room.third_party_invite", BOB,
                          {"public_key": "x"}, "tok")
        room.send("m.room.power_levels", ALICE, {
            "users": {BOB: 10, **self._alice()}, "invite": 10, "state_default": 100}, "")
        room.send("m.room.third_party_invite", BOB, {"public_key": "x"}, "tok")

    def _alice(self) -> dict:
        return {} if self.rv.privileged_creators else {ALICE: 100}

    def test_redaction_authorised_by_send_level_only(self) -> None:
        """A redaction needs only the m.room.redaction send level, not the redact level."""
        room = self.room("public", redact=100)
        room.member(BOB, BOB, "join")
        extra = {"content": {"redacts": "$x"}} if self.rv.redacts_in_content \
            else {"redacts": "$x"}
        room.send("m.room.redaction", BOB, extra.pop("content", {}), **extra)

    def test_not_federated_room(self) -> None:
        """m.federate=false keeps users of other servers out."""
        room = Room(self.VERSION, create_content={"m.federate": False})
        room.member(ALICE, ALICE, "join")
        room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")
        room.member("@alice2:a.test", "@alice2:a.test", "join")

    def test_content_must_be_an_object(self) -> None:
        """An event whose content is not an object is rejected, not a crash."""
        room = self.room("public")
        self.assertRaises(AuthError, room.send, "m.room.topic", ALICE, ["x"], "")

    def test_auth_event_from_other_room_rejected(self) -> None:
        """Auth state from another room is rejected."""
        room, other = self.room("public"), self.room("public")
        event = room.build("m.room.message", ALICE, {"body": "x"})
        auth = room.auth_map(event)
        auth[("m.room.member", ALICE)] = other.state[("m.room.member", ALICE)]
        self.assertRaises(AuthError, check_auth_rules, room.version, event, auth)


class PowerLevelRulesTests(_Base):
    """Rule 10: changing m.room.power_levels."""

    def _alice(self) -> dict:
        return {} if self.rv.privileged_creators else {ALICE: 100}

    def test_cannot_promote_above_self(self) -> None:
        """A moderator cannot give anyone more than their own level."""
        room = self.room("public", users={BOB: 50}, events={"m.room.power_levels": 50})
        room.member(BOB, BOB, "join")
        base = {"events": {"m.room.power_levels": 50}}
        self.assertRaises(AuthError, room.send, "m.room.power_levels", BOB,
                          {**base, "users": {**self._alice(), BOB: 50, CAROL: 51}}, "")
        room.send("m.room.power_levels", BOB,
                  {**base, "users": {**self._alice(), BOB: 50, CAROL: 50}}, "")

    def test_cannot_demote_peer_but_self(self) -> None:
        """Users at the sender's level can't be changed, but the sender can step down."""
        room = self.room("public", users={BOB: 50, CAROL: 50},
                         events={"m.room.power_levels": 50})
        room.member(BOB, BOB, "join")
        base = {"events": {"m.room.power_levels": 50}}
        self.assertRaises(AuthError, room.send, "m.room.power_levels", BOB,
                          {**base, "users": {**self._alice(), BOB: 50, CAROL: 0}}, "")
        room.send("m.room.power_levels", BOB,
                  {**base, "users": {**self._alice(), BOB: 0, CAROL: 50}}, "")

    def test_cannot_change_levels_above_self(self) -> None:
        """Top-level and events entries above the sender's level are out of reach."""
        room = self.room("public", users={BOB: 50}, ban=80,
                         events={"m.room.power_levels": 50, "m.room.tombstone": 100})
        room.member(BOB, BOB, "join")
        users = {**self._alice(), BOB: 50}
        events = {"m.room.power_levels": 50, "m.room.tombstone": 100}
        self.assertRaises(AuthError, room.send, "m.room.power_levels", BOB,
                          {"users": users, "ban": 50, "events": events}, "")
        self.assertRaises(AuthError, room.send, "m.room.power_levels", BOB,
                          {"users": users, "ban": 80, "events": {"m.room.power_levels": 50}},
                          "")
        self.assertRaises(AuthError, room.send, "m.room.power_levels", BOB,
                          {"users": users, "ban": 80, "kick": 60, "events": events}, "")
        room.send("m.room.power_levels", BOB,
                  {"users": users, "ban": 80, "kick": 40, "events": events}, "")

    def test_invalid_user_id_rejected(self) -> None:
        """users keys must be user IDs."""
        room = self.room("public")
        self.assertRaises(AuthError, room.send, "m.room.power_levels", ALICE,
                          {"users": {**self._alice(), "not-a-user": 5}}, "")

    def test_no_previous_power_levels(self) -> None:
        """The first PL event is accepted from the creator if valid."""
        room = Room(self.VERSION)
        room.member(ALICE, ALICE, "join")
        room.send("m.room.power_levels", ALICE, {"users": {**self._alice(), BOB: 100}}, "")


class Pre10Tests(_Base):
    """v3-v9 specifics."""

    def test_stringy_levels_accepted(self) -> None:
        """Before v10 power levels may be integer strings."""
        room = self.room("public")
        room.send("m.room.power_levels", ALICE,
                  {"users": {ALICE: "100", BOB: " 50 "}, "ban": "50"}, "")
        room.member(BOB, BOB, "join")
        room.member(BOB, CAROL, "ban")

    def test_knock_unknown_before_v7(self) -> None:
        """Knocking is not a membership before v7."""
        room = self.room("knock")
        if self.rv.knock_join_rule:
            room.member(BOB, BOB, "knock")
        else:
            self.assertRaises(AuthError, room.member, BOB, BOB, "knock")


class AliasesTests(_Base):
    """v3-v5 special-case m.room.aliases."""

    def test_aliases_by_server_even_if_not_joined(self) -> None:
        """Aliases events are allowed when the state key is the sender's server."""
        room = self.room("public")
        room.send("m.room.aliases", BOB, {"aliases": ["#x:b.test"]}, "b.test")
        self.assertRaises(AuthError, room.send, "m.room.aliases", BOB, {}, "a.test")


class NoAliasesSpecialCaseTests(_Base):
    """v6+: aliases are plain state events."""

    def test_aliases_need_membership(self) -> None:
        """From v6 an aliases event needs a joined sender with the state level."""
        room = self.room("public")
        self.assertRaises(AuthError, room.send, "m.room.aliases", BOB, {}, "b.test")


class NotificationsTests(_Base):
    """v6+: notifications levels are guarded."""

    def test_cannot_lower_notifications_above_self(self) -> None:
        """A moderator cannot change notifications.room set above them."""
        room = self.room("public", users={BOB: 50}, notifications={"room": 100},
                         events={"m.room.power_levels": 50})
        room.member(BOB, BOB, "join")
        users = {} if self.rv.privileged_creators else {ALICE: 100}
        self.assertRaises(AuthError, room.send, "m.room.power_levels", BOB, {
            "users": {**users, BOB: 50}, "notifications": {"room": 0},
            "events": {"m.room.power_levels": 50}}, "")


class KnockTests(_Base):
    """v7+: knocking."""

    def test_knock_on_knock_room(self) -> None:
        """Knocks are allowed in knock rooms, then an invite lets the knocker in."""
        room = self.room("knock")
        room.member(BOB, BOB, "knock")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")
        room.member(ALICE, BOB, "invite")
        room.member(BOB, BOB, "join")

    def test_knock_rules(self) -> None:
        """No knocking on other join rules, for others, or when joined/banned."""
        self.assertRaises(AuthError, self.room("public").member, BOB, BOB, "knock")
        room = self.room("knock")
        self.assertRaises(AuthError, room.member, ALICE, BOB, "knock")
        self.assertRaises(AuthError, room.member, ALICE, ALICE, "knock")
        room.member(ALICE, CAROL, "ban")
        self.assertRaises(AuthError, room.member, CAROL, CAROL, "knock")

    def test_knocker_may_withdraw(self) -> None:
        """A knocking user may leave (rescind the knock)."""
        room = self.room("knock")
        room.member(BOB, BOB, "knock")
        room.member(BOB, BOB, "leave")


class RestrictedTests(_Base):
    """v8+: restricted joins via join_authorised_via_users_server."""

    def test_restricted_join_authorised_by_member(self) -> None:
        """A joined member with the invite level may authorise a join."""
        room = self.room("restricted")
        room.member(BOB, BOB, "join", join_authorised_via_users_server=ALICE)

    def test_restricted_join_without_authoriser_rejected(self) -> None:
        """A restricted join needs an authoriser (or an invite)."""
        room = self.room("restricted")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")
        room.member(ALICE, BOB, "invite")
        room.member(BOB, BOB, "join")

    def test_authoriser_must_be_joined_and_able_to_invite(self) -> None:
        """The authoriser must be joined and reach the invite level."""
        room = self.room("restricted", invite=50)
        room.member(ALICE, CAROL, "invite")
        room.member(CAROL, CAROL, "join")
        self.assertRaises(AuthError, room.member, BOB, BOB, "join",
                          join_authorised_via_users_server=CAROL)
        self.assertRaises(AuthError, room.member, BOB, BOB, "join",
                          join_authorised_via_users_server=DAVE)

    def test_authorising_signature_callback(self) -> None:
        """is_signed_by must confirm the authorising server's signature."""
        room = self.room("restricted")
        event = room.build("m.room.member", BOB, {
            "membership": "join", "join_authorised_via_users_server": ALICE}, BOB)
        auth = room.auth_map(event)
        self.assertIn(("m.room.member", ALICE), auth)
        check_auth_rules(room.version, event, auth, is_signed_by=lambda e, s: s == "a.test")
        self.assertRaises(AuthError, check_auth_rules, room.version, event, auth,
                          is_signed_by=lambda e, s: False)

    def test_knock_restricted(self) -> None:
        """knock_restricted allows both knocks and authorised joins (v10+ only)."""
        room = self.room("knock_restricted")
        if self.rv.knock_restricted_join_rule:
            room.member(BOB, BOB, "knock")
            room.member(CAROL, CAROL, "join", join_authorised_via_users_server=ALICE)
        else:
            self.assertRaises(AuthError, room.member, BOB, BOB, "knock")
            self.assertRaises(AuthError, room.member, CAROL, CAROL, "join",
                              join_authorised_via_users_server=ALICE)


class IntLevelsTests(_Base):
    """v10+: power levels must be integers."""

    def test_string_levels_rejected(self) -> None:
        """String values anywhere in power levels are rejected."""
        room = self.room("public")
        users = {} if self.rv.privileged_creators else {ALICE: 100}
        for bad in ({"ban": "50"}, {"events": {"m.room.name": "50"}},
                    {"notifications": {"room": "50"}}, {"users": {**users, BOB: "5"}},
                    {"events": []}, {"kick": 50.0}, {"invite": True}):
            content = {"users": users, **bad}
            self.assertRaises(AuthError, room.send, "m.room.power_levels", ALICE, content, "")


class ImplicitCreatorTests(_Base):
    """v11+: the create event's sender is the creator; content.creator is ignored."""

    def test_create_without_creator(self) -> None:
        """v11 create events need no creator; the sender may join first."""
        room = Room(self.VERSION, create_content={"creator": BOB})
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")
        room.member(ALICE, ALICE, "join")

    def test_no_power_levels_sender_has_power(self) -> None:
        """Without a PL event the create sender may send state (100 or infinite)."""
        room = Room(self.VERSION)
        room.member(ALICE, ALICE, "join")
        room.send("m.room.name", ALICE, {"name": "x"}, "")


class ExplicitCreatorTests(_Base):
    """v3-v10: content.creator is required and names the creator."""

    def test_create_needs_creator(self) -> None:
        """A create event without content.creator is rejected."""
        room = Room(self.VERSION)
        content = {k: v for k, v in room.create.content.items() if k != "creator"}
        event = PDU(room.version, dict(room.create.get_dict(), content=content), "$c")
        self.assertRaises(AuthError, check_auth_rules, room.version, event, {})

    def test_room_id_server_must_match_sender(self) -> None:
        """Before v12 the room ID's server must be the create sender's."""
        room = Room(self.VERSION)
        event = PDU(room.version, dict(room.create.get_dict(), room_id="!x:elsewhere"), "$c")
        self.assertRaises(AuthError, check_auth_rules, room.version, event, {})


class V12Tests(_Base):
    """v12: room IDs from the create event, privileged creators."""

    VERSION = "12"

    def test_create_event_must_not_have_room_id(self) -> None:
        """A v12 create event carrying a room_id is rejected."""
        room = Room("12")
        body = dict(room.create.get_dict(), room_id=room.room_id)
        event = PDU(room.version, body, room.create.event_id)
        self.assertRaises(AuthError, check_auth_rules, room.version, event, {})

    def test_room_id_must_name_create_event(self) -> None:
        """An event whose room_id is not the create event's ID is rejected."""
        room = standard_room("12")
        other = Room("12")
        event = room.build("m.room.message", ALICE, {"body": "x"})
        auth = room.auth_map(event)
        auth[("m.room.create", "")] = other.create
        self.assertRaises(AuthError, check_auth_rules, room.version, event, auth)
        self.assertEqual(implied_create_event_id(room.version, room.room_id),
                         room.create.event_id)
        self.assertIsNone(implied_create_event_id(KNOWN_ROOM_VERSIONS["11"], "!a:b"))

    def test_create_not_selected_as_auth_event(self) -> None:
        """v12 auth events selection leaves out the create event."""
        keys = auth_types_for_event(KNOWN_ROOM_VERSIONS["12"], "m.room.message", ALICE,
                                    None, {})
        self.assertNotIn(("m.room.create", ""), keys)
        room = standard_room("12")
        event = room.build("m.room.message", ALICE, {"body": "x"})
        own = [room.state[("m.room.power_levels", "")], room.state[("m.room.member", ALICE)]]
        body = dict(event.get_dict(), auth_events=[e.event_id for e in own])
        event = PDU(room.version, body, event.event_id)
        check_state_independent_auth(room.version, event, own)
        body["auth_events"] = body["auth_events"] + [room.create.event_id]
        event = PDU(room.version, body, event.event_id)
        self.assertRaises(AuthError, check_state_independent_auth, room.version, event,
                          own + [room.create])

    def test_additional_creators_validated(self) -> None:
        """additional_creators must be a list of valid user IDs."""
        for bad in ("@bob:b.test", ["bob"], [7], ["@bob"]):
            room_version = KNOWN_ROOM_VERSIONS["12"]
            body = {"type": "m.room.create", "sender": ALICE, "state_key": "",
                    "content": {"additional_creators": bad}, "prev_events": [],
                    "auth_events": []}
            event = PDU(room_version, body, "$create-bad")
            self.assertRaises(AuthError, check_auth_rules, room_version, event, {})
        Room("12", create_content={"additional_creators": [BOB, "@weird=name:x.test"]})

    def test_additional_creators_unchecked_before_v12(self) -> None:
        """Before v12 additional_creators is an ordinary, unvalidated field."""
        Room("11", create_content={"additional_creators": "nonsense"})

    def test_creators_have_infinite_power(self) -> None:
        """A creator beats any level, even 2**53-1, and can't be kicked by it."""
        room = Room("12", create_content={"additional_creators": [BOB]})
        room.member(ALICE, ALICE, "join")
        top = 2 ** 53 - 1
        room.send("m.room.power_levels", ALICE, {"users": {CAROL: top}, "kick": 0,
                                                 "ban": 0}, "")
        room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        room.member(CAROL, CAROL, "join")
        self.assertRaises(AuthError, room.member, CAROL, ALICE, "leave")
        self.assertRaises(AuthError, room.member, CAROL, ALICE, "ban")
        room.member(ALICE, CAROL, "ban")

    def test_creators_cannot_kick_each_other(self) -> None:
        """Two creators have equal (infinite) power: neither can kick the other."""
        room = Room("12", create_content={"additional_creators": [BOB]})
        room.member(ALICE, ALICE, "join")
        room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        room.member(BOB, BOB, "join")
        self.assertRaises(AuthError, room.member, ALICE, BOB, "leave")
        self.assertRaises(AuthError, room.member, BOB, ALICE, "ban")

    def test_additional_creator_can_change_anything(self) -> None:
        """An additional creator may set any level without a users entry."""
        room = Room("12", create_content={"additional_creators": [BOB]})
        room.member(ALICE, ALICE, "join")
        room.send("m.room.power_levels", ALICE,
                  {"users": {CAROL: 100}, "events": {"m.room.power_levels": 100}}, "")
        room.send("m.room.join_rules", ALICE, {"join_rule": "public"}, "")
        room.member(BOB, BOB, "join")
        room.send("m.room.power_levels", BOB,
                  {"users": {CAROL: 0}, "events": {"m.room.power_levels": 2 ** 53 - 1}}, "")

    def test_power_levels_cannot_list_creators(self) -> None:
        """Power levels naming the sender or an additional creator are rejected."""
        room = Room("12", create_content={"additional_creators": [BOB]})
        room.member(ALICE, ALICE, "join")
        for users in ({ALICE: 100}, {BOB: 0}):
            self.assertRaises(AuthError, room.send, "m.room.power_levels", ALICE,
                              {"users": users}, "")

    def test_only_sender_gets_join_after_create(self) -> None:
        """The join-after-create allowance is for the create sender only."""
        room = Room("12", create_content={"additional_creators": [BOB]})
        self.assertRaises(AuthError, room.member, BOB, BOB, "join")


class StateIndependentTests(_Base):
    """Rules on the event's own auth_events list."""

    def _event_with_auth(self, room: Room, auth: list[PDU]) -> PDU:
        event = room.build("m.room.message", ALICE, {"body": "x"})
        cited: list = [a.event_id for a in auth]
        if room.version.event_format_v1:
            cited = [[e, {"sha256": "h"}] for e in cited]
        body = dict(event.get_dict(), auth_events=cited)
        return PDU(room.version, body, event.event_id)

    def _selected(self, room: Room) -> list[PDU]:
        keys = [("m.room.power_levels", ""), ("m.room.member", ALICE)]
        if not room.version.room_id_from_create_event:
            keys.append(("m.room.create", ""))
        return [room.state[k] for k in keys]

    def test_good_auth_events(self) -> None:
        """The selected events pass."""
        room = self.room("public")
        auth = self._selected(room)
        check_state_independent_auth(room.version, self._event_with_auth(room, auth), auth)

    def test_unselected_auth_event_rejected(self) -> None:
        """An auth event outside the selection (join rules for a message) is rejected."""
        room = self.room("public")
        auth = self._selected(room) + [room.state[("m.room.join_rules", "")]]
        self.assertRaises(AuthError, check_state_independent_auth, room.version,
                          self._event_with_auth(room, auth), auth)

    def test_duplicate_keys_rejected(self) -> None:
        """Two auth events for one key are rejected."""
        room = self.room("public")
        old_pl = room.state[("m.room.power_levels", "")]
        room.send("m.room.power_levels", ALICE, dict(old_pl.content), "")
        auth = self._selected(room) + [old_pl]
        self.assertRaises(AuthError, check_state_independent_auth, room.version,
                          self._event_with_auth(room, auth), auth)

    def test_rejected_auth_event_rejected(self) -> None:
        """An auth event that was itself rejected fails the event."""
        room = self.room("public")
        auth = self._selected(room)
        auth[0].internal_metadata["rejected"] = "auth"
        try:
            self.assertRaises(AuthError, check_state_independent_auth, room.version,
                              self._event_with_auth(room, auth), auth)
        finally:
            del auth[0].internal_metadata["rejected"]

    def test_missing_create_rejected_before_v12(self) -> None:
        """Before v12 the create event must be among the auth events."""
        room = self.room("public")
        auth = [a for a in self._selected(room) if a.type != "m.room.create"]
        event = self._event_with_auth(room, auth)
        if room.version.room_id_from_create_event:
            check_state_independent_auth(room.version, event, auth)
        else:
            self.assertRaises(AuthError, check_state_independent_auth, room.version,
                              event, auth)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


class ThirdPartyInviteTests(_Base):
    """Redeeming an m.room.third_party_invite (signed by the identity server)."""

    def _setup(self) -> tuple[Room, nacl.signing.SigningKey]:
        room = self.room("invite")
        key = nacl.signing.SigningKey(b"\x01" * 32)
        room.send("m.room.third_party_invite", ALICE, {
            "display_name": "b...", "key_validity_url": "https://id.test/v",
            "public_key": _b64(bytes(key.verify_key))}, "tok")
        return room, key

    def _signed(self, key: nacl.signing.SigningKey, mxid: str = BOB,
                token: str = "tok") -> dict:
        signed = {"mxid": mxid, "token": token}
        sig = key.sign(canonicaljson.encode_canonical_json(signed)).signature
        return {**signed, "signatures": {"id.test": {"ed25519:0": _b64(sig)}}}

    def test_valid_redeem(self) -> None:
        """A correctly signed invite from the same sender is allowed."""
        room, key = self._setup()
        room.member(ALICE, BOB, "invite", third_party_invite={"signed": self._signed(key)})
        room.member(BOB, BOB, "join")

    def test_bad_signature(self) -> None:
        """A signature from another key is rejected."""
        room, _ = self._setup()
        other = nacl.signing.SigningKey(b"\x02" * 32)
        self.assertRaises(AuthError, room.member, ALICE, BOB, "invite",
                          third_party_invite={"signed": self._signed(other)})

    def test_public_keys_list(self) -> None:
        """Keys in content.public_keys are tried too."""
        room = self.room("invite")
        key = nacl.signing.SigningKey(b"\x03" * 32)
        room.send("m.room.third_party_invite", ALICE, {
            "public_key": _b64(b"\x00" * 32),
            "public_keys": [{"public_key": _b64(bytes(key.verify_key))}]}, "tok")
        room.member(ALICE, BOB, "invite", third_party_invite={"signed": self._signed(key)})

    def test_mismatches_rejected(self) -> None:
        """Wrong mxid, unknown token, missing signed, or another sender are rejected."""
        room, key = self._setup()
        for tpi in ({"signed": self._signed(key, mxid=CAROL)},
                    {"signed": self._signed(key, token="nope")}, {},
                    {"signed": {"mxid": BOB}}):
            self.assertRaises(AuthError, room.member, ALICE, BOB, "invite",
                              third_party_invite=tpi)
        room.member(ALICE, CAROL, "invite")
        room.member(CAROL, CAROL, "join")
        self.assertRaises(AuthError, room.member, CAROL, BOB, "invite",
                          third_party_invite={"signed": self._signed(key)})

    def test_banned_target(self) -> None:
        """A banned user cannot be invited by third-party invite."""
        room, key = self._setup()
        room.member(ALICE, BOB, "ban")
        self.assertRaises(AuthError, room.member, ALICE, BOB, "invite",
                          third_party_invite={"signed": self._signed(key)})


class RedactionHandlingTests(unittest.TestCase):
    def test_redaction_applies(self) -> None:
        """Redactions apply with the redact level or from the original's server."""
        room = standard_room("11", users={"@bob2:b.test": 0}, redact=50)
        original = room.build("m.room.message", "@bob2:b.test", {"body": "x"})
        by_bob = room.build("m.room.redaction", BOB, {"redacts": original.event_id})
        by_carol = room.build("m.room.redaction", CAROL, {"redacts": original.event_id})
        by_alice = room.build("m.room.redaction", ALICE, {"redacts": original.event_id})
        self.assertTrue(redaction_applies(by_bob, original, room.state))
        self.assertFalse(redaction_applies(by_carol, original, room.state))
        self.assertTrue(redaction_applies(by_alice, original, room.state))


class AuthTypesTests(unittest.TestCase):
    def test_member_selection(self) -> None:
        """Joins select join rules, target membership and (v8+) the authoriser."""
        v11 = KNOWN_ROOM_VERSIONS["11"]
        keys = auth_types_for_event(v11, "m.room.member", BOB, BOB, {
            "membership": "join", "join_authorised_via_users_server": ALICE})
        self.assertEqual(keys, {("m.room.create", ""), ("m.room.power_levels", ""),
                                ("m.room.member", BOB), ("m.room.join_rules", ""),
                                ("m.room.member", ALICE)})
        v7 = KNOWN_ROOM_VERSIONS["7"]
        keys = auth_types_for_event(v7, "m.room.member", BOB, BOB, {
            "membership": "join", "join_authorised_via_users_server": ALICE})
        self.assertNotIn(("m.room.member", ALICE), keys)

    def test_third_party_selection(self) -> None:
        """Third-party invites select the matching m.room.third_party_invite."""
        keys = auth_types_for_event(KNOWN_ROOM_VERSIONS["3"], "m.room.member", ALICE, BOB, {
            "membership": "invite", "third_party_invite": {"signed": {"token": "t"}}})
        self.assertIn(("m.room.third_party_invite", "t"), keys)
        self.assertIn(("m.room.member", ALICE), keys)

    def test_create_selects_nothing(self) -> None:
        """The create event has no auth events."""
        self.assertEqual(auth_types_for_event(KNOWN_ROOM_VERSIONS["3"], "m.room.create",
                                              ALICE, "", {}), set())

    def test_leave_has_no_join_rules(self) -> None:
        """Leaves and bans don't select join rules."""
        keys = auth_types_for_event(KNOWN_ROOM_VERSIONS["12"], "m.room.member", ALICE, BOB,
                                    {"membership": "ban"})
        self.assertEqual(keys, {("m.room.power_levels", ""), ("m.room.member", ALICE),
                                ("m.room.member", BOB)})


# -- one test class per (rule group, room version) ------------------------------------

def _versions(predicate) -> list[str]:
    return [v for v, rv in KNOWN_ROOM_VERSIONS.items() if predicate(rv)]


_GROUPS = [
    (CommonRulesTests, lambda rv: True),
    (PowerLevelRulesTests, lambda rv: True),
    (StateIndependentTests, lambda rv: True),
    (ThirdPartyInviteTests, lambda rv: True),
    (Pre10Tests, lambda rv: not rv.enforce_int_power_levels),
    (AliasesTests, lambda rv: rv.special_case_aliases_auth),
    (NoAliasesSpecialCaseTests, lambda rv: not rv.special_case_aliases_auth),
    (NotificationsTests, lambda rv: rv.limit_notifications_power_levels),
    (KnockTests, lambda rv: rv.knock_join_rule),
    (RestrictedTests, lambda rv: rv.restricted_join_rule),
    (IntLevelsTests, lambda rv: rv.enforce_int_power_levels),
    (ImplicitCreatorTests, lambda rv: rv.implicit_room_creator),
    (ExplicitCreatorTests, lambda rv: not rv.implicit_room_creator),
]
for _mixin, _predicate in _GROUPS:
    for _version in _versions(_predicate):
        _name = f"{_mixin.__name__[:-5]}V{_version}Tests"
        globals()[_name] = type(_name, (_mixin, unittest.TestCase),
                                {"VERSION": _version, "__module__": __name__})


class V12AuthTests(V12Tests, unittest.TestCase):
    pass


class RedactionRuleTests(unittest.TestCase):
    def test_v1_v2_redactions_below_the_redact_level(self):
        """Rooms v1/v2 rule 11: below the redact level a redaction passes only for an
        event of its own server; from v3 the auth rules leave that to serving."""
        for version, ruled in (("1", True), ("2", True), ("3", False)):
            room = standard_room(version)
            room.member(BOB, BOB, "join")
            for redacts, allowed in (("$x:b.test", True), ("$x:a.test", not ruled)):
                built = room.build("m.room.redaction", BOB, {}, redacts=redacts)
                event = PDU(room.version, built.get_dict(), "$r:b.test")
                if allowed:
                    room.check(event)
                else:
                    self.assertRaises(AuthError, room.check, event)
            # an admin may redact anything
            built = room.build("m.room.redaction", ALICE, {}, redacts="$x:b.test")
            room.check(PDU(room.version, built.get_dict(), "$r:a.test"))
