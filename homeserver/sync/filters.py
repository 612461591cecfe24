"""Filters (spec: Client-Server API, "Filtering"; data/api/client-server/definitions/
sync_filter.yaml, room_event_filter.yaml, event_filter.yaml). Pure: no I/O.

:func:`parse_filter` validates a filter definition at the edge (``M_BAD_JSON`` for
anything the schema does not allow) and returns a frozen :class:`SyncFilter` whose
parts answer "does this event pass?". Unknown keys are ignored, as the spec's schema
allows additional properties.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
from typing import Any, Iterable, Mapping

from homeserver.errors import BadJson
from homeserver.push.evaluator import split_path

#: timeline events per room when the filter gives no limit, and the most we give
DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 100
#: a limit on any other section is capped to this (presence, account data, ephemeral)
MAX_LIMIT = 1000


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    # spec: "A '*' can be used as a wildcard to match any sequence of characters"
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$",
                      re.DOTALL)


def _type_matches(event_type: str, patterns: Iterable[str]) -> bool:
    return any(p == event_type or ("*" in p and _glob(p).match(event_type))
               for p in patterns)


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """EventFilter: limit, types / not_types (with ``*``), senders / not_senders."""

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()

    def matches(self, event_type: str, sender: str | None = None) -> bool:
        # the "not_" lists win over the positive ones (spec)
        if self.not_types and _type_matches(event_type, self.not_types):
            return False
        if self.types is not None and not _type_matches(event_type, self.types):
            return False
        if sender is not None:
            if sender in self.not_senders:
                return False
            if self.senders is not None and sender not in self.senders:
                return False
        return True

    def filter_limit(self, default: int, maximum: int = MAX_LIMIT) -> int:
        return min(self.limit if self.limit is not None else default, maximum)

    @property
    def passes_every_type_and_sender(self) -> bool:
        """True if no event is left out by type or sender."""
        return self.types is None and not self.not_types and self.senders is None \
            and not self.not_senders


@dataclasses.dataclass(frozen=True)
class RoomEventFilter(EventFilter):
    """RoomEventFilter: an EventFilter plus rooms, contains_url and lazy loading."""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False
    unread_thread_notifications: bool = False

    def room_allowed(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def passes_every_event(self) -> bool:
        """True if no event of an allowed room is ever left out."""
        return self.passes_every_type_and_sender and self.contains_url is None

    def matches_pdu(self, event: Any) -> bool:
        return self.matches_event(event.type, event.sender, None, event.content)

    def matches_event(self, event_type: str, sender: str | None, room_id: str | None,
                      content: Mapping[str, Any] | None = None) -> bool:
        if room_id is not None and not self.room_allowed(room_id):
            return False
        if self.contains_url is not None:
            has_url = isinstance(content, Mapping) and isinstance(content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return self.matches(event_type, sender)


@dataclasses.dataclass(frozen=True)
class SyncFilter:
    """The whole filter (``Filter`` in the spec) as /sync uses it."""

    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"
    presence: EventFilter = EventFilter()
    account_data: EventFilter = EventFilter()
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    include_leave: bool = False
    ephemeral: RoomEventFilter = RoomEventFilter()
    state: RoomEventFilter = RoomEventFilter()
    timeline: RoomEventFilter = RoomEventFilter()
    room_account_data: RoomEventFilter = RoomEventFilter()

    def room_allowed(self, room_id: str) -> bool:
        """The RoomFilter's rooms / not_rooms (applied before every room section)."""
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    @property
    def timeline_limit(self) -> int:
        return self.timeline.filter_limit(DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT)

    @property
    def lazy_load_members(self) -> bool:
        # spec: for /sync, lazy loading is only supported on the state filter
        return self.state.lazy_load_members


DEFAULT_FILTER = SyncFilter()


# -- parsing and validation ------------------------------------------------------------
def _strings(where: str, value: Any, prefix: str | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadJson(f"{where} must be a list of strings")
    if prefix is not None:
        for v in value:
            if not v.startswith(prefix):
                raise BadJson(f"{where}: {v!r} does not start with {prefix!r}")
    return tuple(value)


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadJson(f"{where} must be a boolean")
    return value


def _object(where: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadJson(f"{where} must be an object")
    return value


def _event_filter_fields(where: str, body: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    limit = body.get("limit")
    if limit is not None:
        # The spec says "greater than 0", but Synapse accepts 0 and clients (and
        # sytest's "Can pass a JSON filter as a query parameter") use a timeline
        # limit of 0 to get a room's state without its messages.
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadJson(f"{where}.limit must be a non-negative integer")
        fields["limit"] = limit
    for key, prefix in (("types", None), ("not_types", None), ("senders", "@"),
                        ("not_senders", "@")):
        if body.get(key) is not None:
            fields[key] = _strings(f"{where}.{key}", body[key], prefix)
    return fields


def parse_event_filter(where: str, value: Any) -> EventFilter:
    return EventFilter(**_event_filter_fields(where, _object(where, value)))


def parse_room_event_filter(where: str, value: Any) -> RoomEventFilter:
    body = _object(where, value)
    fields = _event_filter_fields(where, body)
    for key in ("rooms", "not_rooms"):
        if body.get(key) is not None:
            fields[key] = _strings(f"{where}.{key}", body[key], "!")
    for key in ("contains_url", "lazy_load_members", "include_redundant_members",
                "unread_thread_notifications"):
        if body.get(key) is not None:
            fields[key] = _bool(f"{where}.{key}", body[key])
    return RoomEventFilter(**fields)


def parse_filter(value: Any) -> SyncFilter:
    """Validate a filter definition and build it; ``M_BAD_JSON`` if it is malformed."""
    if not isinstance(value, dict):
        raise BadJson("filter must be a JSON object")
    fields: dict[str, Any] = {}
    if value.get("event_fields") is not None:
        fields["event_fields"] = _strings("event_fields", value["event_fields"])
    if value.get("event_format") is not None:
        if value["event_format"] not in ("client", "federation"):
            raise BadJson("event_format must be 'client' or 'federation'")
        fields["event_format"] = value["event_format"]
    fields["presence"] = parse_event_filter("presence", value.get("presence"))
    fields["account_data"] = parse_event_filter("account_data", value.get("account_data"))
    room = _object("room", value.get("room"))
    for key in ("rooms", "not_rooms"):
        if room.get(key) is not None:
            fields[key] = _strings(f"room.{key}", room[key], "!")
    if room.get("include_leave") is not None:
        fields["include_leave"] = _bool("room.include_leave", room["include_leave"])
    for key, name in (("ephemeral", "ephemeral"), ("state", "state"),
                      ("timeline", "timeline"), ("account_data", "room_account_data")):
        fields[name] = parse_room_event_filter(f"room.{key}", room.get(key))
    return SyncFilter(**fields)


# -- event_fields (spec appendix: "Dot-separated property paths") ----------------------
def apply_event_fields(event: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """Only the listed fields of ``event`` (missing ones are simply absent)."""
    result: dict[str, Any] = {}
    for path in fields:
        parts = split_path(path)
        source: Any = event
        for part in parts:
            if not isinstance(source, Mapping) or part not in source:
                break
            source = source[part]
        else:
            target = result
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    break
            else:
                target[parts[-1]] = copy.deepcopy(source)
    return result
