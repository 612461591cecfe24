"""The sender's pure parts: phases, retry schedule, verdicts, cursors, bodies."""

from __future__ import annotations

from twisted.trial import unittest

from federation.transaction_queue import (
    HEALTHY, MAX_RETRY_MS, MIN_RETRY_MS, Cursor, IllegalTransition, Phase, Trigger,
    Verdict, classify_failure, newest_of_stale, refused_pdus, transaction_body,
    transition,
)


class PhaseTests(unittest.TestCase):
    def test_legal_moves(self) -> None:
        """Idle wakes into sending; a failure backs off; the timer sends again."""
        self.assertEqual(transition(Phase.IDLE, Trigger.WAKE), Phase.SENDING)
        self.assertEqual(transition(Phase.SENDING, Trigger.SENT), Phase.IDLE)
        self.assertEqual(transition(Phase.SENDING, Trigger.FAILED), Phase.BACKOFF)
        self.assertEqual(transition(Phase.BACKOFF, Trigger.WAKE), Phase.BACKOFF)
        self.assertEqual(transition(Phase.BACKOFF, Trigger.RETRY_DUE), Phase.SENDING)

    def test_illegal_moves_raise(self) -> None:
        """A move the table lacks is an error, never a silent no-op."""
        for phase, trigger in [(Phase.IDLE, Trigger.SENT), (Phase.IDLE, Trigger.FAILED),
                               (Phase.BACKOFF, Trigger.SENT),
                               (Phase.SENDING, Trigger.RETRY_DUE)]:
            self.assertRaises(IllegalTransition, transition, phase, trigger)


class RetryTests(unittest.TestCase):
    def test_doubling_from_five_seconds_capped_at_an_hour(self) -> None:
        """Each failure doubles the interval from 5 s, never past an hour."""
        retry, seen = HEALTHY, []
        for _ in range(14):
            retry = retry.after_failure(1000)
            seen.append(retry.interval_ms)
        self.assertEqual(seen[:4], [MIN_RETRY_MS, 10_000, 20_000, 40_000])
        self.assertEqual(seen[-1], MAX_RETRY_MS)
        self.assertTrue(all(b >= a for a, b in zip(seen, seen[1:])))

    def test_delay_is_jittered_and_counts_from_the_failure(self) -> None:
        """The delay is the interval plus up to 20% jitter, minus time passed."""
        retry = HEALTHY.after_failure(10_000)
        self.assertEqual(retry.delay_ms(10_000, 0.0), 5_000)
        self.assertEqual(retry.delay_ms(10_000, 0.5), 5_500)
        self.assertEqual(retry.delay_ms(13_000, 0.0), 2_000)
        self.assertEqual(retry.delay_ms(99_000, 0.0), 0)
        self.assertEqual(HEALTHY.delay_ms(0, 0.9), 0)


class VerdictTests(unittest.TestCase):
    def test_client_errors_drop_others_retry(self) -> None:
        """4xx (not 429) drops the transaction; 429, 5xx and no answer retry."""
        self.assertEqual(classify_failure(400), Verdict.DROP)
        self.assertEqual(classify_failure(403), Verdict.DROP)
        self.assertEqual(classify_failure(429), Verdict.RETRY)
        self.assertEqual(classify_failure(502), Verdict.RETRY)
        self.assertEqual(classify_failure(None), Verdict.RETRY)

    def test_refused_pdus(self) -> None:
        """Only PDU results with an error are refusals; junk is ignored."""
        self.assertEqual(refused_pdus({"pdus": {"$a": {}, "$b": {"error": "bad"}}}),
                         {"$b": "bad"})
        self.assertEqual(refused_pdus({"pdus": []}), {})
        self.assertEqual(refused_pdus("nonsense"), {})


class BodyTests(unittest.TestCase):
    def test_body_and_limits(self) -> None:
        """The body carries origin, timestamp, PDUs and EDUs; over 50/100 is refused."""
        body = transaction_body("us", 7, [{"a": 1}], [{"edu_type": "x"}])
        self.assertEqual(body, {"origin": "us", "origin_server_ts": 7,
                                "pdus": [{"a": 1}], "edus": [{"edu_type": "x"}]})
        self.assertRaises(ValueError, transaction_body, "us", 7, [{}] * 51, [])
        self.assertRaises(ValueError, transaction_body, "us", 7, [], [{}] * 101)


class CursorTests(unittest.TestCase):
    def test_live_ack(self) -> None:
        """After a live send the ack stops just before what is still queued."""
        c = Cursor(0)
        c.queue.extend([(3, "a"), (7, "b"), (9, "c")])
        self.assertEqual(c.take(2), [(3, "a"), (7, "b")])
        self.assertEqual(c.acked_after_live_send(12), 8)
        c.take(5)
        self.assertEqual(c.acked_after_live_send(12), 12)

    def test_catch_up_turns_live_at_the_reader(self) -> None:
        """A failed cursor drops its queue; it is live again once caught up."""
        c = Cursor(5)
        c.queue.append((6, "x"))
        c.lose_queue()
        self.assertFalse(c.live)
        self.assertEqual(list(c.queue), [])
        c.caught_up(8, 10)
        self.assertEqual((c.acked, c.live), (8, False))
        c.caught_up(10, 10)
        self.assertEqual((c.acked, c.live), (10, True))


class NewestOfStaleTests(unittest.TestCase):
    def test_in_position_order_within_the_limit(self):
        """A run of stale entries comes down to each key's newest, oldest first, and
        the scan position stays where the run was scanned to."""
        stale = {"!a": (7, "a7"), "!b": (3, "b3"), "!c": (5, "c5")}
        self.assertEqual(newest_of_stale(stale, 50, 9),
                         ([(3, "b3"), (5, "c5"), (7, "a7")], 9))

    def test_more_than_the_limit_resumes_before_the_first_left_out(self):
        """Over the limit: the first ``limit`` go, and the scan resumes just before
        the first one left out, so it is found again."""
        stale = {"!a": (7, "a7"), "!b": (3, "b3"), "!c": (5, "c5")}
        self.assertEqual(newest_of_stale(stale, 2, 9), ([(3, "b3"), (5, "c5")], 6))
