"""Merging and editing a user's push rules (spec: "Push Rules: API")."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.errors import BadJson, InvalidParam, MissingParam, NotFound
from homeserver.push import rulesets

ALICE = "@alice:example.org"
COND = {"conditions": [], "actions": ["notify"]}


def ids(changes, kind):
    return [r["rule_id"] for r in rulesets.ruleset(ALICE, changes)[kind]]


class RulesetTests(unittest.TestCase):
    def test_default_order(self):
        """The defaults come in the spec's order, master first."""
        rules = rulesets.ruleset(ALICE, None)
        self.assertEqual(rules["override"][0]["rule_id"], ".m.rule.master")
        self.assertEqual([r["rule_id"] for r in rules["underride"]],
                         [".m.rule.call", ".m.rule.encrypted_room_one_to_one",
                          ".m.rule.room_one_to_one", ".m.rule.message",
                          ".m.rule.encrypted"])
        self.assertIn(".m.rule.is_user_mention", ids(None, "override"))
        self.assertEqual(rules["content"][0]["pattern"], "alice")

    def test_user_override_after_master_before_defaults(self):
        """A user override comes after master and before the server's overrides."""
        changes = rulesets.put_rule(None, "override", "mine", COND)
        self.assertEqual(ids(changes, "override")[:3],
                         [".m.rule.master", "mine", ".m.rule.suppress_notices"])

    def test_before_and_after(self):
        """before/after place a rule relative to another user rule."""
        c = rulesets.put_rule(None, "override", "a", COND)
        c = rulesets.put_rule(c, "override", "b", COND, after="a")
        c = rulesets.put_rule(c, "override", "c", COND, before="a")
        self.assertEqual(ids(c, "override")[1:4], ["c", "a", "b"])

    def test_relative_to_unknown_or_default(self):
        """before an unknown rule is 404; relative to a default rule 400."""
        c = rulesets.put_rule(None, "override", "a", COND)
        self.assertRaises(NotFound, rulesets.put_rule, c, "override", "b", COND,
                          before="nope")
        self.assertRaises(InvalidParam, rulesets.put_rule, c, "override", "b", COND,
                          after=".m.rule.message")

    def test_bad_bodies(self):
        """Missing or malformed actions, conditions and patterns are rejected."""
        self.assertRaises(MissingParam, rulesets.put_rule, None, "override", "a",
                          {"conditions": []})
        self.assertRaises(BadJson, rulesets.put_rule, None, "override", "a",
                          {"actions": "notify"})
        self.assertRaises(BadJson, rulesets.put_rule, None, "override", "a",
                          {"actions": ["shout"]})
        self.assertRaises(BadJson, rulesets.put_rule, None, "override", "a",
                          {"actions": [], "conditions": [{"key": "x"}]})
        self.assertRaises(MissingParam, rulesets.put_rule, None, "content", "a",
                          {"actions": []})
        self.assertRaises(rulesets.UnrecognizedPath, rulesets.put_rule, None, "bogus",
                          "a", COND)

    def test_cannot_add_or_delete_defaults(self):
        """Server-default rule IDs can be neither created nor deleted."""
        self.assertRaises(InvalidParam, rulesets.put_rule, None, "override", ".mine", COND)
        self.assertRaises(InvalidParam, rulesets.delete_rule, None, "override",
                          ".m.rule.message")

    def test_delete(self):
        """Deleting removes a user rule; an unknown one is 404."""
        c = rulesets.put_rule(None, "room", "!r:x", {"actions": []})
        self.assertEqual(ids(rulesets.delete_rule(c, "room", "!r:x"), "room"), [])
        self.assertRaises(NotFound, rulesets.delete_rule, c, "room", "!other:x")

    def test_enabled_and_actions_of_default(self):
        """Defaults can be disabled and given other actions."""
        c = rulesets.set_enabled(None, ALICE, "underride", ".m.rule.message",
                                 {"enabled": False})
        c = rulesets.set_actions(c, ALICE, "underride", ".m.rule.message",
                                 {"actions": ["dont_notify"]})
        rule = rulesets.find_rule(rulesets.ruleset(ALICE, c), "underride", ".m.rule.message")
        self.assertEqual((rule["enabled"], rule["actions"]), (False, ["dont_notify"]))
        self.assertRaises(BadJson, rulesets.set_enabled, c, ALICE, "underride",
                          ".m.rule.message", {"enabled": "no"})
        self.assertRaises(NotFound, rulesets.set_enabled, c, ALICE, "underride",
                          "unknown", {"enabled": True})

    def test_replacing_keeps_place_and_enabled(self):
        """PUT of an existing rule replaces it in place, keeping enabled."""
        c = rulesets.put_rule(None, "override", "a", COND)
        c = rulesets.put_rule(c, "override", "b", COND)
        c = rulesets.set_enabled(c, ALICE, "override", "a", {"enabled": False})
        c = rulesets.put_rule(c, "override", "a", {"conditions": [], "actions": []})
        rule = rulesets.find_rule(rulesets.ruleset(ALICE, c), "override", "a")
        self.assertEqual(ids(c, "override")[1:3], ["b", "a"])
        self.assertEqual((rule["enabled"], rule["actions"]), (False, []))

    def test_client_form_hides_room_conditions(self):
        """room and sender rules show no conditions to clients."""
        c = rulesets.put_rule(None, "sender", "@bob:x", {"actions": []})
        shown = rulesets.for_client(rulesets.ruleset(ALICE, c))["sender"][0]
        self.assertNotIn("conditions", shown)
        self.assertFalse(shown["default"])


class CopyRoomRulesTests(unittest.TestCase):
    OLD, NEW = "!old:example.org", "!new:example.org"

    def test_room_and_override_rules_follow(self):
        """Enabled rules naming the old room (a room rule, an override matching its
        room_id) are copied under the new room's ID with their conditions renamed."""
        c = rulesets.put_rule(None, "room", self.OLD, {"actions": ["dont_notify"]})
        c = rulesets.put_rule(c, "override", "quiet", {
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": self.OLD},
                           {"kind": "event_match", "key": "type", "pattern": "m.x"}],
            "actions": []})
        c = rulesets.put_rule(c, "override", "other", {
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": "!b:x"}],
            "actions": []})
        copied = rulesets.copy_room_rules(c, self.OLD, self.NEW)
        rules = rulesets.ruleset(ALICE, copied)
        self.assertEqual(ids(copied, "room")[:2], [self.NEW, self.OLD])
        self.assertEqual(rules["room"][0]["actions"], ["dont_notify"])
        new_override = rulesets.find_rule(rules, "override", self.NEW)
        self.assertEqual(new_override["conditions"], [
            {"kind": "event_match", "key": "room_id", "pattern": self.NEW},
            {"kind": "event_match", "key": "type", "pattern": "m.x"}])
        self.assertIn("quiet", ids(copied, "override"))
        self.assertIn("other", ids(copied, "override"))
        self.assertEqual(rulesets.find_rule(rules, "override", "quiet")["conditions"][0]
                         ["pattern"], self.OLD)  # the original is untouched

    def test_nothing_to_copy(self):
        """No rules, disabled rules and rules about other rooms copy nothing."""
        self.assertIsNone(rulesets.copy_room_rules(None, self.OLD, self.NEW))
        c = rulesets.put_rule(None, "room", self.OLD, {"actions": []})
        c = rulesets.set_enabled(c, ALICE, "room", self.OLD, {"enabled": False})
        c = rulesets.put_rule(c, "room", "!else:x", {"actions": []})
        self.assertIsNone(rulesets.copy_room_rules(c, self.OLD, self.NEW))

    def test_existing_rule_kept(self):
        """A rule the user already has for the new room is not overwritten."""
        c = rulesets.put_rule(None, "room", self.OLD, {"actions": ["dont_notify"]})
        c = rulesets.put_rule(c, "room", self.NEW, {"actions": ["notify"]})
        self.assertIsNone(rulesets.copy_room_rules(c, self.OLD, self.NEW))
