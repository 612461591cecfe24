"""The pure part of MSC4140 (homeserver/delayed_events/rules.py)."""

from __future__ import annotations

from twisted.trial import unittest

from homeserver.delayed_events import rules
from homeserver.delayed_events.rules import DelayedEventsConfig
from homeserver.errors import Forbidden, InvalidParam, MatrixError
from homeserver.store.delayed_events import DelayedEvent


def _event(**changes) -> DelayedEvent:
    base = dict(delay_id="d1", user_id="@a:x", device_id=None, room_id="!r:x",
                event_type="m.rtc.member", state_key=None, content={"k": 1}, delay_ms=5000,
                scheduled_at=100, send_ts=5100)
    return DelayedEvent(**{**base, **changes})


class RulesTests(unittest.TestCase):
    def test_parse_delay(self):
        """The query parameter is absent (None) or a whole number; anything else is
        M_INVALID_PARAM."""
        self.assertIsNone(rules.parse_delay(None))
        self.assertEqual(rules.parse_delay("1500"), 1500)
        for bad in ("", "-1", "1.5", "1e3", "9" * 20):
            self.assertRaises(InvalidParam, rules.parse_delay, bad)

    def test_check_delay(self):
        """Zero is invalid, over the maximum carries the js-sdk fields, and a server
        with delayed events off forbids them all."""
        config = DelayedEventsConfig(max_delay_ms=1000, max_per_user=5)
        rules.check_delay(config, 1000)
        self.assertRaises(InvalidParam, rules.check_delay, config, 0)
        with self.assertRaises(MatrixError) as caught:
            rules.check_delay(config, 1001)
        body = caught.exception.to_json()
        self.assertEqual((body["errcode"], body["org.matrix.msc4140.max_delay"]),
                         ("M_UNKNOWN", 1000))
        self.assertRaises(Forbidden, rules.check_delay,
                          DelayedEventsConfig(max_per_user=0), 10)

    def test_actions_on_finalised(self):
        """Every (action, outcome) pair is in the table; retries of what happened
        pass and contradictions are 409."""
        for action in rules.ACTIONS:
            for outcome in (rules.SENT, rules.CANCELLED, rules.FAILED):
                self.assertIn((action, outcome), rules.ACTIONS_ON_FINALISED)
        rules.answer_on_finalised("send", rules.SENT)
        rules.answer_on_finalised("cancel", rules.FAILED)
        with self.assertRaises(MatrixError) as caught:
            rules.answer_on_finalised("restart", rules.CANCELLED)
        self.assertEqual(caught.exception.status, 409)
        self.assertRaises(InvalidParam, rules.parse_action, "explode")

    def test_to_json(self):
        """Scheduled events carry the legacy delay/running_since too; finalised ones
        finalised_ts and, as they ended, event_id or error."""
        scheduled = rules.to_json(_event(state_key="@a:x_D"))
        self.assertEqual(scheduled["state_key"], "@a:x_D")
        self.assertEqual((scheduled["delay"], scheduled["running_since"]), (5000, 100))
        self.assertNotIn("finalised_ts", scheduled)
        sent = rules.to_json(_event(outcome="sent", finalised_ts=200, event_id="$e"))
        self.assertEqual((sent["event_id"], sent["finalised_ts"]), ("$e", 200))
        self.assertNotIn("state_key", sent)
        self.assertNotIn("running_since", sent)
        failed = rules.to_json(_event(outcome="failed", finalised_ts=9,
                                      error={"errcode": "M_FORBIDDEN"}))
        self.assertEqual(failed["error"], {"errcode": "M_FORBIDDEN"})
