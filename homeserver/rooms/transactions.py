"""Client transaction IDs for room events (spec: Client-Server API, "Transaction
identifiers"; ``ClientEvent.unsigned.transaction_id``).

Three records, each with its job:

- the room DB's ``txn_key`` (written with the event, in the same SQLite transaction)
  is what makes a retried ``PUT …/send/…/{txnId}`` idempotent even across a crash;
- ``store.event_transactions`` (global DB) keeps txn → event for a cheap answer to a
  retry without waking the room, and event → txn for ``/sync``;
- an in-memory map holds the sends not yet written to the global DB. It is filled in
  the same reactor turn in which the room announces the event, before any ``/sync``
  woken by that announcement can have read the room stream (which takes a database
  round trip), so the sending device's next sync always finds its ``transaction_id``;
  once the row is written, the entry goes (the row answers from then on). Only the
  sender's own syncs ask (their own events), so receivers never read it.

The *scope* of a transaction is the sending device (spec v1.7+), or
``"token:<token_id>"`` for an access token without a device.
"""

from __future__ import annotations

import collections
from typing import Iterable

from twisted.logger import Logger

log = Logger()

#: at most this many sends in memory (each a few hundred bytes), should writing them to
#: the global DB fail
_MEMORY = 20_000


def scope_of(requester) -> str:
    """The transaction scope of a :class:`~homeserver.client_api.auth.Requester`."""
    if requester.device_id:
        return requester.device_id
    return f"token:{requester.token_id}"


def txn_key(user_id: str, scope: str, endpoint: str, txn_id: str) -> str:
    """The idempotency key of one request: same device, same endpoint and path
    (``endpoint`` names the path without the txn ID, e.g. "send/!r/m.room.message")."""
    return f"{user_id}|{scope}|{endpoint}|{txn_id}"


class TransactionLog:
    def __init__(self, store) -> None:
        """``store``: the GlobalStore (``transactions`` and ``event_transactions``)."""
        self._store = store
        self._by_key: collections.OrderedDict[tuple[str, str, str], str] = \
            collections.OrderedDict()
        self._by_event: collections.OrderedDict[str, tuple[str, str, str]] = \
            collections.OrderedDict()

    async def event_for(self, user_id: str, scope: str, key: str, *,
                        memory_only: bool = False) -> str | None:
        """The event an earlier request with this key created, if known here (in
        memory, or also in the global DB unless ``memory_only``)."""
        found = self._by_key.get((user_id, scope, key))
        if found is not None or memory_only:
            return found
        return await self._store.transactions.get_event_id(user_id, scope, key)

    def remember(self, user_id: str, scope: str, key: str, txn_id: str,
                 event_id: str) -> None:
        """Record a send in memory at once (call before the next reactor turn)."""
        self._by_key[(user_id, scope, key)] = event_id
        self._by_event[event_id] = (user_id, scope, txn_id)
        for table in (self._by_key, self._by_event):
            while len(table) > _MEMORY:
                table.popitem(last=False)

    async def persist(self, user_id: str, scope: str, key: str, txn_id: str,
                      event_id: str) -> None:
        """Write the send to the global DB (the room DB already has it); then the
        in-memory entry of :meth:`remember` is no longer needed."""
        try:
            await self._store.event_transactions.record(user_id, scope, key, txn_id,
                                                         event_id)
            if self._by_key.get((user_id, scope, key)) == event_id:
                del self._by_key[(user_id, scope, key)]
            self._by_event.pop(event_id, None)
        except Exception:
            # the room DB keeps the send idempotent; only a later sync's
            # transaction_id after a restart depends on this row
            log.failure("recording transaction {txn} for {event_id}", txn=txn_id,
                        event_id=event_id)

    async def transaction_ids(self, event_ids: Iterable[str], user_id: str,
                              scope: str) -> dict[str, str]:
        """event_id → txn_id for the events this user's device (``scope``) sent."""
        found: dict[str, str] = {}
        missing = []
        for event_id in event_ids:
            entry = self._by_event.get(event_id)
            if entry is None:
                missing.append(event_id)
            elif entry[0] == user_id and entry[1] == scope:
                found[event_id] = entry[2]
        if missing:
            found.update(await self._store.event_transactions.transaction_ids(
                missing, user_id, scope))
        return found
