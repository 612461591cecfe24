"""A user's push rules: the server defaults merged with the user's own changes, and
the edits the push rules API makes to those changes (spec: Client-Server API,
"Push Rules: API"; pushrules.yaml, push_rule.yaml).

Pure. A user's *changes* are one JSON document::

    {"custom": {kind: [rule, ...]},          # user-defined rules, most important first
     "defaults": {rule_id: {"enabled": bool, "actions": [...]}}}   # edits of defaults

and :func:`ruleset` merges it with :func:`default_rules` in the spec's priority order:
``.m.rule.master`` first (it outranks everything), then per kind (override, content,
room, sender, underride) the user's rules before the server's. Every edit returns a new
document; bad input raises the spec's error and leaves the document unchanged.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from homeserver.errors import BadJson, InvalidParam, MatrixError, MissingParam, NotFound
from homeserver.push.default_rules import KINDS, default_rules, is_default
from homeserver.push.evaluator import conditions_of

Changes = Mapping[str, Any]
Ruleset = dict[str, list[dict[str, Any]]]

_SIMPLE_ACTIONS = frozenset({"notify", "dont_notify", "coalesce"})
MASTER = ".m.rule.master"


class UnrecognizedPath(MatrixError):
    """A push rules path naming no scope, kind or attribute we know (Synapse answers
    these 400 M_UNRECOGNIZED too)."""

    errcode = "M_UNRECOGNIZED"
    status = 400


def empty_changes() -> dict[str, Any]:
    return {"custom": {}, "defaults": {}}


def ruleset(user_id: str, changes: Changes | None) -> Ruleset:
    """kind → rules in evaluation order, as ``GET /pushrules/global/`` shows them."""
    changes = changes or empty_changes()
    defaults = default_rules(user_id)
    edits = changes.get("defaults", {})
    for rules in defaults.values():
        for rule in rules:
            edit = edits.get(rule["rule_id"])
            if edit:
                if "enabled" in edit:
                    rule["enabled"] = edit["enabled"]
                if "actions" in edit:
                    rule["actions"] = copy.deepcopy(edit["actions"])
    custom = changes.get("custom", {})
    result: Ruleset = {}
    for kind in KINDS:
        own = [dict(copy.deepcopy(r), default=False) for r in custom.get(kind, [])]
        server = defaults[kind]
        if kind == "override":
            master = [r for r in server if r["rule_id"] == MASTER]
            server = [r for r in server if r["rule_id"] != MASTER]
            result[kind] = master + own + server
        else:
            result[kind] = own + server
    return result


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UnrecognizedPath(f"Unknown push rule kind {kind!r}")
    return kind


def find_rule(rules: Ruleset, kind: str, rule_id: str) -> dict[str, Any]:
    """The rule, or 404 M_NOT_FOUND."""
    for rule in rules[check_kind(kind)]:
        if rule["rule_id"] == rule_id:
            return rule
    raise NotFound("Unknown push rule")


def check_actions(actions: Any) -> list[Any]:
    """``actions`` as the spec defines them (``coalesce`` is accepted as Synapse does;
    clients send it still). 400 M_BAD_JSON otherwise."""
    if not isinstance(actions, list):
        raise BadJson("actions must be a list")
    for action in actions:
        if isinstance(action, str) and action in _SIMPLE_ACTIONS:
            continue
        if isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            continue
        raise BadJson(f"Unrecognised action {action!r}")
    return actions


def _check_conditions(conditions: Any) -> list[dict[str, Any]]:
    if not isinstance(conditions, list):
        raise BadJson("conditions must be a list")
    for condition in conditions:
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise BadJson("each condition must be an object with a kind")
    return conditions


def _new_rule(kind: str, rule_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    if "actions" not in body:
        raise MissingParam("Missing parameter: actions")
    rule: dict[str, Any] = {"rule_id": rule_id, "enabled": True,
                            "actions": check_actions(body["actions"])}
    if kind in ("override", "underride"):
        rule["conditions"] = _check_conditions(body.get("conditions", []))
    elif kind == "content":
        pattern = body.get("pattern")
        if pattern is None:
            raise MissingParam("Missing parameter: pattern (content rules need one)")
        if not isinstance(pattern, str):
            raise BadJson("pattern must be a string")
        rule["pattern"] = pattern
    return rule


def put_rule(changes: Changes | None, kind: str, rule_id: str, body: Any, *,
             before: str | None = None, after: str | None = None) -> dict[str, Any]:
    """Add or replace a user-defined rule (``PUT /pushrules/global/{kind}/{ruleId}``).

    A replaced rule keeps its place unless ``before``/``after`` (another user-defined
    rule of the same kind) say otherwise; a new one goes first in its kind (spec: the
    most important of the user's rules) unless they do.
    """
    check_kind(kind)
    if not rule_id or "/" in rule_id or "\\" in rule_id:
        raise InvalidParam("rule_id may not be empty or contain slashes or backslashes")
    if is_default(rule_id):
        raise InvalidParam("Cannot add new rule_ids that start with '.'")
    if not isinstance(body, dict):
        raise BadJson("The body must be a JSON object")
    if before is not None and after is not None:
        raise InvalidParam("Give before or after, not both")
    rule = _new_rule(kind, rule_id, body)
    new = copy.deepcopy(dict(changes or empty_changes()))
    custom = new.setdefault("custom", {})
    rules = [r for r in custom.get(kind, [])]
    old = next((i for i, r in enumerate(rules) if r["rule_id"] == rule_id), None)
    relative = before if before is not None else after
    if relative is not None:
        if is_default(relative):
            raise InvalidParam("A rule cannot be placed relative to a server-default rule")
        if relative == rule_id:
            raise InvalidParam("A rule cannot be placed relative to itself")
        if old is not None:
            rule["enabled"] = rules[old].get("enabled", True)
            del rules[old]
        at = next((i for i, r in enumerate(rules) if r["rule_id"] == relative), None)
        if at is None:
            raise NotFound(f"before/after rule {relative!r} not found")
        rules.insert(at if before is not None else at + 1, rule)
    elif old is not None:
        rule["enabled"] = rules[old].get("enabled", True)
        rules[old] = rule
    else:
        rules.insert(0, rule)
    custom[kind] = rules
    return new


def delete_rule(changes: Changes | None, kind: str, rule_id: str) -> dict[str, Any]:
    """Remove a user-defined rule (server-default ones cannot be: 400)."""
    check_kind(kind)
    if is_default(rule_id):
        raise InvalidParam("Cannot delete a server-default push rule")
    new = copy.deepcopy(dict(changes or empty_changes()))
    rules = new.setdefault("custom", {}).get(kind, [])
    kept = [r for r in rules if r["rule_id"] != rule_id]
    if len(kept) == len(rules):
        raise NotFound("Unknown push rule")
    new["custom"][kind] = kept
    return new


def _edit(changes: Changes | None, user_id: str, kind: str, rule_id: str,
          key: str, value: Any) -> dict[str, Any]:
    find_rule(ruleset(user_id, changes), kind, rule_id)  # 404 if unknown
    new = copy.deepcopy(dict(changes or empty_changes()))
    if is_default(rule_id):
        new.setdefault("defaults", {}).setdefault(rule_id, {})[key] = value
    else:
        for rule in new["custom"][kind]:
            if rule["rule_id"] == rule_id:
                rule[key] = value
    return new


def set_enabled(changes: Changes | None, user_id: str, kind: str, rule_id: str,
                body: Any) -> dict[str, Any]:
    """``PUT .../enabled`` with ``{"enabled": bool}``."""
    check_kind(kind)
    if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
        raise BadJson("enabled must be a boolean")
    return _edit(changes, user_id, kind, rule_id, "enabled", body["enabled"])


def set_actions(changes: Changes | None, user_id: str, kind: str, rule_id: str,
                body: Any) -> dict[str, Any]:
    """``PUT .../actions`` with ``{"actions": [...]}``."""
    check_kind(kind)
    if not isinstance(body, dict) or "actions" not in body:
        raise MissingParam("Missing parameter: actions")
    return _edit(changes, user_id, kind, rule_id, "actions", check_actions(body["actions"]))


def copy_room_rules(changes: Changes | None, old_room: str,
                    new_room: str) -> dict[str, Any] | None:
    """The changes with the user's enabled rules about ``old_room`` copied for
    ``new_room``, its replacement (spec: "Room Upgrades", server behaviour: the
    user's settings follow the room); None when there is nothing to copy.

    A rule is about a room when one of its conditions matches ``room_id`` against
    exactly that room's ID (a ``room`` rule's condition is its
    ID). As Synapse does, the copy's ID is the new room's ID and its ``room_id``
    conditions name the new room; the copy goes first in its kind. A rule the
    user already has under that ID is left as it is (the user may have changed it).
    """
    custom = (changes or empty_changes()).get("custom", {})
    new = copy.deepcopy(dict(changes or empty_changes()))
    new_custom = new.setdefault("custom", {})
    copied = False
    for kind in KINDS:
        taken = {r["rule_id"] for r in custom.get(kind, [])}
        for rule in custom.get(kind, []):
            if not rule.get("enabled", True) or new_room in taken or not any(
                    c.get("key") == "room_id" and c.get("pattern") == old_room
                    for c in conditions_of(kind, rule) if isinstance(c, dict)):
                continue
            copy_ = dict(copy.deepcopy(rule), rule_id=new_room)
            if "conditions" in copy_:
                copy_["conditions"] = [
                    dict(c, pattern=new_room) if isinstance(c, dict)
                    and c.get("key") == "room_id" and c.get("pattern") == old_room else c
                    for c in copy_["conditions"]]
            new_custom[kind] = [copy_] + list(new_custom.get(kind, []))
            taken.add(new_room)
            copied = True
    return new if copied else None


def for_client(rules: Ruleset) -> Ruleset:
    """The ruleset as clients see it: ``room``/``sender`` rules carry no conditions
    (their ``rule_id`` is the room or user, spec: "Push Rules")."""
    return {kind: [{k: v for k, v in r.items() if not (kind in ("room", "sender")
                                                       and k == "conditions")}
                   for r in rules[kind]] for kind in KINDS}
