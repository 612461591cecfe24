"""The server-default push rules (spec: Client-Server API, "Push Notifications",
"Predefined Rules").

The list follows the spec's order. It keeps the legacy body-based mention rules
(``.m.rule.contains_display_name``, ``.m.rule.roomnotif``,
``.m.rule.contains_user_name``) that spec v1.17 removed but Synapse and the clients
in use still ship; the evaluator skips them for events that carry ``m.mentions``
(spec v1.7, "User and room mentions").
"""

from __future__ import annotations

import copy
from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")
#: rules the evaluator ignores for an event with ``content.m.mentions``
LEGACY_MENTION_RULES = frozenset({".m.rule.contains_display_name", ".m.rule.roomnotif",
                                  ".m.rule.contains_user_name"})

_SOUND = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}
_USER = "[the user's Matrix ID]"
_LOCALPART = "[the local part of the user's Matrix ID]"


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _rule(rule_id: str, conditions: list, actions: list, *,
          enabled: bool = True) -> dict[str, Any]:
    return {"rule_id": rule_id, "default": True, "enabled": enabled,
            "conditions": conditions, "actions": actions}


_OVERRIDE = [
    _rule(".m.rule.master", [], [], enabled=False),
    _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
    _rule(".m.rule.invite_for_me", [_match("type", "m.room.member"),
                                    _match("content.membership", "invite"),
                                    _match("state_key", _USER)], ["notify", _SOUND]),
    _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
    _rule(".m.rule.is_user_mention",
          [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
            "value": _USER}], ["notify", _SOUND, _HIGHLIGHT]),
    _rule(".m.rule.contains_display_name", [{"kind": "contains_display_name"}],
          ["notify", _SOUND, _HIGHLIGHT]),
    _rule(".m.rule.is_room_mention",
          [{"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
           {"kind": "sender_notification_permission", "key": "room"}],
          ["notify", _HIGHLIGHT]),
    _rule(".m.rule.roomnotif",
          [{"kind": "sender_notification_permission", "key": "room"},
           _match("content.body", "@room")], ["notify", _HIGHLIGHT]),
    _rule(".m.rule.tombstone", [_match("type", "m.room.tombstone"), _match("state_key", "")],
          ["notify", _HIGHLIGHT]),
    _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
    _rule(".m.rule.room.server_acl",
          [_match("type", "m.room.server_acl"), _match("state_key", "")], []),
    _rule(".m.rule.suppress_edits",
          [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
            "value": "m.replace"}], []),
]

_CONTENT = [
    {"rule_id": ".m.rule.contains_user_name", "default": True, "enabled": True,
     "pattern": _LOCALPART, "actions": ["notify", _SOUND, _HIGHLIGHT]},
]

_UNDERRIDE = [
    _rule(".m.rule.call", [_match("type", "m.call.invite")],
          ["notify", {"set_tweak": "sound", "value": "ring"}]),
    _rule(".m.rule.encrypted_room_one_to_one",
          [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
          ["notify", _SOUND]),
    _rule(".m.rule.room_one_to_one",
          [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
          ["notify", _SOUND]),
    _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
    _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
]


def _personalise(value: Any, user_id: str, localpart: str) -> Any:
    if value == _USER:
        return user_id
    if value == _LOCALPART:
        return localpart
    if isinstance(value, dict):
        return {k: _personalise(v, user_id, localpart) for k, v in value.items()}
    if isinstance(value, list):
        return [_personalise(v, user_id, localpart) for v in value]
    return value


def default_rules(user_id: str) -> dict[str, list[dict[str, Any]]]:
    """kind → the server-default rules of that kind, filled in for ``user_id``."""
    localpart = user_id[1:].split(":", 1)[0]
    rules: dict[str, list] = {"override": _OVERRIDE, "content": _CONTENT, "room": [],
                              "sender": [], "underride": _UNDERRIDE}
    return {kind: _personalise(copy.deepcopy(rules[kind]), user_id, localpart)
            for kind in KINDS}


def is_default(rule_id: str) -> bool:
    """Server-default rule IDs start with a dot (spec: "Predefined Rules")."""
    return rule_id.startswith(".")
