"""Filters: validation at the edge (M_BAD_JSON) and matching (types with wildcards,
senders, rooms, contains_url, event_fields)."""

from twisted.trial import unittest

from homeserver.errors import BadJson
from homeserver.sync.filters import (
    DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT, apply_event_fields, parse_filter)


class ParseTests(unittest.TestCase):
    def test_empty_filter_defaults(self):
        """{} passes everything with the default timeline limit."""
        f = parse_filter({})
        self.assertEqual(f.timeline_limit, DEFAULT_TIMELINE_LIMIT)
        self.assertTrue(f.room_allowed("!a:x"))
        self.assertTrue(f.timeline.matches("m.room.message", "@u:x"))
        self.assertFalse(f.include_leave)
        self.assertFalse(f.lazy_load_members)

    def test_limit_is_capped(self):
        """A huge timeline limit is capped."""
        f = parse_filter({"room": {"timeline": {"limit": 10 ** 6}}})
        self.assertEqual(f.timeline_limit, MAX_TIMELINE_LIMIT)

    def test_limit_zero_is_allowed(self):
        """A timeline limit of 0 is accepted (as Synapse): state without messages."""
        self.assertEqual(parse_filter({"room": {"timeline": {"limit": 0}}}).timeline_limit, 0)

    def test_malformed_filters(self):
        """Every malformed part is M_BAD_JSON."""
        for bad in ([], "x", {"event_fields": "type"}, {"event_format": "raw"},
                    {"presence": []}, {"room": {"rooms": ["not-a-room"]}},
                    {"room": {"timeline": {"limit": -1}}},
                    {"room": {"timeline": {"limit": True}}},
                    {"room": {"timeline": {"types": [1]}}},
                    {"room": {"timeline": {"senders": ["bob"]}}},
                    {"room": {"state": {"lazy_load_members": "yes"}}},
                    {"room": {"include_leave": 1}}, {"room": "all"}):
            with self.assertRaises(BadJson, msg=repr(bad)):
                parse_filter(bad)

    def test_unknown_keys_are_ignored(self):
        """Keys the spec does not define do not make a filter invalid."""
        parse_filter({"org.example": 1, "room": {"timeline": {"x": []}}})


class MatchTests(unittest.TestCase):
    def test_types_with_wildcards_and_not_types(self):
        """``*`` matches any run of characters; not_types wins over types."""
        f = parse_filter({"room": {"timeline": {
            "types": ["m.room.*", "org.*.x"], "not_types": ["m.room.member"]}}}).timeline
        self.assertTrue(f.matches("m.room.message"))
        self.assertTrue(f.matches("org.example.x"))
        self.assertFalse(f.matches("m.room.member"))
        self.assertFalse(f.matches("m.reaction"))
        self.assertFalse(f.matches("m_room_message"))  # dots are literal

    def test_senders_and_not_senders(self):
        """not_senders wins over senders."""
        f = parse_filter({"presence": {"senders": ["@a:x", "@b:x"],
                                       "not_senders": ["@b:x"]}}).presence
        self.assertTrue(f.matches("m.presence", "@a:x"))
        self.assertFalse(f.matches("m.presence", "@b:x"))
        self.assertFalse(f.matches("m.presence", "@c:x"))

    def test_rooms_and_contains_url(self):
        """rooms/not_rooms on both levels and contains_url on events."""
        f = parse_filter({"room": {"not_rooms": ["!b:x"], "rooms": ["!a:x", "!b:x"],
                                   "timeline": {"contains_url": True}}})
        self.assertTrue(f.room_allowed("!a:x"))
        self.assertFalse(f.room_allowed("!b:x"))
        self.assertFalse(f.room_allowed("!c:x"))
        self.assertTrue(f.timeline.matches_event("m.room.message", "@u:x", None,
                                                 {"url": "mxc://x/y"}))
        self.assertFalse(f.timeline.matches_event("m.room.message", "@u:x", None,
                                                  {"body": "no url"}))

    def test_passes_every_event(self):
        """Only a filter without conditions on events lets the sync skip state reads."""
        self.assertTrue(parse_filter({"room": {"timeline": {"limit": 5}}})
                        .timeline.passes_every_event)
        self.assertFalse(parse_filter({"room": {"timeline": {"not_types": ["x"]}}})
                         .timeline.passes_every_event)


class EventFieldsTests(unittest.TestCase):
    def test_dot_paths_and_escapes(self):
        """Dot-separated paths pick nested fields; ``\\.`` escapes a literal dot."""
        event = {"type": "t", "content": {"body": "b", "m.relates_to": {"x": 1},
                                          "other": 2}, "sender": "@u:x"}
        self.assertEqual(apply_event_fields(event, ["type", "content.body"]),
                         {"type": "t", "content": {"body": "b"}})
        self.assertEqual(apply_event_fields(event, ["content.m\\.relates_to"]),
                         {"content": {"m.relates_to": {"x": 1}}})
        self.assertEqual(apply_event_fields(event, ["missing", "content.nope"]), {})

    def test_result_does_not_alias_the_event(self):
        """Selecting a parent and a child does not modify the original event."""
        event = {"content": {"body": "b"}}
        result = apply_event_fields(event, ["content", "content.body"])
        result["content"]["extra"] = 1
        self.assertEqual(event, {"content": {"body": "b"}})
