"""The redaction algorithm for each room version (spec: rooms/v3…v12 "Redactions")."""

from twisted.trial import unittest

from homeserver.events.redaction import redact_content, redact_event_dict
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, get_room_version

V = get_room_version
ALL = list(KNOWN_ROOM_VERSIONS.values())


def event(event_type, content, **extra):
    base = {
        "type": event_type, "content": content, "room_id": "!r:a", "sender": "@u:a",
        "origin_server_ts": 1, "depth": 2, "prev_events": ["$p"], "auth_events": ["$a"],
        "hashes": {"sha256": "h"}, "signatures": {"a": {"ed25519:1": "s"}},
    }
    base.update(extra)
    return base


class TopLevelKeysTests(unittest.TestCase):
    def test_essential_keys_kept_everywhere(self):
        """Every version keeps the keys the DAG and signatures need."""
        ev = event("m.room.message", {"body": "hi"}, state_key="", event_id="$e")
        for version in ALL:
            redacted = redact_event_dict(version, ev)
            self.assertEqual(set(redacted), set(ev), version.identifier)

    def test_unsigned_and_unknown_keys_dropped(self):
        """unsigned (even age_ts), top-level redacts and unknown keys are stripped."""
        ev = event("m.room.redaction", {}, unsigned={"age_ts": 5}, redacts="$x", custom=1)
        for version in ALL:
            redacted = redact_event_dict(version, ev)
            for key in ("unsigned", "redacts", "custom"):
                self.assertNotIn(key, redacted, (version.identifier, key))

    def test_origin_membership_prev_state_until_v11(self):
        """origin, membership and prev_state survive in v3-v10 and are dropped from v11."""
        ev = event("m.room.message", {}, origin="a", membership="join", prev_state=[])
        for version in ALL:
            redacted = redact_event_dict(version, ev)
            legacy = {k for k in ("origin", "membership", "prev_state") if k in redacted}
            expected = set() if version.updated_redaction_rules else {
                "origin", "membership", "prev_state"}
            self.assertEqual(legacy, expected, version.identifier)
        self.assertIn("origin", redact_event_dict(V("10"), ev))
        self.assertNotIn("origin", redact_event_dict(V("11"), ev))
        self.assertNotIn("origin", redact_event_dict(V("12"), ev))

    def test_content_always_present(self):
        """A missing or non-object content becomes {}."""
        ev = event("m.room.message", {})
        del ev["content"]
        self.assertEqual(redact_event_dict(V("10"), ev)["content"], {})
        self.assertEqual(redact_event_dict(V("10"), dict(ev, content=[1]))["content"], {})

    def test_input_untouched(self):
        """Redaction returns a new dict and leaves the input alone."""
        ev = event("m.room.message", {"body": "hi"}, unsigned={"age": 1})
        before = repr(ev)
        redact_event_dict(V("11"), ev)
        self.assertEqual(repr(ev), before)


class ContentTests(unittest.TestCase):
    def content_after(self, version, event_type, content):
        return redact_event_dict(V(version), event(event_type, content))["content"]

    def test_ordinary_events_lose_all_content(self):
        """Message content is stripped entirely in every version."""
        for version in ALL:
            self.assertEqual(redact_content(version, "m.room.message",
                                            {"body": "x", "msgtype": "m.text"}), {})

    def test_member(self):
        """Members keep membership; join_authorised_via_users_server from v9 only."""
        content = {"membership": "join", "displayname": "U",
                   "join_authorised_via_users_server": "@x:b"}
        self.assertEqual(self.content_after("8", "m.room.member", content),
                         {"membership": "join"})
        for version in ("9", "10", "11", "12"):
            self.assertEqual(self.content_after(version, "m.room.member", content),
                             {"membership": "join", "join_authorised_via_users_server": "@x:b"})

    def test_member_third_party_invite_signed_from_v11(self):
        """From v11 third_party_invite keeps just its signed block."""
        content = {"membership": "invite",
                   "third_party_invite": {"display_name": "bob", "signed": {"token": "t"}}}
        self.assertEqual(self.content_after("10", "m.room.member", content),
                         {"membership": "invite"})
        for version in ("11", "12"):
            self.assertEqual(
                self.content_after(version, "m.room.member", content),
                {"membership": "invite", "third_party_invite": {"signed": {"token": "t"}}})

    def test_member_third_party_invite_edge_cases(self):
        """An object without signed becomes {}; a non-object is dropped (as Synapse does)."""
        self.assertEqual(
            self.content_after("11", "m.room.member",
                               {"membership": "invite", "third_party_invite": {"x": 1}}),
            {"membership": "invite", "third_party_invite": {}})
        self.assertEqual(
            self.content_after("11", "m.room.member",
                               {"membership": "invite", "third_party_invite": "junk"}),
            {"membership": "invite"})

    def test_create(self):
        """Create keeps only creator before v11 and all of its content from v11."""
        content = {"creator": "@u:a", "room_version": "10", "m.federate": False}
        for version in ("3", "6", "10"):
            self.assertEqual(self.content_after(version, "m.room.create", content),
                             {"creator": "@u:a"})
        content12 = {"room_version": "12", "additional_creators": ["@v:b"], "x": 1}
        self.assertEqual(self.content_after("11", "m.room.create", content), content)
        self.assertEqual(self.content_after("12", "m.room.create", content12), content12)

    def test_join_rules_allow_from_v8(self):
        """join_rules keeps allow from v8 (restricted rooms)."""
        content = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}],
                   "other": 1}
        self.assertEqual(self.content_after("7", "m.room.join_rules", content),
                         {"join_rule": "restricted"})
        for version in ("8", "9", "11", "12"):
            self.assertEqual(self.content_after(version, "m.room.join_rules", content),
                             {"join_rule": "restricted", "allow": content["allow"]})

    def test_power_levels_invite_from_v11(self):
        """Power levels keep their eight keys, plus invite from v11; others go."""
        content = {"ban": 50, "events": {}, "events_default": 0, "kick": 50, "redact": 50,
                   "state_default": 50, "users": {"@u:a": 100}, "users_default": 0,
                   "invite": 0, "notifications": {"room": 50}}
        before = dict(content)
        del before["invite"], before["notifications"]
        for version in ("3", "6", "10"):
            self.assertEqual(self.content_after(version, "m.room.power_levels", content), before)
        for version in ("11", "12"):
            self.assertEqual(self.content_after(version, "m.room.power_levels", content),
                             dict(before, invite=0))

    def test_aliases_special_until_v6(self):
        """m.room.aliases keeps aliases in v3-v5 only."""
        content = {"aliases": ["#a:a"]}
        for version in ("3", "4", "5"):
            self.assertEqual(self.content_after(version, "m.room.aliases", content), content)
        for version in ("6", "11", "12"):
            self.assertEqual(self.content_after(version, "m.room.aliases", content), {})

    def test_history_visibility(self):
        """history_visibility is kept in every version."""
        for version in ALL:
            self.assertEqual(redact_content(version, "m.room.history_visibility",
                                            {"history_visibility": "shared", "x": 1}),
                             {"history_visibility": "shared"})

    def test_redaction_redacts_from_v11(self):
        """A redaction's content.redacts survives from v11; before, content is stripped."""
        content = {"redacts": "$x", "reason": "spam"}
        self.assertEqual(self.content_after("10", "m.room.redaction", content), {})
        for version in ("11", "12"):
            self.assertEqual(self.content_after(version, "m.room.redaction", content),
                             {"redacts": "$x"})

    def test_state_key_of_other_types_irrelevant(self):
        """Unknown state events lose their content like messages do."""
        self.assertEqual(self.content_after("12", "m.room.topic", {"topic": "t"}), {})
