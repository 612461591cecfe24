"""Canonical JSON, strict parsing and response encoding (spec: appendices, Canonical JSON)."""

import types

from twisted.trial import unittest

from homeserver.crypto.canonical_json import (
    MAX_SAFE_INTEGER,
    CanonicalJsonError,
    JsonParseError,
    encode_canonical_json,
    encode_json,
    parse_json_strict,
)


class SpecExamplesTests(unittest.TestCase):
    """The examples under "Canonical JSON" in the spec's appendices."""

    def assertCanonical(self, source: str, expected: str) -> None:
        value = parse_json_strict(source, strict=True)
        self.assertEqual(encode_canonical_json(value), expected.encode("utf-8"))

    def test_empty_object(self):
        """{} stays {}."""
        self.assertCanonical("{}", "{}")

    def test_whitespace_removed(self):
        """Insignificant whitespace is dropped."""
        self.assertCanonical('{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}')

    def test_keys_sorted(self):
        """Object keys come out sorted."""
        self.assertCanonical('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}')
        self.assertCanonical('{"b":"2","a":"1"}', '{"a":"1","b":"2"}')

    def test_nested(self):
        """Nested objects and arrays are canonicalised throughout."""
        source = """{"auth": {"success": true, "mxid": "@john.doe:example.com",
            "profile": {"display_name": "John Doe", "three_pids": [
                {"medium": "email", "address": "john.doe@example.org"},
                {"medium": "msisdn", "address": "123456789"}]}}}"""
        expected = (
            '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
            '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
            '{"address":"123456789","medium":"msisdn"}]},"success":true}}')
        self.assertCanonical(source, expected)

    def test_unicode_kept_as_utf8(self):
        """Non-ASCII text is UTF-8, not \\u escapes."""
        self.assertCanonical('{"a": "日本語"}', '{"a":"日本語"}')

    def test_unicode_keys_sorted_by_code_point(self):
        """Non-ASCII keys sort by code point."""
        self.assertCanonical('{"本": 2, "日": 1}', '{"日":1,"本":2}')

    def test_escaped_unicode_unescaped(self):
        """A redundant \\u escape is written as the character itself."""
        self.assertCanonical('{"a": "\\u65E5"}', '{"a":"日"}')

    def test_null(self):
        """null survives."""
        self.assertCanonical('{"a": null}', '{"a":null}')

    def test_negative_zero_becomes_zero(self):
        """-0 is written as 0 (the spec forbids -0 in canonical JSON)."""
        self.assertCanonical('{"a": -0}', '{"a":0}')

    def test_exponent_refused_in_strict_mode(self):
        """The spec's 1e10 example is refused, as Synapse and ruma refuse it."""
        self.assertRaises(CanonicalJsonError, parse_json_strict, '{"b": 1e10}', strict=True)


class EncodeTests(unittest.TestCase):
    def test_code_point_order_not_utf16_order(self):
        """An astral-plane key sorts after U+FFFF, as code points (not UTF-16 units) say."""
        encoded = encode_canonical_json({"\U0001F600": 1, "\uffff": 2})
        self.assertEqual(encoded, '{"\uffff":2,"\U0001F600":1}'.encode("utf-8"))

    def test_control_characters_escaped_per_grammar(self):
        """Control characters use short escapes or lower-case \\u00XX; DEL and / do not."""
        encoded = encode_canonical_json(["\x01\x1f\n\t\"\\", "\x7f/"])
        self.assertEqual(encoded, b'["\\u0001\\u001f\\n\\t\\"\\\\","\x7f/"]')

    def test_safe_integer_bounds_accepted(self):
        """±(2**53-1) are the extreme integers allowed."""
        encoded = encode_canonical_json([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER])
        self.assertEqual(encoded, b"[9007199254740991,-9007199254740991]")

    def test_unsafe_integers_refused(self):
        """2**53 and -(2**53) are refused in strict mode."""
        self.assertRaises(CanonicalJsonError, encode_canonical_json, {"a": 2**53})
        self.assertRaises(CanonicalJsonError, encode_canonical_json, [[-(2**53)]])

    def test_floats_refused(self):
        """Floats are refused in strict mode, even integral ones."""
        self.assertRaises(CanonicalJsonError, encode_canonical_json, {"a": 1.0})
        self.assertRaises(CanonicalJsonError, encode_canonical_json, [0.5])

    def test_lenient_mode_allows_old_room_numbers(self):
        """strict=False lets floats and big integers through (room versions 3-5)."""
        encoded = encode_canonical_json({"b": 2**64, "a": 1.5}, strict=False)
        self.assertEqual(encoded, b'{"a":1.5,"b":18446744073709551616}')

    def test_nan_and_infinity_refused_in_both_modes(self):
        """NaN and Infinity are not JSON, lenient or not."""
        for value in (float("nan"), float("inf"), float("-inf")):
            self.assertRaises(CanonicalJsonError, encode_canonical_json, [value], strict=False)

    def test_booleans_are_not_integers(self):
        """true/false encode as booleans, untouched by the integer range check."""
        self.assertEqual(encode_canonical_json([True, False]), b"[true,false]")

    def test_non_string_keys_refused(self):
        """A non-string key is refused rather than silently stringified."""
        self.assertRaises(CanonicalJsonError, encode_canonical_json, {1: "a"})

    def test_unpaired_surrogate_refused(self):
        """A lone surrogate has no UTF-8 encoding."""
        self.assertRaises(CanonicalJsonError, encode_canonical_json, {"a": "\ud800"})

    def test_unknown_types_refused(self):
        """Only JSON types encode."""
        self.assertRaises(CanonicalJsonError, encode_canonical_json, {"a": b"bytes"})
        self.assertRaises(CanonicalJsonError, encode_canonical_json, {"a": {1, 2}})

    def test_mappings_and_tuples(self):
        """Read-only mappings encode as objects and tuples as arrays, sorted as usual."""
        value = types.MappingProxyType({"b": (1, 2), "a": types.MappingProxyType({"z": 0})})
        self.assertEqual(encode_canonical_json(value), b'{"a":{"z":0},"b":[1,2]}')

    def test_input_not_modified(self):
        """Encoding a nested read-only mapping does not change the caller's value."""
        inner = types.MappingProxyType({"x": 1})
        outer = {"k": [inner]}
        encode_canonical_json(outer)
        self.assertIs(outer["k"][0], inner)

    def test_error_is_value_error_and_bad_json(self):
        """CanonicalJsonError is a ValueError and a M_BAD_JSON 400 MatrixError."""
        try:
            encode_canonical_json(1.5)
        except ValueError as e:
            self.assertEqual((e.errcode, e.status), ("M_BAD_JSON", 400))
        else:
            self.fail("float was accepted")


class ParseTests(unittest.TestCase):
    def test_parses_bytes_and_str(self):
        """UTF-8 bytes and str both parse."""
        self.assertEqual(parse_json_strict(b'{"a": "\xc3\xa9"}'), {"a": "é"})
        self.assertEqual(parse_json_strict('[1, "x"]'), [1, "x"])

    def test_invalid_utf8_refused(self):
        """Bytes that are not UTF-8 are M_NOT_JSON."""
        e = self.assertRaises(JsonParseError, parse_json_strict, b'{"a": "\xff"}')
        self.assertEqual(e.errcode, "M_NOT_JSON")

    def test_utf16_refused(self):
        """UTF-16 is refused even though the stdlib would detect and accept it."""
        self.assertRaises(JsonParseError, parse_json_strict, '{"a": 1}'.encode("utf-16"))

    def test_bom_refused(self):
        """A UTF-8 byte-order mark is not JSON."""
        self.assertRaises(JsonParseError, parse_json_strict, b'\xef\xbb\xbf{}')

    def test_constants_refused(self):
        """NaN, Infinity and -Infinity are refused, strict or not."""
        for text in ("[NaN]", "[Infinity]", "[-Infinity]"):
            self.assertRaises(JsonParseError, parse_json_strict, text)
            self.assertRaises(JsonParseError, parse_json_strict, text, strict=True)

    def test_syntax_errors_refused(self):
        """Malformed JSON is M_NOT_JSON."""
        for text in ("{", "{'a': 1}", "[1,]", "", "tru"):
            self.assertRaises(JsonParseError, parse_json_strict, text)

    def test_escaped_lone_surrogate_refused(self):
        """An escaped unpaired surrogate is refused; an escaped pair is fine."""
        self.assertRaises(JsonParseError, parse_json_strict, b'{"a": "\\ud800"}')
        self.assertRaises(JsonParseError, parse_json_strict, b'{"\\uDC00": 1}')
        self.assertEqual(parse_json_strict(b'["\\ud83d\\ude00"]'), ["\U0001F600"])

    def test_str_with_lone_surrogate_refused(self):
        """A str holding a raw lone surrogate is refused."""
        self.assertRaises(JsonParseError, parse_json_strict, '["\ud800"]')

    def test_deep_nesting_refused(self):
        """Pathologically deep nesting is an error, not a crash."""
        self.assertRaises(JsonParseError, parse_json_strict, "[" * 100000 + "]" * 100000)

    def test_lenient_accepts_floats_and_duplicates(self):
        """Without strict, floats, big integers and duplicate keys are accepted."""
        self.assertEqual(parse_json_strict('{"a": 1.5, "b": 1e400, "c": 1, "c": 2}')["c"], 2)
        self.assertEqual(parse_json_strict(str(2**64)), 2**64)

    def test_strict_refuses_floats(self):
        """Strict parsing refuses fractions and exponents as M_BAD_JSON."""
        for text in ("[1.0]", "[1e2]", "[-0.0]", "[1E+2]"):
            e = self.assertRaises(CanonicalJsonError, parse_json_strict, text, strict=True)
            self.assertEqual(e.errcode, "M_BAD_JSON")

    def test_strict_integer_range(self):
        """Strict parsing allows ±(2**53-1) and refuses anything beyond."""
        self.assertEqual(parse_json_strict("[9007199254740991, -9007199254740991]",
                                           strict=True),
                         [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER])
        for text in ("[9007199254740992]", "[-9007199254740992]", "[" + "9" * 5000 + "]"):
            self.assertRaises(CanonicalJsonError, parse_json_strict, text, strict=True)

    def test_strict_refuses_duplicate_keys(self):
        """Strict parsing refuses duplicate keys, at any depth."""
        self.assertRaises(CanonicalJsonError, parse_json_strict,
                          '{"a": {"b": 1, "b": 2}}', strict=True)


class EncodeJsonTests(unittest.TestCase):
    def test_compact_utf8(self):
        """Responses are compact, key order preserved, non-ASCII as raw UTF-8."""
        self.assertEqual(encode_json({"z": 1, "a": "é"}), '{"z":1,"a":"é"}'.encode("utf-8"))

    def test_floats_allowed(self):
        """Responses are not canonical: floats pass."""
        self.assertEqual(encode_json([0.5]), b"[0.5]")

    def test_nan_never_emitted(self):
        """NaN and the infinities are not JSON: never emitted (null instead)."""
        self.assertEqual(encode_json([float("nan"), float("inf"), -float("inf")]),
                         b"[null,null,null]")

    def test_what_orjson_refuses_still_encodes(self):
        """Integers beyond 64 bits and non-string keys encode as the stdlib does."""
        self.assertEqual(encode_json({"n": 2 ** 70, 1: True}),
                         b'{"n":1180591620717411303424,"1":true}')

    def test_unserialisable_refused(self):
        """A value that is not JSON (a set) raises TypeError, not a broken body."""
        self.assertRaises(TypeError, encode_json, {"a": {1, 2}})

    def test_mapping_views(self):
        """Read-only mappings encode as objects."""
        self.assertEqual(encode_json({"a": types.MappingProxyType({"b": 1})}), b'{"a":{"b":1}}')

    def test_lone_surrogate_escaped_not_fatal(self):
        """A lone surrogate from old data is \\u-escaped rather than failing the response."""
        self.assertEqual(encode_json(["\ud800é"]), b'["\\ud800\\u00e9"]')
