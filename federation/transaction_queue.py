"""The pure parts of the outbound federation sender: one destination's state machine,
its retry schedule, the per-stream cursor that makes delivery durable, and the shape
of a transaction (spec: Server-Server API, "Transactions").

No twisted here: time comes in as ``now_ms`` values and randomness as a number in
[0, 1), so every rule is a plain function of its inputs.

A destination is in one of three phases::

    IDLE ──wake──▶ SENDING ──sent──▶ IDLE        (the loop sends again while work remains)
                     │  ▲
                 failed  retry_due
                     ▼  │
                    BACKOFF ──wake──▶ BACKOFF    (new work waits for the timer)

One transaction is in flight per destination because only SENDING sends, and only
the sending loop leaves SENDING.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from typing import Any, Deque, Mapping, Sequence

#: spec "Transactions": at most 50 PDUs and 100 EDUs in one transaction
MAX_PDUS = 50
MAX_EDUS = 100

#: first retry after this long; doubled per failure up to MAX_RETRY_MS
MIN_RETRY_MS = 5_000
MAX_RETRY_MS = 60 * 60 * 1000
#: a retry is delayed by up to this fraction more, so destinations that failed
#: together do not all retry in the same instant
JITTER = 0.2


class Phase(enum.Enum):
    IDLE = "idle"
    SENDING = "sending"
    BACKOFF = "backoff"


class Trigger(enum.Enum):
    WAKE = "wake"            # new work for the destination
    SENT = "sent"            # the transaction in flight was answered (or dropped)
    FAILED = "failed"        # it could not be delivered and will be retried
    RETRY_DUE = "retry_due"  # the backoff timer fired


TRANSITIONS: Mapping[tuple[Phase, Trigger], Phase] = {
    (Phase.IDLE, Trigger.WAKE): Phase.SENDING,
    # a wake while sending is taken up by the loop, which reads the queues again
    (Phase.SENDING, Trigger.WAKE): Phase.SENDING,
    (Phase.SENDING, Trigger.SENT): Phase.IDLE,
    (Phase.SENDING, Trigger.FAILED): Phase.BACKOFF,
    # new work while backing off waits for the timer: that is the point of backing off
    (Phase.BACKOFF, Trigger.WAKE): Phase.BACKOFF,
    (Phase.BACKOFF, Trigger.RETRY_DUE): Phase.SENDING,
}


class IllegalTransition(Exception):
    pass


def transition(phase: Phase, trigger: Trigger) -> Phase:
    """The phase after ``trigger``; an illegal move is an error, never a no-op."""
    try:
        return TRANSITIONS[(phase, trigger)]
    except KeyError:
        raise IllegalTransition(f"{trigger.value} in phase {phase.value}") from None


@dataclasses.dataclass(frozen=True)
class RetrySchedule:
    """When a failing destination may be tried again (kept durably per destination).

    ``interval_ms`` 0 means the destination is healthy.
    """
    last_ts: int = 0
    interval_ms: int = 0

    def after_failure(self, now_ms: int) -> "RetrySchedule":
        """5 s after the first failure, then doubling up to an hour."""
        interval = MIN_RETRY_MS if self.interval_ms <= 0 else \
            min(self.interval_ms * 2, MAX_RETRY_MS)
        return RetrySchedule(now_ms, interval)

    def delay_ms(self, now_ms: int, rand: float) -> int:
        """How long from ``now_ms`` until the next try (0 if due), jittered by
        ``rand`` in [0, 1)."""
        if self.interval_ms <= 0:
            return 0
        due = self.last_ts + int(self.interval_ms * (1 + JITTER * rand))
        return max(0, due - now_ms)


HEALTHY = RetrySchedule()


class Verdict(enum.Enum):
    RETRY = "retry"   # keep the transaction's content and back off
    DROP = "drop"     # the remote refused it for good: count it delivered, log it


def classify_failure(status: int | None) -> Verdict:
    """What to do when a transaction failed with HTTP ``status`` (None: no answer).

    A 4xx other than 429 says the request itself is wrong for that server; resending
    the same PDUs would fail forever and hold up everything behind them.
    """
    if status is not None and 400 <= status < 500 and status != 429:
        return Verdict.DROP
    return Verdict.RETRY


def refused_pdus(response: Any) -> dict[str, str]:
    """event_id → error, for the PDUs a 200 response says the remote refused
    (spec: the ``pdus`` map of ``PUT /send``; an entry without ``error`` was fine)."""
    out: dict[str, str] = {}
    pdus = response.get("pdus") if isinstance(response, dict) else None
    if isinstance(pdus, dict):
        for event_id, result in pdus.items():
            if isinstance(result, dict) and result.get("error") is not None:
                out[str(event_id)] = str(result["error"])
    return out


def transaction_body(origin: str, now_ms: int, pdus: Sequence[Mapping[str, Any]],
                     edus: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``PUT /_matrix/federation/v1/send/{txnId}`` body."""
    if len(pdus) > MAX_PDUS or len(edus) > MAX_EDUS:
        raise ValueError("transaction over the spec's limits")
    return {"origin": origin, "origin_server_ts": now_ms,
            "pdus": list(pdus), "edus": list(edus)}


def newest_of_stale(stale: Mapping[str, tuple[int, Any]], limit: int, scanned: int
            ) -> tuple[list[tuple[int, Any]], int]:
    """What a run of stale entries up to ``scanned`` comes down to: the newest per
    key, oldest first, at most ``limit``; when more remain, the scan resumes just
    before the first left out (the keys before it are done)."""
    newest = sorted(stale.values(), key=lambda item: item[0])
    if len(newest) > limit:
        return newest[:limit], newest[limit][0] - 1
    return newest, scanned


@dataclasses.dataclass
class Cursor:
    """One destination's progress along one positioned stream (the room stream for
    PDUs, the federation outbox for durable EDUs).

    ``acked`` is durable: every entry at or below it that this destination must get
    has been delivered. While ``live``, ``queue`` holds exactly the entries for this
    destination above ``acked`` up to the reader's position, so sending takes from the
    queue. After a failure or a restart the cursor is not live: the queue is empty and
    the sender catches up by re-reading the stream from ``acked`` — every missed entry,
    in order — until it reaches the reader's position and turns live again.
    """
    acked: int
    live: bool = True
    queue: Deque[tuple[int, Any]] = dataclasses.field(default_factory=collections.deque)

    def take(self, limit: int) -> list[tuple[int, Any]]:
        """Pop up to ``limit`` queued entries (a live cursor's next batch)."""
        out = []
        while self.queue and len(out) < limit:
            out.append(self.queue.popleft())
        return out

    def acked_after_live_send(self, reader_pos: int) -> int:
        """The position acknowledged once the taken entries were delivered: just
        before the first entry still queued, else everything the reader has seen."""
        return self.queue[0][0] - 1 if self.queue else reader_pos

    def lose_queue(self) -> None:
        """The queue can no longer be trusted (the send failed): catch up later."""
        self.queue.clear()
        self.live = False

    def caught_up(self, acked: int, reader_pos: int) -> None:
        """Catch-up delivered everything up to ``acked``; live again once that is
        the reader's position (the reader queues what comes after)."""
        self.acked = max(self.acked, acked)
        if self.acked >= reader_pos:
            self.live = True
