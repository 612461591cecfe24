"""The PDU: a room event as signed JSON, kept as its bytes plus a parsed view.

``PDU`` is immutable. Everything that inspects events (auth rules, state resolution,
the room store, the client API) uses this one class. Its ``event_id`` is computed by
the room version's rules (spec: "Event IDs" in rooms/v3+, the reference hash) and is
never taken from the JSON for v3+ rooms; events of rooms v1/v2 carry theirs.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from homeserver.events.room_versions import RoomVersion


class PDU:
    __slots__ = ("room_version", "_dict", "_raw", "event_id", "internal_metadata")

    def __init__(self, room_version: RoomVersion, event_dict: Mapping[str, Any],
                 event_id: str, raw: bytes | None = None) -> None:
        self.room_version = room_version
        self._dict = event_dict
        self._raw = raw
        self.event_id = event_id
        # mutable bag for local-only flags (outlier, soft_failed, txn_id…); never signed
        self.internal_metadata: dict[str, Any] = {}

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_dict(cls, room_version: RoomVersion, event_dict: Mapping[str, Any],
                  raw: bytes | None = None) -> "PDU":
        """Wrap an already-hashed-and-signed event dict, computing its event ID."""
        from homeserver.events.hashing import compute_event_id

        return cls(room_version, event_dict, compute_event_id(room_version, event_dict), raw)

    # -- views ------------------------------------------------------------------------
    def get_dict(self) -> Mapping[str, Any]:
        """The event as sent over federation (no event_id for v3+, as the spec says)."""
        return self._dict

    @property
    def raw(self) -> bytes | None:
        return self._raw

    def get(self, key: str, default: Any = None) -> Any:
        return self._dict.get(key, default)

    @property
    def room_id(self) -> str:
        room_id = self._dict.get("room_id")
        if room_id is None and self.room_version.room_id_from_create_event \
                and self.type == "m.room.create":
            # MSC4291: the create event's room ID is derived from its own event ID
            return "!" + self.event_id[1:]
        return room_id

    @property
    def type(self) -> str:
        return self._dict["type"]

    @property
    def sender(self) -> str:
        return self._dict["sender"]

    @property
    def content(self) -> Mapping[str, Any]:
        return self._dict.get("content", {})

    @property
    def state_key(self) -> str | None:
        return self._dict.get("state_key")

    def is_state(self) -> bool:
        return "state_key" in self._dict

    @property
    def state_pair(self) -> tuple[str, str]:
        return (self.type, self._dict["state_key"])

    @property
    def depth(self) -> int:
        return self._dict.get("depth", 0)

    @property
    def origin_server_ts(self) -> int:
        return self._dict.get("origin_server_ts", 0)

    @property
    def prev_event_ids(self) -> Sequence[str]:
        if self.room_version.event_format_v1:
            return [pair[0] for pair in self._dict.get("prev_events", [])]
        return self._dict.get("prev_events", [])

    @property
    def auth_event_ids(self) -> Sequence[str]:
        if self.room_version.event_format_v1:
            return [pair[0] for pair in self._dict.get("auth_events", [])]
        return self._dict.get("auth_events", [])

    @property
    def membership(self) -> str | None:
        return self.content.get("membership") if self.type == "m.room.member" else None

    @property
    def redacts(self) -> str | None:
        """The event this redaction targets (top level before v11, in content from v11)."""
        if self.type != "m.room.redaction":
            return None
        if self.room_version.redacts_in_content:
            return self.content.get("redacts")
        return self._dict.get("redacts")

    @property
    def origin(self) -> str:
        return self.sender.split(":", 1)[1]

    def __repr__(self) -> str:
        return f"<PDU {self.event_id} {self.type} {self.state_key!r} from {self.sender}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PDU) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)
