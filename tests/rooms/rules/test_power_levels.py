"""Tests for homeserver.rooms.rules.power_levels: levels read from a room's state."""

from __future__ import annotations

import itertools
import math

from twisted.trial import unittest

from homeserver.errors import AuthError
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS
from homeserver.rooms.rules import power_levels as pl

ALICE, BOB, CAROL = "@alice:a.test", "@bob:b.test", "@carol:c.test"
_ids = itertools.count()


def _event(version: str, type_: str, sender: str, content: dict, state_key: str = ""
           ) -> PDU:
    rv = KNOWN_ROOM_VERSIONS[version]
    event_id = f"$ev{next(_ids)}"
    body = {"type": type_, "sender": sender, "content": content, "state_key": state_key,
            "room_id": "!room:a.test"}
    return PDU(rv, body, event_id)


def _state(version: str, power: dict | None = None, creator: str = ALICE,
           create_content: dict | None = None) -> dict:
    rv = KNOWN_ROOM_VERSIONS[version]
    content = dict(create_content or {})
    if not rv.implicit_room_creator:
        content.setdefault("creator", creator)
    state = {pl.CREATE_KEY: _event(version, "m.room.create", creator, content)}
    if power is not None:
        state[pl.POWER_LEVELS_KEY] = _event(version, "m.room.power_levels", creator, power)
    return state


class ParsePowerLevelTests(unittest.TestCase):
    def test_integers_always_parse(self) -> None:
        """Plain JSON integers are levels in every room version."""
        for version in KNOWN_ROOM_VERSIONS.values():
            self.assertEqual(pl.parse_power_level(50, version), 50)
            self.assertEqual(pl.parse_power_level(-3, version), -3)

    def test_stringy_levels_before_v10(self) -> None:
        """v1-9 accept integer strings with sign, zeros and whitespace; v10+ refuse them."""
        v9, v10 = KNOWN_ROOM_VERSIONS["9"], KNOWN_ROOM_VERSIONS["10"]
        for text, number in (("100", 100), ("000100", 100), (" +100 ", 100), ("-7", -7)):
            self.assertEqual(pl.parse_power_level(text, v9), number)
            self.assertIsNone(pl.parse_power_level(text, v10))
        for bad in ("1.5", "abc", "", "1e3", "++1", "١٠"):
            self.assertIsNone(pl.parse_power_level(bad, v9))

    def test_floats_truncate_before_v10(self) -> None:
        """Floats truncate in old versions, are refused from v10, and never infinite."""
        v5 = KNOWN_ROOM_VERSIONS["5"]
        self.assertEqual(pl.parse_power_level(50.57, v5), 50)
        self.assertEqual(pl.parse_power_level(5.114698e4, v5), 51146)
        self.assertIsNone(pl.parse_power_level(math.inf, v5))
        self.assertIsNone(pl.parse_power_level(math.nan, v5))
        self.assertIsNone(pl.parse_power_level(50.0, KNOWN_ROOM_VERSIONS["10"]))

    def test_booleans_are_not_levels(self) -> None:
        """``true`` is not an integer even though Python's bool is an int."""
        for version in KNOWN_ROOM_VERSIONS.values():
            self.assertIsNone(pl.parse_power_level(True, version))


class UserPowerLevelTests(unittest.TestCase):
    def test_creator_has_100_without_power_levels_before_v12(self) -> None:
        """With no PL event the creator has 100 and others 0 (v3-v11)."""
        for version in ("3", "10", "11"):
            state = _state(version)
            self.assertEqual(pl.user_power_level(ALICE, state), 100)
            self.assertEqual(pl.user_power_level(BOB, state), 0)

    def test_v10_creator_is_content_creator_not_sender(self) -> None:
        """Before v11 the creator is content.creator, even if someone else sent it."""
        rv = "10"
        create = _event(rv, "m.room.create", BOB, {"creator": ALICE})
        state = {pl.CREATE_KEY: create}
        self.assertEqual(pl.user_power_level(ALICE, state), 100)
        self.assertEqual(pl.user_power_level(BOB, state), 0)

    def test_users_then_users_default(self) -> None:
        """A listed user gets their entry, others users_default (else 0)."""
        state = _state("10", {"users": {BOB: 42}, "users_default": 7})
        self.assertEqual(pl.user_power_level(BOB, state), 42)
        self.assertEqual(pl.user_power_level(CAROL, state), 7)
        self.assertEqual(pl.user_power_level(ALICE, state), 7)
        self.assertEqual(pl.user_power_level(CAROL, _state("10", {})), 0)

    def test_stringy_user_levels_in_old_rooms(self) -> None:
        """v9 reads "50" as 50; an unreadable entry falls back to users_default."""
        state = _state("9", {"users": {BOB: "50", CAROL: "lots"}, "users_default": "5"})
        self.assertEqual(pl.user_power_level(BOB, state), 50)
        self.assertEqual(pl.user_power_level(CAROL, state), 5)

    def test_v12_creators_are_infinite(self) -> None:
        """v12: the sender and additional_creators have infinite power, PL event or not."""
        for power in (None, {"users": {CAROL: 100}, "users_default": 0}):
            state = _state("12", power, create_content={"additional_creators": [BOB]})
            self.assertEqual(pl.user_power_level(ALICE, state), pl.CREATOR_POWER_LEVEL)
            self.assertEqual(pl.user_power_level(BOB, state), math.inf)
            self.assertGreater(pl.user_power_level(ALICE, state), 2 ** 53 - 1)
        self.assertEqual(pl.user_power_level(CAROL, _state("12")), 0)

    def test_v12_creators_set(self) -> None:
        """room_creators is sender + additional_creators in v12, only the sender in v11."""
        content = {"additional_creators": [BOB, 7]}
        self.assertEqual(pl.room_creators(_state("12", create_content=content)),
                         {ALICE, BOB})
        self.assertEqual(pl.room_creators(_state("11", create_content=content)), {ALICE})
        self.assertEqual(pl.room_creators({}), frozenset())

    def test_empty_state(self) -> None:
        """Without any state everyone has level 0 and the spec's default levels apply."""
        self.assertEqual(pl.user_power_level(ALICE, {}), 0)
        self.assertEqual(pl.required_power_for_event("m.room.name", True, {}), 50)
        self.assertEqual(pl.required_power_for_event("m.room.message", False, {}), 0)


class RequiredLevelTests(unittest.TestCase):
    def test_defaults_without_power_levels(self) -> None:
        """No PL event: state events need 50, others 0; invite 0, kick/ban/redact 50."""
        state = _state("11")
        self.assertEqual(pl.required_power_for_event("m.room.topic", True, state), 50)
        self.assertEqual(pl.required_power_for_event("m.room.message", False, state), 0)
        self.assertEqual((pl.invite_level(state), pl.kick_level(state),
                          pl.ban_level(state), pl.redact_level(state)), (0, 50, 50, 50))
        self.assertEqual(pl.notification_level(state), 50)

    def test_events_override_defaults(self) -> None:
        """events[type] wins over state_default/events_default."""
        state = _state("11", {"events": {"m.room.topic": 10, "m.reaction": 20},
                              "state_default": 60, "events_default": 5})
        self.assertEqual(pl.required_power_for_event("m.room.topic", True, state), 10)
        self.assertEqual(pl.required_power_for_event("m.reaction", False, state), 20)
        self.assertEqual(pl.required_power_for_event("m.room.name", True, state), 60)
        self.assertEqual(pl.required_power_for_event("m.room.message", False, state), 5)

    def test_explicit_levels(self) -> None:
        """invite/kick/ban/redact and notifications.room are read from the PL event."""
        state = _state("11", {"invite": 3, "kick": 4, "ban": 5, "redact": 6,
                              "notifications": {"room": 7}})
        self.assertEqual((pl.invite_level(state), pl.kick_level(state),
                          pl.ban_level(state), pl.redact_level(state),
                          pl.notification_level(state)), (3, 4, 5, 6, 7))
        self.assertEqual(pl.notification_level(state, "other"), 50)

    def test_can_send(self) -> None:
        """can_send compares the user's level with the event's required level."""
        state = _state("11", {"users": {ALICE: 100, BOB: 10}, "events": {"m.room.name": 50}})
        self.assertTrue(pl.can_send(ALICE, "m.room.name", True, state))
        self.assertFalse(pl.can_send(BOB, "m.room.name", True, state))
        self.assertTrue(pl.can_send(BOB, "m.room.message", False, state))

    def test_can_redact(self) -> None:
        """Own events need only the send level; others' events also the redact level."""
        state = _state("11", {"users": {ALICE: 100, BOB: 10}, "redact": 50})
        self.assertTrue(pl.can_redact(BOB, BOB, state))
        self.assertFalse(pl.can_redact(BOB, ALICE, state))
        self.assertTrue(pl.can_redact(ALICE, BOB, state))
        muted = _state("11", {"users": {BOB: 10}, "events": {"m.room.redaction": 20}})
        self.assertFalse(pl.can_redact(BOB, BOB, muted))


class PowerLevelsChangeTests(unittest.TestCase):
    def _check(self, version: str, old: dict | None, new: dict, sender: str = BOB) -> None:
        pl.check_power_levels_change(KNOWN_ROOM_VERSIONS[version], sender, new,
                                     _state(version, old))

    def test_first_power_levels_need_only_validity(self) -> None:
        """With no previous PL event any valid content is accepted (rule 10.5)."""
        self._check("11", None, {"users": {BOB: 9000}}, sender=BOB)

    def test_cannot_raise_above_own_level(self) -> None:
        """Setting a level above the sender's own is refused."""
        old = {"users": {BOB: 50}}
        self.assertRaises(AuthError, self._check, "11", old, {"users": {BOB: 50, CAROL: 51}})
        self._check("11", old, {"users": {BOB: 50, CAROL: 50}})

    def test_cannot_change_peer(self) -> None:
        """A user at the sender's level cannot be demoted; the sender can demote itself."""
        old = {"users": {BOB: 50, CAROL: 50}}
        self.assertRaises(AuthError, self._check, "11", old, {"users": {BOB: 50, CAROL: 0}})
        self._check("11", old, {"users": {BOB: 10, CAROL: 50}})

    def test_notifications_checked_from_v6(self) -> None:
        """notifications entries above the sender's level are guarded from v6 only."""
        old = {"users": {BOB: 50}, "notifications": {"room": 100}}
        new = {"users": {BOB: 50}, "notifications": {"room": 0}}
        self.assertRaises(AuthError, self._check, "6", old, new)
        self._check("5", old, new)

    def test_v10_refuses_strings(self) -> None:
        """v10+ refuse string levels anywhere; v9 reads them."""
        for new in ({"ban": "50"}, {"events": {"m.room.name": "50"}},
                    {"notifications": {"room": "50"}}, {"users": {CAROL: "5"}}):
            self.assertRaises(AuthError, self._check, "10", None, new)
            self._check("9", None, new)

    def test_users_keys_must_be_user_ids(self) -> None:
        """users keys must be valid user IDs in every version."""
        self.assertRaises(AuthError, self._check, "3", None, {"users": {"bob": 5}})

    def test_v12_creators_not_listed(self) -> None:
        """v12 refuses power levels that list a creator in users."""
        self.assertRaises(AuthError, self._check, "12", None, {"users": {ALICE: 100}})
        self._check("12", None, {"users": {CAROL: 100}})


class NewPowerLevelsTests(unittest.TestCase):
    def test_integers_in_range_pass(self):
        """Integer levels (negative and up to 2^53-1 too) and absent keys pass."""
        pl.check_new_power_levels({})
        pl.check_new_power_levels({"ban": -5, "kick": 2 ** 53 - 1, "users": {ALICE: 100},
                                   "events": {"m.room.name": 50},
                                   "notifications": {"room": 50}})

    def test_anything_else_is_bad_json(self):
        """Strings, floats, booleans, out-of-range numbers, non-object maps: M_BAD_JSON."""
        from homeserver.errors import BadJson
        for bad in ({"ban": "50"}, {"kick": 1.5}, {"redact": True}, {"invite": 2 ** 53},
                    {"users_default": None}, {"users": {ALICE: "100"}},
                    {"events": {"m.room.name": 1.0}}, {"notifications": {"room": "50"}},
                    {"users": []}, {"events": "x"}):
            with self.assertRaises(BadJson, msg=repr(bad)):
                pl.check_new_power_levels(bad)
