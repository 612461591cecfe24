"""Sync tokens: one opaque string holding a position in every stream (DESIGN.md §4).

``/sync``'s ``next_batch`` and the WebSocket stream's tokens are :class:`StreamToken`
values. Each component is the highest position of one stream the response covers:
the global room stream, account data (incl. tags), receipts, presence, to-device,
device lists (all persisted, see ``homeserver.store.positions``) and typing (in
memory; see ``homeserver.sync.typing_notifications``).

The text form is ``s<room>_<account_data>_<receipts>_<presence>_<to_device>_
<device_lists>_<typing>``. Clients must treat it as opaque (spec: "Syncing"); the
spec says nothing about the error for a malformed ``since``, so it is the generic
``M_INVALID_PARAM`` with status 400 that every other bad query parameter gets.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

from homeserver.errors import InvalidParam

#: the component names, in text order
FIELDS = ("room", "account_data", "receipts", "presence", "to_device", "device_lists",
          "typing")

_MAX = 2 ** 63 - 1
_TOKEN_RE = re.compile(r"^s(\d{1,19})" + r"_(\d{1,19})" * (len(FIELDS) - 1) + "$")


@dataclasses.dataclass(frozen=True)
class StreamToken:
    room: int = 0
    account_data: int = 0
    receipts: int = 0
    presence: int = 0
    to_device: int = 0
    device_lists: int = 0
    typing: int = 0

    def __str__(self) -> str:
        return "s" + "_".join(str(getattr(self, name)) for name in FIELDS)

    @classmethod
    def parse(cls, text: object) -> "StreamToken":
        """Parse a client-supplied token; anything malformed is M_INVALID_PARAM (400)."""
        match = _TOKEN_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidParam(f"invalid sync token {text!r}")
        values = [int(v) for v in match.groups()]
        if any(v > _MAX for v in values):
            raise InvalidParam(f"invalid sync token {text!r}")
        return cls(*values)

    @classmethod
    def from_positions(cls, positions: Mapping[str, int], typing: int = 0) -> "StreamToken":
        """From ``GlobalStore.current_positions()`` (stream name → position)."""
        return cls(**{name: int(positions.get(name, 0)) for name in FIELDS[:-1]},
                   typing=typing)

    def replace(self, **changes: int) -> "StreamToken":
        return dataclasses.replace(self, **changes)

    def is_after(self, other: "StreamToken") -> bool:
        """True if some component is ahead of ``other``'s (there is news since it)."""
        return any(getattr(self, n) > getattr(other, n) for n in FIELDS)

    def capped_at(self, current: "StreamToken") -> "StreamToken":
        """This token with no persisted stream past ``current``'s position.

        A client's position beyond the server's own comes from writes the global DB
        no longer has (a power cut lost its last commits, a backup was restored).
        Trusting it would hide for good whatever the server writes at those positions
        again, the room events its outbox replays included; from ``current`` on the
        client gets them (perhaps some a second time: clients de-duplicate by event
        ID). ``typing`` is in memory and starts again with each process; the typing
        service tells a position from an earlier process by itself.
        """
        return StreamToken(*(getattr(self, n) if n == "typing"
                             else min(getattr(self, n), getattr(current, n))
                             for n in FIELDS))

    def upper_bound(self, other: "StreamToken") -> "StreamToken":
        """Component-wise maximum: a token never moves a stream backwards."""
        return StreamToken(*(max(getattr(self, n), getattr(other, n)) for n in FIELDS))
