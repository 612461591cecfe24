"""Membership changes the room stream must carry besides its events.

A state resolution can change the current membership of users other than the one an
event is about; those changes are recorded with the event (in its transaction) and
announced with it, then forgotten. They are kept in ``room_meta`` as one JSON value:
str(seq) → ``[[user_id, membership, event_id], ...]``.
"""

from __future__ import annotations

import json
from typing import Sequence

from homeserver.rooms.storage.room_meta import RoomMeta

#: room_meta key: seq → membership changes announced with that event (JSON)
_MEMBER_CHANGES = "pending_member_changes"


class MemberChanges:
    __slots__ = ("_meta",)

    def __init__(self, meta: RoomMeta) -> None:
        self._meta = meta

    def add(self, seq: int, changes: Sequence[tuple[str, str, str]]) -> None:
        """Record ``changes`` with the event at ``seq``, in the caller's transaction."""
        pending = self._pending()
        pending[str(seq)] = [list(c) for c in changes]
        # written now, so a lazy forget still waiting must not overwrite it at commit
        self._meta.deferred.pop(_MEMBER_CHANGES, None)
        self._meta.write({_MEMBER_CHANGES: json.dumps(pending)})

    def at(self, seq: int) -> tuple[tuple[str, str, str], ...]:
        """The changes :meth:`add` recorded with ``seq``."""
        return tuple(tuple(c) for c in self._pending().get(str(seq), ()))

    def forget(self, upto_seq: int) -> None:
        """Those of events up to ``upto_seq`` are announced (written lazily: announcing
        them again is harmless)."""
        pending = self._pending()
        kept = {k: v for k, v in pending.items() if int(k) > upto_seq}
        if len(kept) != len(pending):
            self._meta.defer(_MEMBER_CHANGES, json.dumps(kept) if kept else None)

    def _pending(self) -> dict[str, list]:
        raw = self._meta.get(_MEMBER_CHANGES)
        return json.loads(raw) if raw else {}
