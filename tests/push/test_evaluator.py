"""The pure push rule evaluator (spec: "Push Rules", "Conditions", "Predefined Rules")."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.push import rulesets
from homeserver.push.evaluator import RoomFacts, evaluate, glob_regex, lookup, split_path

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
GROUP = RoomFacts(member_count=5, sender_power_level=0, notification_levels={})
ONE_TO_ONE = RoomFacts(member_count=2, sender_power_level=0)


def message(body="hello", sender=BOB, **content):
    return {"type": "m.room.message", "sender": sender, "room_id": "!r:example.org",
            "content": {"msgtype": "m.text", "body": body, **content}}


def defaults():
    return rulesets.ruleset(ALICE, None)


class PathTests(unittest.TestCase):
    def test_escaped_dots(self):
        """A backslash-escaped dot stays inside the property name."""
        self.assertEqual(split_path("content.m\\.relates_to.rel_type"),
                         ("content", "m.relates_to", "rel_type"))

    def test_escaped_backslash_and_other_escapes(self):
        """``\\\\`` is one backslash; ``\\x`` stays a backslash and an x."""
        self.assertEqual(split_path("content.m\\\\foo.a\\x"), ("content", "m\\foo", "a\\x"))

    def test_lookup_missing(self):
        """A path through a non-object is absent, not an error."""
        self.assertIs(lookup({"content": "x"}, "content.body"),
                      lookup({}, "nothing"))


class GlobTests(unittest.TestCase):
    def test_whole_value_case_insensitive(self):
        """event_match globs match the whole value, ignoring case."""
        self.assertTrue(glob_regex("lunc?*", False).match("LUNCH"))
        self.assertFalse(glob_regex("lunc?*", False).match(" lunch"))
        self.assertFalse(glob_regex("lunc?*", False).match("lunc"))

    def test_body_word_boundaries(self):
        """content.body globs match any word-bounded substring (spec examples)."""
        rx = glob_regex("ex*ple", True)
        self.assertTrue(rx.search("An example event."))
        self.assertTrue(rx.search("exple"))
        self.assertTrue(rx.search("An exciting triple-whammy"))
        self.assertFalse(rx.search("examples"))


class DefaultRuleTests(unittest.TestCase):
    def test_group_message_notifies_without_highlight(self):
        """.m.rule.message: a plain message in a group notifies, no sound."""
        out = evaluate(defaults(), message(), "Alice", GROUP)
        self.assertEqual((out.notify, out.highlight, out.sound), (True, False, None))

    def test_one_to_one_has_sound(self):
        """.m.rule.room_one_to_one adds the default sound."""
        out = evaluate(defaults(), message(), "Alice", ONE_TO_ONE)
        self.assertEqual(out.sound, "default")

    def test_user_mention_highlights(self):
        """.m.rule.is_user_mention highlights via m.mentions.user_ids."""
        out = evaluate(defaults(), message("hi", **{"m.mentions": {"user_ids": [ALICE]}}),
                       "Alice", GROUP)
        self.assertTrue(out.highlight)

    def test_display_name_only_without_mentions(self):
        """The legacy display-name rule applies only to events without m.mentions."""
        self.assertTrue(evaluate(defaults(), message("hey Alice!"), "Alice", GROUP).highlight)
        self.assertFalse(evaluate(defaults(), message("hey Alice!", **{"m.mentions": {}}),
                                  "Alice", GROUP).highlight)

    def test_user_name_content_rule(self):
        """.m.rule.contains_user_name matches the localpart as a word."""
        self.assertTrue(evaluate(defaults(), message("ping alice now"), None, GROUP).highlight)
        self.assertFalse(evaluate(defaults(), message("malice"), None, GROUP).highlight)

    def test_room_mention_needs_power(self):
        """.m.rule.is_room_mention needs the sender's notification power level."""
        event = message("all", **{"m.mentions": {"room": True}})
        self.assertFalse(evaluate(defaults(), event, None, GROUP).highlight)
        mod = RoomFacts(member_count=5, sender_power_level=50)
        self.assertTrue(evaluate(defaults(), event, None, mod).highlight)
        strict = RoomFacts(member_count=5, sender_power_level=50,
                           notification_levels={"room": 100})
        self.assertFalse(evaluate(defaults(), event, None, strict).highlight)

    def test_room_mention_true_is_not_one(self):
        """event_property_is compares types: 1 is not true."""
        event = message("all", **{"m.mentions": {"room": 1}})
        mod = RoomFacts(member_count=5, sender_power_level=100)
        self.assertFalse(evaluate(defaults(), event, None, mod).highlight)

    def test_notice_edit_reaction_member_silent(self):
        """Notices, edits, reactions and member events do not notify."""
        edit = message("* fixed", **{"m.relates_to": {"rel_type": "m.replace",
                                                      "event_id": "$x"}})
        notice = message("bot")
        notice["content"]["msgtype"] = "m.notice"
        reaction = {"type": "m.reaction", "sender": BOB, "content": {}}
        join = {"type": "m.room.member", "sender": BOB, "state_key": BOB,
                "content": {"membership": "join"}}
        for event in (edit, notice, reaction, join):
            self.assertFalse(evaluate(defaults(), event, "Alice", GROUP).notify, event)

    def test_invite_for_me(self):
        """An invite of the user notifies with sound; someone else's does not."""
        invite = {"type": "m.room.member", "sender": BOB, "state_key": ALICE,
                  "content": {"membership": "invite"}}
        self.assertEqual(evaluate(defaults(), invite, None, GROUP).sound, "default")
        other = dict(invite, state_key="@carol:example.org")
        self.assertFalse(evaluate(defaults(), other, None, GROUP).notify)

    def test_tombstone_highlights_and_call_rings(self):
        """Tombstones highlight; call invites ring."""
        tomb = {"type": "m.room.tombstone", "sender": BOB, "state_key": "", "content": {}}
        self.assertTrue(evaluate(defaults(), tomb, None, GROUP).highlight)
        call = {"type": "m.call.invite", "sender": BOB, "content": {}}
        self.assertEqual(evaluate(defaults(), call, None, GROUP).sound, "ring")

    def test_encrypted(self):
        """Encrypted events notify (with sound in a one-to-one room)."""
        enc = {"type": "m.room.encrypted", "sender": BOB, "content": {"ciphertext": "x"}}
        self.assertTrue(evaluate(defaults(), enc, None, GROUP).notify)
        self.assertEqual(evaluate(defaults(), enc, None, ONE_TO_ONE).sound, "default")

    def test_master_rule_silences_all(self):
        """Enabling .m.rule.master stops every notification."""
        changes = rulesets.set_enabled(None, ALICE, "override", ".m.rule.master",
                                       {"enabled": True})
        rules = rulesets.ruleset(ALICE, changes)
        mention = message("x", **{"m.mentions": {"user_ids": [ALICE]}})
        self.assertFalse(evaluate(rules, mention, None, GROUP).notify)


class CustomRuleTests(unittest.TestCase):
    def test_override_dont_notify_beats_mention(self):
        """A user override with no actions suppresses even a mention."""
        changes = rulesets.put_rule(None, "override", "quiet", {
            "conditions": [{"kind": "event_match", "key": "room_id",
                            "pattern": "!r:example.org"}], "actions": []})
        mention = message("x", **{"m.mentions": {"user_ids": [ALICE]}})
        self.assertFalse(evaluate(rulesets.ruleset(ALICE, changes), mention, None,
                                  GROUP).notify)

    def test_room_and_sender_rules(self):
        """Room and sender rules match on their rule_id."""
        room = rulesets.put_rule(None, "room", "!r:example.org", {"actions": ["dont_notify"]})
        self.assertFalse(evaluate(rulesets.ruleset(ALICE, room), message(), None,
                                  GROUP).notify)
        sender = rulesets.put_rule(None, "sender", BOB, {
            "actions": ["notify", {"set_tweak": "highlight"}]})
        self.assertTrue(evaluate(rulesets.ruleset(ALICE, sender), message(), None,
                                 GROUP).highlight)

    def test_unknown_condition_disables_rule(self):
        """A rule with an unknown condition never matches."""
        changes = rulesets.put_rule(None, "override", "odd", {
            "conditions": [{"kind": "org.example.unknown"}], "actions": []})
        self.assertTrue(evaluate(rulesets.ruleset(ALICE, changes), message(), None,
                                 GROUP).notify)

    def test_property_contains_ignores_compound(self):
        """event_property_contains matches scalars exactly and ignores compound items."""
        changes = rulesets.put_rule(None, "override", "tags", {
            "conditions": [{"kind": "event_property_contains", "key": "content.tags",
                            "value": "x"}], "actions": ["notify", {"set_tweak": "highlight"}]})
        rules = rulesets.ruleset(ALICE, changes)
        self.assertTrue(evaluate(rules, message(tags=[["x"], "x"]), None, GROUP).highlight)
        self.assertFalse(evaluate(rules, message(tags=[["x"], "xy"]), None, GROUP).highlight)

    def test_member_count_operators(self):
        """room_member_count understands ==, <, >, <=, >= and a bare number."""
        for spec, count, expected in [("2", 2, True), ("<3", 2, True), (">=3", 2, False),
                                      (">1", 2, True), ("<=1", 2, False), ("x", 2, False)]:
            changes = rulesets.put_rule(None, "override", "n", {
                "conditions": [{"kind": "room_member_count", "is": spec}],
                "actions": ["notify", {"set_tweak": "highlight"}]})
            facts = RoomFacts(member_count=count, sender_power_level=0)
            self.assertEqual(evaluate(rulesets.ruleset(ALICE, changes), message(), None,
                                      facts).highlight, expected, spec)


class SharedEvaluationTests(unittest.TestCase):
    def test_shared_outcomes_equal_individual_ones(self):
        """For default-rule users, sharing by signature gives each user exactly what
        evaluating their own rules gives."""
        from homeserver.push.evaluator import SharedEvaluation

        users = [(f"@u{i}:example.org", f"User{i}") for i in range(4)]
        events = [
            message("plain"), message("hi User1 and u2"),
            message("x", **{"m.mentions": {"user_ids": ["@u3:example.org"]}}),
            {"type": "m.room.member", "sender": BOB, "state_key": "@u0:example.org",
             "content": {"membership": "invite"}},
            message("@room", **{"m.mentions": {"room": True}}),
        ]
        room = RoomFacts(member_count=5, sender_power_level=100)
        for event in events:
            shared = SharedEvaluation(event, room)
            for user_id, name in users:
                rules = rulesets.ruleset(user_id, None)
                self.assertEqual(shared.outcome(rules, user_id, name, default_rules=True),
                                 evaluate(rules, event, name, room), (event, user_id))
