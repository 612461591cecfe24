"""Push rule evaluation (spec: Client-Server API, "Push Notifications", "Push Rules",
"Conditions", "Actions"; appendices "Glob-style matching", "Dot-separated property
paths").

Pure: an event (as a dict), a user's ruleset (``rulesets.ruleset``) and what the
conditions need to know of the room (:class:`RoomFacts`) in; the matching rule's
actions out. The first enabled rule whose conditions all hold wins; no match means no
notification.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Iterable, Mapping, Sequence

from homeserver.push.default_rules import KINDS, LEGACY_MENTION_RULES

_NOT_WORD = "A-Za-z0-9_"
_COUNT_RE = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class RoomFacts:
    """What conditions read from the room at the event."""

    #: joined members (``room_member_count``)
    member_count: int
    #: the sender's power level (``sender_notification_permission``)
    sender_power_level: float
    #: the ``notifications`` levels of ``m.room.power_levels`` (default ``room``: 50)
    notification_levels: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the actions mean for counts and pushes."""

    actions: tuple[Any, ...]
    notify: bool
    highlight: bool
    sound: str | None


def split_path(key: str) -> tuple[str, ...]:
    """``content.m\\.relates_to.rel_type`` → ("content", "m.relates_to", "rel_type"):
    ``\\.`` is a dot and ``\\\\`` a backslash inside a name; other escapes stay as
    they are."""
    parts, current, i = [], [], 0
    while i < len(key):
        c = key[i]
        if c == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            current.append(key[i + 1])
            i += 2
            continue
        if c == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


@functools.lru_cache(maxsize=4096)
def _path(key: str) -> tuple[str, ...]:
    return split_path(key)


def lookup(event: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted path, or ``_MISSING``."""
    value: Any = event
    for part in _path(key):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


@functools.lru_cache(maxsize=4096)
def glob_regex(pattern: str, words: bool) -> re.Pattern:
    """``*`` any run, ``?`` one character, case-insensitive; ``words``: the match may
    be any substring bounded by word boundaries (``content.body``), else the whole
    value."""
    body = "".join(".*?" if c == "*" else "." if c == "?" else re.escape(c)
                   for c in pattern)
    if words:
        return re.compile(f"(?<![{_NOT_WORD}]){body}(?![{_NOT_WORD}])",
                          re.IGNORECASE | re.DOTALL)
    return re.compile(f"{body}\\Z", re.IGNORECASE | re.DOTALL)


def _event_match(event: Mapping[str, Any], key: Any, pattern: Any) -> bool:
    if not isinstance(key, str) or not isinstance(pattern, str):
        return False
    value = lookup(event, key)
    if not isinstance(value, str):
        return False
    if key == "content.body":
        return glob_regex(pattern, True).search(value) is not None
    return glob_regex(pattern, False).match(value) is not None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int)) and not isinstance(value, float)


def _same(a: Any, b: Any) -> bool:
    # JSON true is not 1: compare types as well as values
    return _is_scalar(a) and _is_scalar(b) and type(a) is type(b) and a == b


def _member_count(spec: Any, count: int) -> bool:
    if not isinstance(spec, str):
        return False
    m = _COUNT_RE.match(spec)
    if m is None:
        return False
    op, number = m.group(1) or "==", int(m.group(2))
    return {"==": count == number, "<": count < number, ">": count > number,
            "<=": count <= number, ">=": count >= number}[op]


def _contains_display_name(event: Mapping[str, Any], name: str | None) -> bool:
    body = lookup(event, "content.body")
    if not name or not isinstance(body, str):
        return False
    return _word_regex(name).search(body) is not None


def condition_holds(condition: Mapping[str, Any], event: Mapping[str, Any],
                    display_name: str | None, room: RoomFacts) -> bool:
    """One condition; unknown kinds never hold (spec: they disable the rule)."""
    kind = condition.get("kind")
    if kind == "event_match":
        return _event_match(event, condition.get("key"), condition.get("pattern"))
    if kind == "event_property_is":
        key = condition.get("key")
        return isinstance(key, str) and _same(lookup(event, key), condition.get("value"))
    if kind == "event_property_contains":
        key = condition.get("key")
        values = lookup(event, key) if isinstance(key, str) else _MISSING
        wanted = condition.get("value")
        return isinstance(values, list) and any(_same(v, wanted) for v in values)
    if kind == "contains_display_name":
        return _contains_display_name(event, display_name)
    if kind == "room_member_count":
        return _member_count(condition.get("is"), room.member_count)
    if kind == "sender_notification_permission":
        key = condition.get("key")
        if not isinstance(key, str):
            return False
        needed = room.notification_levels.get(key, 50)
        return room.sender_power_level >= needed
    return False


def conditions_of(kind: str, rule: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """The conditions a rule stands for: ``content``, ``room`` and ``sender`` rules
    have theirs implied by their pattern or ID (spec: "Push Rules")."""
    if kind == "content":
        return [{"kind": "event_match", "key": "content.body",
                 "pattern": rule.get("pattern")}]
    if kind == "room":
        return [{"kind": "event_match", "key": "room_id", "pattern": rule["rule_id"]}]
    if kind == "sender":
        return [{"kind": "event_match", "key": "sender", "pattern": rule["rule_id"]}]
    return rule.get("conditions") or []


def _memo_key(condition: Mapping[str, Any], display_name: str | None) -> Any:
    """What a condition's outcome depends on besides the event and the room, or None
    if it cannot be a dict key (a compound ``value``)."""
    value = condition.get("value")
    if not _is_scalar(value):
        return None
    kind = condition.get("kind")
    return (kind, condition.get("key"), condition.get("pattern"), type(value), value,
            condition.get("is"), display_name if kind == "contains_display_name" else None)


def matching_rule(rules: Mapping[str, Iterable[Mapping[str, Any]]],
                  event: Mapping[str, Any], display_name: str | None,
                  room: RoomFacts, memo: dict | None = None) -> Mapping[str, Any] | None:
    """The first enabled rule that matches, in priority order, or None.

    ``memo``: a dict shared by the evaluations of one event for many users: most
    conditions are the same for all of them (the defaults), so each is tested once.
    """
    content = event.get("content")
    has_mentions = isinstance(content, Mapping) and "m.mentions" in content
    for kind in KINDS:
        for rule in rules.get(kind, ()):
            if not rule.get("enabled", True):
                continue
            if has_mentions and rule.get("rule_id") in LEGACY_MENTION_RULES:
                continue  # spec v1.7: m.mentions replaces the body-based rules
            for condition in conditions_of(kind, rule):
                key = _memo_key(condition, display_name) if memo is not None else None
                if key is None:
                    holds = condition_holds(condition, event, display_name, room)
                else:
                    holds = memo.get(key)
                    if holds is None:
                        holds = memo[key] = condition_holds(condition, event,
                                                            display_name, room)
                if not holds:
                    break
            else:
                return rule
    return None


def outcome(actions: Sequence[Any]) -> Outcome:
    """Interpret actions: ``notify``; tweaks ``highlight`` (value default true) and
    ``sound``. ``dont_notify``, ``coalesce`` and unknown actions notify nobody."""
    highlight, sound = False, None
    for action in actions:
        if isinstance(action, Mapping):
            if action.get("set_tweak") == "highlight":
                highlight = action.get("value", True) is True
            elif action.get("set_tweak") == "sound" and isinstance(action.get("value"), str):
                sound = action["value"]
    notify = "notify" in actions
    return Outcome(tuple(actions), notify, highlight and notify, sound if notify else None)


def evaluate(rules: Mapping[str, Iterable[Mapping[str, Any]]], event: Mapping[str, Any],
             display_name: str | None, room: RoomFacts, memo: dict | None = None
             ) -> Outcome:
    """The outcome of ``rules`` for one event and one user (``memo``: see
    :func:`matching_rule`)."""
    rule = matching_rule(rules, event, display_name, room, memo)
    return outcome(rule.get("actions", []) if rule is not None else [])


@functools.lru_cache(maxsize=8192)
def _word_regex(text: str) -> re.Pattern:
    return re.compile(f"(?<![{_NOT_WORD}]){re.escape(text)}(?![{_NOT_WORD}])",
                      re.IGNORECASE)


class _EventFacts:
    """What the default rules' user-dependent conditions read, taken once per event."""

    def __init__(self, event: Mapping[str, Any]) -> None:
        content = event.get("content")
        content = content if isinstance(content, Mapping) else {}
        self.legacy = "m.mentions" not in content  # the body-based rules apply
        body = content.get("body")
        self.body = body if isinstance(body, str) and self.legacy else None
        mentions = lookup(event, "content.m\\.mentions.user_ids")
        self.mentioned = frozenset(u for u in mentions if isinstance(u, str)) \
            if isinstance(mentions, list) else frozenset()
        state_key = event.get("state_key")
        self.state_key = state_key.lower() if isinstance(state_key, str) else None


def default_rules_signature(facts: _EventFacts, user_id: str,
                            display_name: str | None) -> tuple[bool, ...]:
    """For a user with the server-default rules only: the truth of the default rules'
    only user-dependent conditions (``invite_for_me``'s state_key, ``is_user_mention``,
    ``contains_display_name``, ``contains_user_name``). Users with equal signatures get
    equal outcomes, so one evaluation serves them all (:class:`SharedEvaluation`)."""
    if "*" in user_id or "?" in user_id:
        invited = facts.state_key is not None and \
            glob_regex(user_id, False).match(facts.state_key) is not None
    else:
        invited = facts.state_key == user_id.lower()
    body = facts.body
    return (invited, user_id in facts.mentioned,
            bool(body and display_name and _word_regex(display_name).search(body)),
            bool(body and _word_regex(user_id[1:].split(":", 1)[0]).search(body)))


class SharedEvaluation:
    """The evaluations of one event for many users: conditions are memoised, and users
    on the default rules share the outcome of equal :func:`default_rules_signature`."""

    def __init__(self, event: Mapping[str, Any], room: RoomFacts) -> None:
        self._event = event
        self._room = room
        self._memo: dict = {}
        self._by_signature: dict[tuple[bool, ...], Outcome] = {}
        self._facts = _EventFacts(event)

    def outcome(self, rules: Mapping[str, Iterable[Mapping[str, Any]]], user_id: str,
                display_name: str | None, *, default_rules: bool) -> Outcome:
        if not default_rules:
            return evaluate(rules, self._event, display_name, self._room, self._memo)
        signature = default_rules_signature(self._facts, user_id, display_name)
        found = self._by_signature.get(signature)
        if found is None:
            found = self._by_signature[signature] = evaluate(
                rules, self._event, display_name, self._room, self._memo)
        return found
