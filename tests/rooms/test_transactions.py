"""TransactionLog: the in-memory bridge until a send's row is in the global DB."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from homeserver.rooms.transactions import TransactionLog


class _Table:
    """event_transactions, with writes held until ``release`` (or failed)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str, str]] = {}
        self.pending: list[tuple[defer.Deferred, tuple]] = []
        self.fail = False

    def record(self, user_id, scope, key, txn_id, event_id) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.pending.append((d, (user_id, scope, txn_id, event_id)))
        return d

    def release(self) -> None:
        for d, (user_id, scope, txn_id, event_id) in self.pending:
            if self.fail:
                d.errback(RuntimeError("database down"))
            else:
                self.rows[event_id] = (user_id, scope, txn_id)
                d.callback(None)
        self.pending = []

    async def transaction_ids(self, event_ids, user_id, scope):
        return {e: self.rows[e][2] for e in event_ids
                if e in self.rows and self.rows[e][:2] == (user_id, scope)}


class _Store:
    def __init__(self) -> None:
        self.event_transactions = _Table()


class TransactionLogTests(unittest.TestCase):
    def setUp(self) -> None:
        self.store = _Store()
        self.log = TransactionLog(self.store)

    def send(self, event_id: str) -> defer.Deferred:
        self.log.remember("@a:t", "DEV", f"send/{event_id}", f"txn-{event_id}", event_id)
        return defer.ensureDeferred(self.log.persist("@a:t", "DEV", f"send/{event_id}",
                                                     f"txn-{event_id}", event_id))

    async def ids(self, *event_ids: str) -> dict[str, str]:
        return await self.log.transaction_ids(event_ids, "@a:t", "DEV")

    async def test_memory_answers_until_the_row_is_written(self) -> None:
        """Before the global DB has the row, memory answers; after, the row does, and
        the memory entry is gone."""
        done = self.send("$1")
        self.assertEqual(await self.ids("$1"), {"$1": "txn-$1"})
        self.assertEqual(await self.log.event_for("@a:t", "DEV", "send/$1",
                                                  memory_only=True), "$1")
        self.store.event_transactions.release()
        await done
        self.assertIsNone(await self.log.event_for("@a:t", "DEV", "send/$1",
                                                   memory_only=True))
        self.assertEqual(await self.ids("$1"), {"$1": "txn-$1"})

    async def test_failed_write_keeps_the_memory_entry(self) -> None:
        """A send whose row could not be written is still answered from memory."""
        done = self.send("$1")
        self.store.event_transactions.fail = True
        self.store.event_transactions.release()
        await done  # logged, not raised
        self.assertEqual(self.flushLoggedErrors(RuntimeError)[0].getErrorMessage(),
                         "database down")
        self.assertEqual(await self.ids("$1"), {"$1": "txn-$1"})
