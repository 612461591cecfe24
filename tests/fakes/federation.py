"""Fakes for the federation sender: a FederationClient that records transactions,
the sender's durable progress in memory, and a positioned stream of prepared entries."""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

from twisted.internet import defer

from federation.client import RemoteHttpError, RemoteUnreachable
from federation.destinations import Resolved
from homeserver.store.federation_destinations import DestinationProgress


class FakeFederationClient:
    def __init__(self) -> None:
        #: (destination, txn_id, body) of every PUT /send, answered or not
        self.sent: list[tuple[str, str, dict]] = []
        #: (destination, txn_id) of those that failed
        self.failed: set[tuple[str, str]] = set()
        #: destinations that do not answer
        self.down: set[str] = set()
        #: destination → HTTP error status it answers with
        self.status: dict[str, int] = {}
        #: destination → the Deferred its next answer waits for
        self.hold: dict[str, defer.Deferred] = {}
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}

    async def put_json(self, destination: str, path: str, body: Any, args=None, *,
                       timeout=None) -> Any:
        prefix = "/_matrix/federation/v1/send/"
        assert path.startswith(prefix), path
        txn_id = path[len(prefix):]
        self.sent.append((destination, txn_id, copy.deepcopy(body)))
        self.in_flight[destination] = self.in_flight.get(destination, 0) + 1
        self.max_in_flight[destination] = max(self.max_in_flight.get(destination, 0),
                                              self.in_flight[destination])
        try:
            if destination in self.hold:
                await self.hold.pop(destination)
            if destination in self.down:
                raise RemoteUnreachable(destination, "connection refused")
            if destination in self.status:
                raise RemoteHttpError(destination, self.status[destination],
                                      b'{"errcode":"M_FORBIDDEN"}')
            return {"pdus": {}}
        except Exception:
            self.failed.add((destination, txn_id))
            raise
        finally:
            self.in_flight[destination] -= 1

    def answered(self, destination: str) -> list[dict]:
        """The bodies of the transactions ``destination`` accepted, in order."""
        return [body for dest, txn, body in self.sent
                if dest == destination and (dest, txn) not in self.failed]

    def delivered(self, destination: str, key: str = "pdus") -> list[Any]:
        """The PDUs (or EDUs) of the transactions ``destination`` accepted."""
        return [item for body in self.answered(destination) for item in body[key]]


class FakeProgress:
    """``FederationDestinations`` in memory; shared by two senders it is a restart."""

    def __init__(self) -> None:
        self.readers: dict[str, int] = {}
        self.dests: dict[str, DestinationProgress] = {}
        self.fail = False

    async def load(self):
        return dict(self.readers), dict(self.dests)

    async def advance_reader(self, stream: str, pos: int,
                             new: Iterable[DestinationProgress] = (),
                             caught_up: Iterable[str] = ()) -> None:
        if self.fail:
            raise RuntimeError("global DB down")
        for d in new:
            self.dests.setdefault(d.destination, d)
        for name in caught_up:
            d = self.dests[name]
            if d.acked[stream] < pos:
                self.dests[name] = DestinationProgress(
                    name, {**d.acked, stream: pos}, d.retry_last_ts, d.retry_interval_ms)
        self.readers[stream] = pos

    async def save(self, destination: str, acked: Mapping[str, int], retry_last_ts: int,
                   retry_interval_ms: int) -> None:
        if self.fail:
            raise RuntimeError("global DB down")
        old = self.dests.get(destination)
        merged = {s: max(p, old.acked.get(s, 0) if old else 0) for s, p in acked.items()}
        self.dests[destination] = DestinationProgress(destination, merged, retry_last_ts,
                                                      retry_interval_ms)


class FakeSource:
    """A positioned stream of entries, each resolved to (payload, destinations)."""

    def __init__(self, name: str, initial: int = 0) -> None:
        self.name = name
        self.initial = initial
        self.entries: list[tuple[int, Resolved | None]] = []
        self.resolve_calls = 0

    def add(self, payload: Mapping[str, Any] | None, destinations: Iterable[str] = (),
            ts: int | None = None, stale_key: str | None = None) -> int:
        pos = (self.entries[-1][0] if self.entries else self.initial) + 1
        self.entries.append((pos, None if payload is None else
                             Resolved(payload, frozenset(destinations), ts, stale_key)))
        return pos

    def delete_upto(self, pos: int) -> None:
        self.entries = [e for e in self.entries if e[0] > pos]

    async def initial_position(self) -> int:
        return self.initial

    async def read(self, since: int, upto: int | None, limit: int):
        return [e for e in self.entries
                if since < e[0] and (upto is None or e[0] <= upto)][:limit]

    async def resolve(self, entry: Resolved | None) -> Resolved | None:
        self.resolve_calls += 1
        return entry
