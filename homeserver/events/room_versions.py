"""Room versions as data: one frozen object of flags per version.

Code asks ``version.knock_join_rule``, never ``if version == "7"`` (STYLE.md 9).
See the Matrix spec, "Room Versions" (rooms/v1 … rooms/v12).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping


class EventIdFormat:
    #: rooms/v1, v2 ("event format v1"): the creating server picks ``$random:server``
    #: and the event carries it in ``event_id``; ``prev_events`` and ``auth_events``
    #: are ``[event_id, {"sha256": reference hash}]`` pairs
    V1 = "v1"
    #: "$" + standard unpadded base64 of the reference hash (room v3)
    BASE64 = "base64"
    #: "$" + URL-safe unpadded base64 of the reference hash (room v4+)
    URLSAFE_BASE64 = "urlsafe_base64"


class StateResAlgorithm:
    #: rooms/v1: conflicts resolved by depth and sha1(event_id), auth events first
    V1 = "v1"
    V2 = "v2"
    #: MSC4297, room v12: conflicted subgraph, auth replayed from an empty state
    V2_1 = "v2.1"


@dataclasses.dataclass(frozen=True)
class RoomVersion:
    identifier: str
    event_id_format: str
    state_res: str
    #: server signing keys must be valid at origin_server_ts (v5+)
    enforce_key_validity: bool
    #: m.room.aliases has special auth and redaction rules (v1-v5)
    special_case_aliases_auth: bool
    #: m.room.redaction has an auth rule: the redact level, or the redacted event's
    #: ID on the redaction's server (rooms v1, v2; v3 moved the check to serving)
    redaction_auth_rule: bool
    #: integers outside ±(2^53-1) and floats rejected in events (v6+)
    strict_canonical_json: bool
    #: power_levels.notifications is checked by auth rules (v6+)
    limit_notifications_power_levels: bool
    #: join_rule "knock" and membership "knock" (v7+)
    knock_join_rule: bool
    #: join_rule "restricted" with "allow" conditions (v8+)
    restricted_join_rule: bool
    #: join_authorised_via_users_server survives redaction (v9+)
    restricted_join_rule_fix: bool
    #: join_rule "knock_restricted" (v10+)
    knock_restricted_join_rule: bool
    #: power level values must be integers, not strings (v10+)
    enforce_int_power_levels: bool
    #: the create event has no "creator"; the sender is the creator (v11+)
    implicit_room_creator: bool
    #: "redacts" moves from the top level into content (v11+)
    redacts_in_content: bool
    #: the v11 redaction algorithm (create keeps all content, PL keeps "invite", …)
    updated_redaction_rules: bool
    #: MSC4291: the room ID is derived from the create event's reference hash (v12)
    room_id_from_create_event: bool
    #: MSC4289: creators (sender + additional_creators) have unbounded power (v12)
    privileged_creators: bool

    @property
    def supports_knock(self) -> bool:
        return self.knock_join_rule

    @property
    def event_format_v1(self) -> bool:
        """Events carry their own ``event_id`` and cite others as (ID, hashes) pairs."""
        return self.event_id_format == EventIdFormat.V1


_V3 = RoomVersion(
    identifier="3",
    event_id_format=EventIdFormat.BASE64,
    state_res=StateResAlgorithm.V2,
    enforce_key_validity=False,
    special_case_aliases_auth=True,
    redaction_auth_rule=False,
    strict_canonical_json=False,
    limit_notifications_power_levels=False,
    knock_join_rule=False,
    restricted_join_rule=False,
    restricted_join_rule_fix=False,
    knock_restricted_join_rule=False,
    enforce_int_power_levels=False,
    implicit_room_creator=False,
    redacts_in_content=False,
    updated_redaction_rules=False,
    room_id_from_create_event=False,
    privileged_creators=False,
)
# Room versions 1 and 2: the first event format; 2 brought state resolution v2.
_V2 = dataclasses.replace(_V3, identifier="2", event_id_format=EventIdFormat.V1,
                          redaction_auth_rule=True)
_V1 = dataclasses.replace(_V2, identifier="1", state_res=StateResAlgorithm.V1)
_V4 = dataclasses.replace(_V3, identifier="4", event_id_format=EventIdFormat.URLSAFE_BASE64)
_V5 = dataclasses.replace(_V4, identifier="5", enforce_key_validity=True)
_V6 = dataclasses.replace(
    _V5,
    identifier="6",
    special_case_aliases_auth=False,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
)
_V7 = dataclasses.replace(_V6, identifier="7", knock_join_rule=True)
_V8 = dataclasses.replace(_V7, identifier="8", restricted_join_rule=True)
_V9 = dataclasses.replace(_V8, identifier="9", restricted_join_rule_fix=True)
_V10 = dataclasses.replace(
    _V9, identifier="10", knock_restricted_join_rule=True, enforce_int_power_levels=True
)
_V11 = dataclasses.replace(
    _V10,
    identifier="11",
    implicit_room_creator=True,
    redacts_in_content=True,
    updated_redaction_rules=True,
)
_V12 = dataclasses.replace(
    _V11,
    identifier="12",
    state_res=StateResAlgorithm.V2_1,
    room_id_from_create_event=True,
    privileged_creators=True,
)

KNOWN_ROOM_VERSIONS: Mapping[str, RoomVersion] = {
    v.identifier: v for v in (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12)
}

DEFAULT_ROOM_VERSION = "12"


class UnsupportedRoomVersion(ValueError):
    pass


def get_room_version(identifier: str) -> RoomVersion:
    """The RoomVersion for ``identifier``; raises UnsupportedRoomVersion if unknown."""
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except (KeyError, TypeError):
        raise UnsupportedRoomVersion(identifier) from None
