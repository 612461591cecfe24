"""The global DB's record of client transaction IDs (``store.transactions``,
``client_txn_ids``): answers a retried send to a room that is asleep without waking
it (spec: Client-Server API, "Transaction identifiers"). The keys and scopes are
in :mod:`homeserver.rooms.rules.transactions`.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

log = Logger()


class TransactionLog:
    def __init__(self, store) -> None:
        """``store``: the GlobalStore (its ``transactions``)."""
        self._store = store

    async def event_for(self, user_id: str, scope: str, key: str) -> str | None:
        """The event an earlier request with this key created, as the global DB has it
        (a send whose record failed is still known to its room's DB)."""
        return await self._store.transactions.get_event_id(user_id, scope, key)

    async def persist(self, user_id: str, scope: str, key: str, event_id: str) -> None:
        """Record the send in the global DB (the room DB already has it)."""
        try:
            await self._store.transactions.record(user_id, scope, key, event_id)
        except Exception:
            # the room DB keeps the send idempotent; only a retry reaching a sleeping
            # room is answered later (by waking it)
            log.failure("recording transaction {key} for {event_id}", key=key,
                        event_id=event_id)

    def record_later(self, user_id: str, scope: str, key: str, event_id: str) -> None:
        """:meth:`persist` without waiting for it (it logs its own failure)."""
        defer.ensureDeferred(self.persist(user_id, scope, key, event_id))
