"""Opaque topological pagination tokens for ``/messages`` (DESIGN.md §4).

A token is a cut in the room's topological order, the total order of timeline events by
``(depth, seq)``: every event whose key is at most ``(depth, seq)`` lies before the cut.
The text form ``t<depth>_<seq>`` is opaque to clients; it is only meaningful to the
room that issued it (seqs are per room DB).
"""

from __future__ import annotations

import dataclasses
import enum
import re

from homeserver.errors import InvalidParam

_TOKEN_RE = re.compile(r"^t(-?\d{1,19})_(-?\d{1,19})\Z")
_MAX = 2 ** 63 - 1


class Direction(enum.Enum):
    """``dir`` of /messages: "b" walks back in time, "f" forward."""

    BACKWARDS = "b"
    FORWARDS = "f"

    @classmethod
    def parse(cls, value: object) -> "Direction":
        try:
            return cls(value)
        except ValueError:
            raise InvalidParam(f"dir must be 'b' or 'f', not {value!r}") from None


@dataclasses.dataclass(frozen=True, order=True)
class TopologicalToken:
    depth: int
    seq: int

    def __str__(self) -> str:
        return f"t{self.depth}_{self.seq}"

    @classmethod
    def parse(cls, text: object) -> "TopologicalToken":
        """Parse a client-supplied token; a malformed one is M_INVALID_PARAM."""
        match = _TOKEN_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidParam(f"invalid pagination token {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))


#: before every event / after every event
TopologicalToken.START = TopologicalToken(-1, 0)  # type: ignore[attr-defined]
TopologicalToken.END = TopologicalToken(_MAX, _MAX)  # type: ignore[attr-defined]


def topological_window(direction: Direction, from_token: "TopologicalToken | None",
                       to_token: "TopologicalToken | None", *, prefix: str = ""
                       ) -> tuple["TopologicalToken", str, list[int], str]:
    """The SQL bounds of a walk in topological order (depth, seq).

    Returns ``(start, where, args, order)``: the token the walk starts from, a WHERE
    fragment over ``{prefix}depth`` / ``{prefix}seq`` with its arguments, and the
    ORDER BY direction. Backwards includes ``from_token`` and excludes ``to_token``;
    forwards the opposite, so consecutive pages neither overlap nor skip.
    """
    cols = f"({prefix}depth, {prefix}seq)"
    backwards = direction is Direction.BACKWARDS
    start = from_token or (TopologicalToken.END if backwards  # type: ignore[attr-defined]
                           else TopologicalToken.START)  # type: ignore[attr-defined]
    from_op, to_op = ("<=", ">") if backwards else (">", "<=")
    where, args = f"{cols} {from_op} (?, ?)", [start.depth, start.seq]
    if to_token is not None:
        where += f" AND {cols} {to_op} (?, ?)"
        args += [to_token.depth, to_token.seq]
    return start, where, args, "DESC" if backwards else "ASC"
