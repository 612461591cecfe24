"""RoomEventFilter: which events of a room a client wants (spec: "Filtering",
``RoomEventFilter`` / ``EventFilter``).

Pure. ``RoomEventFilter.parse`` validates a client's JSON object (M_BAD_JSON on a
wrong shape); ``matches(event)`` applies ``types``/``not_types`` (``*`` is a wildcard
for any sequence of characters), ``senders``/``not_senders``, ``rooms``/``not_rooms``
and ``contains_url``. ``lazy_load_members`` and ``include_redundant_members`` are
carried for the endpoints that honour them (``/messages``, ``/context``, ``/sync``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Mapping

from homeserver.errors import BadJson, NotJson
from homeserver.events.pdu import PDU


def _strings(body: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadJson(f"filter: {key} must be a list of strings")
    return tuple(value)


def _pattern(globs: tuple[str, ...] | None) -> re.Pattern[str] | None:
    if globs is None:
        return None
    return re.compile("|".join(".*".join(re.escape(p) for p in g.split("*")) for g in globs)
                      or "(?!)")


@dataclasses.dataclass(frozen=True)
class RoomEventFilter:
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    limit: int | None = None
    lazy_load_members: bool = False
    include_redundant_members: bool = False

    @classmethod
    def parse(cls, body: Any) -> "RoomEventFilter":
        """From a JSON object (already decoded); M_BAD_JSON if malformed."""
        if body is None:
            return cls()
        if not isinstance(body, dict):
            raise BadJson("filter must be a JSON object")
        flags = {}
        for key in ("contains_url", "lazy_load_members", "include_redundant_members"):
            value = body.get(key)
            if value is not None and not isinstance(value, bool):
                raise BadJson(f"filter: {key} must be a boolean")
            flags[key] = value
        limit = body.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise BadJson("filter: limit must be an integer greater than 0")
        return cls(types=_strings(body, "types"), not_types=_strings(body, "not_types") or (),
                   senders=_strings(body, "senders"),
                   not_senders=_strings(body, "not_senders") or (),
                   rooms=_strings(body, "rooms"), not_rooms=_strings(body, "not_rooms") or (),
                   contains_url=flags["contains_url"], limit=limit,
                   lazy_load_members=bool(flags["lazy_load_members"]),
                   include_redundant_members=bool(flags["include_redundant_members"]))

    @classmethod
    def from_query(cls, text: str | None) -> "RoomEventFilter":
        """From a ``filter`` query parameter holding JSON (M_NOT_JSON if it is not)."""
        if text is None or text == "":
            return cls()
        try:
            body = json.loads(text)
        except ValueError:
            raise NotJson("filter is not valid JSON") from None
        return cls.parse(body)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_types_re", _pattern(self.types))
        object.__setattr__(self, "_not_types_re", _pattern(self.not_types or None))

    def allows_room(self, room_id: str) -> bool:
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms

    def matches(self, event: PDU) -> bool:
        """Whether ``event`` passes every condition of the filter."""
        if not self.allows_room(event.room_id):
            return False
        if event.sender in self.not_senders:
            return False
        if self.senders is not None and event.sender not in self.senders:
            return False
        not_types: re.Pattern[str] | None = getattr(self, "_not_types_re")
        if not_types is not None and not_types.fullmatch(event.type):
            return False
        types: re.Pattern[str] | None = getattr(self, "_types_re")
        if types is not None and not types.fullmatch(event.type):
            return False
        if self.contains_url is not None:
            has_url = isinstance(event.content.get("url"), str)
            if has_url != self.contains_url:
                return False
        return True

    @property
    def is_empty(self) -> bool:
        """True if no event is ever left out by this filter."""
        return (self.types is None and not self.not_types and self.senders is None
                and not self.not_senders and self.rooms is None and not self.not_rooms
                and self.contains_url is None)
