"""Event format checks per room version (spec: PDU schemas, CS API "Size limits")."""

from twisted.trial import unittest

from homeserver.crypto.canonical_json import encode_canonical_json
from homeserver.events.room_versions import KNOWN_ROOM_VERSIONS, get_room_version
from homeserver.events.validation import (
    MAX_PDU_SIZE,
    EventTooLarge,
    EventValidationError,
    validate_event_dict,
)

V = get_room_version


def event(**fields):
    ev = {"type": "m.room.message", "room_id": "!r:a", "sender": "@u:a",
          "content": {"body": "x"}, "origin_server_ts": 1, "depth": 2,
          "prev_events": ["$p"], "auth_events": ["$a"], "hashes": {"sha256": "h"},
          "signatures": {"a": {"ed25519:1": "s"}}}
    ev.update(fields)
    return ev


def event_v1(**fields):
    """An event of rooms v1/v2 (event format v1)."""
    return event(**{"event_id": "$e:a", "prev_events": [["$p", {"sha256": "x"}]],
                    "auth_events": [["$a", {"sha256": "y"}]], **fields})


def without(key, **fields):
    ev = event(**fields)
    del ev[key]
    return ev


class ValidEventTests(unittest.TestCase):
    def test_valid_in_every_version(self):
        """A well-formed event passes in every version and its canonical bytes are returned."""
        for version in KNOWN_ROOM_VERSIONS.values():
            ev = event_v1() if version.event_format_v1 else event()
            self.assertEqual(validate_event_dict(version, ev), encode_canonical_json(ev))

    def test_event_format_v1(self):
        """Room v2 events need their own event_id and (ID, hashes) pairs as references."""
        for bad in (event(), event_v1(event_id="nope"), without("event_id", **event_v1()),
                    event_v1(prev_events=[["$p"]]), event_v1(auth_events=[["$a", "h"]]),
                    event_v1(prev_events=[[1, {}]])):
            with self.assertRaises(EventValidationError):
                validate_event_dict(V("2"), bad)
        with self.assertRaises(EventValidationError):
            validate_event_dict(V("3"), event_v1())

    def test_optional_fields(self):
        """state_key, unsigned, origin and redacts are all optional."""
        validate_event_dict(V("10"), event(state_key="", unsigned={"age": 1}, origin="a",
                                           type="m.room.redaction", redacts="$x"))

    def test_historical_sender_accepted(self):
        """Senders with localparts today's grammar refuses still pass (old rooms have them)."""
        validate_event_dict(V("3"), event(sender="@Bob[old]:a"))


class RequiredFieldTests(unittest.TestCase):
    def assertBad(self, ev, version="12"):
        e = self.assertRaises(EventValidationError, validate_event_dict, V(version), ev)
        self.assertEqual((e.errcode, e.status), ("M_BAD_JSON", 400))
        return e

    def test_not_an_object(self):
        """An event must be an object."""
        self.assertBad(["not", "an", "event"])

    def test_each_required_key(self):
        """Every key the PDU schema requires must be present."""
        for key in ("type", "sender", "room_id", "content", "origin_server_ts", "depth",
                    "prev_events", "auth_events", "hashes", "signatures"):
            e = self.assertBad(without(key))
            self.assertIn(key, e.message)

    def test_wrong_types(self):
        """Required keys must have their schema types; booleans are not integers."""
        for fields in ({"type": 1}, {"sender": None}, {"room_id": 5}, {"content": []},
                       {"origin_server_ts": "1"}, {"depth": True}, {"depth": 1.0},
                       {"prev_events": "$p"}, {"auth_events": [5]}, {"hashes": []},
                       {"hashes": {"sha256": 5}}, {"signatures": {"a": "s"}},
                       {"signatures": {"a": {"ed25519:1": 1}}}, {"state_key": 0},
                       {"unsigned": []}, {"prev_events": ["not-an-id"]}):
            self.assertBad(event(**fields), version="5")

    def test_depth_range(self):
        """Depth is non-negative; v6+ caps it at 2**53-1, earlier versions at 2**63-1."""
        self.assertBad(event(depth=-1), version="5")
        validate_event_dict(V("5"), event(depth=2**60))
        self.assertBad(event(depth=2**60), version="6")
        self.assertBad(event(depth=2**63), version="5")

    def test_sender_must_be_user_id(self):
        """The sender needs a sigil, a localpart and a valid server name."""
        for sender in ("u:a", "@:a", "@u", "@u:bad host"):
            self.assertBad(event(sender=sender))

    def test_room_id_must_be_room_id(self):
        """room_id must start with '!'."""
        self.assertBad(event(room_id="#alias:a"))

    def test_redacts_must_be_string(self):
        """A redaction's redacts (top level before v11, in content from v11) is a string."""
        self.assertBad(event(type="m.room.redaction", redacts=5), version="10")
        self.assertBad(event(type="m.room.redaction", content={"redacts": ["$x"]}),
                       version="11")
        validate_event_dict(V("11"), event(type="m.room.redaction", content={"redacts": "$x"}))

    def test_too_many_prev_and_auth_events(self):
        """At most 20 prev_events and 10 auth_events."""
        validate_event_dict(V("12"), event(prev_events=[f"$p{i}" for i in range(20)],
                                           auth_events=[f"$a{i}" for i in range(10)]))
        self.assertBad(event(prev_events=[f"$p{i}" for i in range(21)]))
        self.assertBad(event(auth_events=[f"$a{i}" for i in range(11)]))


class RoomIdRulesTests(unittest.TestCase):
    def create(self, **fields):
        return event(type="m.room.create", state_key="", content={}, prev_events=[],
                     auth_events=[], **fields)

    def test_v12_create_has_no_room_id(self):
        """In v12 the create event must omit room_id (it is derived from the event)."""
        ev = self.create()
        del ev["room_id"]
        validate_event_dict(V("12"), ev)
        self.assertRaises(EventValidationError, validate_event_dict, V("12"), self.create())

    def test_create_before_v12_needs_room_id(self):
        """Before v12 a create event needs a room_id like any other."""
        ev = self.create()
        del ev["room_id"]
        self.assertRaises(EventValidationError, validate_event_dict, V("11"), ev)

    def test_v12_other_events_need_room_id(self):
        """Non-create v12 events still carry their room_id."""
        self.assertRaises(EventValidationError, validate_event_dict, V("12"),
                          without("room_id"))


class SizeTests(unittest.TestCase):
    def sized(self, size):
        ev = event(content={"body": ""})
        padding = size - len(encode_canonical_json(ev))
        ev["content"]["body"] = "x" * padding
        self.assertEqual(len(encode_canonical_json(ev)), size)
        return ev

    def test_limit_is_inclusive(self):
        """An event of exactly 65,536 canonical bytes is accepted; one byte more is not."""
        validate_event_dict(V("12"), self.sized(MAX_PDU_SIZE))
        e = self.assertRaises(EventTooLarge, validate_event_dict, V("12"),
                              self.sized(MAX_PDU_SIZE + 1))
        self.assertEqual((e.errcode, e.status), ("M_TOO_LARGE", 413))

    def test_size_counts_signatures_and_utf8_bytes(self):
        """The size includes signatures and counts UTF-8 bytes, not characters."""
        ev = event(content={"body": "é" * 32000})
        validate_event_dict(V("12"), ev)
        ev["signatures"]["b"] = {"ed25519:1": "s" * 2000}
        self.assertRaises(EventTooLarge, validate_event_dict, V("12"), ev)

    def test_id_fields_limited_to_255_bytes(self):
        """type, state_key, sender, room_id and event IDs are at most 255 bytes."""
        validate_event_dict(V("12"), event(type="t" * 255, state_key="é" * 127))
        for fields in ({"type": "t" * 256}, {"state_key": "é" * 128},
                       {"sender": "@" + "u" * 253 + ":a"}, {"room_id": "!" + "r" * 253 + ":a"},
                       {"prev_events": ["$" + "e" * 255]}, {"event_id": "$" + "e" * 255}):
            e = self.assertRaises(EventTooLarge, validate_event_dict, V("12"), event(**fields))
            self.assertEqual(e.errcode, "M_TOO_LARGE")


class CanonicalJsonTests(unittest.TestCase):
    def test_floats_refused_from_v6(self):
        """Floats anywhere are refused from v6 and tolerated in v3-v5."""
        ev = event(content={"n": {"deep": [1.5]}})
        for version in ("3", "4", "5"):
            validate_event_dict(V(version), ev)
        for version in ("6", "11", "12"):
            e = self.assertRaises(EventValidationError, validate_event_dict, V(version), ev)
            self.assertEqual(e.errcode, "M_BAD_JSON")

    def test_big_integers_refused_from_v6(self):
        """Integers beyond ±(2**53-1) are refused from v6 and tolerated before."""
        ev = event(content={"n": -(2**53)})
        validate_event_dict(V("5"), ev)
        self.assertRaises(EventValidationError, validate_event_dict, V("6"), ev)
        validate_event_dict(V("6"), event(content={"n": -(2**53) + 1}))
