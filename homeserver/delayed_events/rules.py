"""MSC4140 delayed events, the pure part: limits, the outcome machine, the JSON shapes.

A delayed event is *scheduled* until it ends in one of three outcomes: ``sent``,
``cancelled`` (by its owner) or ``failed`` (sending raised an error, or another user
overwrote the state it would have set). The management actions on an ended one are
answered from :data:`ACTIONS_ON_FINALISED` (MSC4140 "Managing scheduled delayed
events": retrying an action that already happened succeeds, a contradicting one is a
409). No twisted here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from homeserver.errors import Forbidden, InvalidParam, MatrixError, NotFound

SENT, CANCELLED, FAILED = "sent", "cancelled", "failed"
ACTIONS = ("send", "cancel", "restart")

#: (action, outcome) → True when the action's goal is already reached (200, nothing
#: to do), False when the outcome contradicts it (409 M_UNKNOWN).
ACTIONS_ON_FINALISED: Mapping[tuple[str, str], bool] = {
    ("send", SENT): True,
    ("send", CANCELLED): False,
    ("send", FAILED): False,
    ("cancel", CANCELLED): True,
    ("cancel", FAILED): True,
    ("cancel", SENT): False,
    ("restart", SENT): False,
    ("restart", CANCELLED): False,
    ("restart", FAILED): False,
}

#: MSC4140 "Retention of finalised delayed events": up to 7 days or 1000 per user
FINALISED_RETENTION_MS = 7 * 24 * 3600 * 1000
FINALISED_PER_USER = 1000
#: the largest event content we schedule (the whole PDU must stay under 64 KiB)
MAX_CONTENT_BYTES = 60 * 1024


@dataclasses.dataclass(frozen=True)
class DelayedEventsConfig:
    """Synapse's ``max_event_delay_duration`` and
    ``experimental_features.msc4140_max_delayed_events_per_user``. Unlike Synapse the
    feature is on by default (a day at most, 100 per user), because MatrixRTC clients
    need it for the built-in SFU; ``msc4140_max_delayed_events_per_user: 0`` turns it
    off."""

    max_delay_ms: int = 24 * 3600 * 1000
    max_per_user: int = 100

    @property
    def enabled(self) -> bool:
        return self.max_per_user > 0 and self.max_delay_ms > 0

    def capability(self) -> dict[str, int]:
        """The ``m.delayed_events`` capability body (MSC4140)."""
        return {"max_delay_ms": self.max_delay_ms, "max_scheduled": self.max_per_user}


def check_delay(config: DelayedEventsConfig, delay_ms: int) -> None:
    """Refuse a delay the server will not schedule.

    Over the maximum: 400 M_UNKNOWN carrying ``org.matrix.msc4140.errcode``
    ``M_MAX_DELAY_EXCEEDED`` and ``org.matrix.msc4140.max_delay``, the form
    matrix-js-sdk's MatrixRTC membership manager reads to shorten its delay and retry
    (the MSC's newest text says 403 M_FORBIDDEN; no client reads that yet)."""
    if not config.enabled:
        raise Forbidden("Sending delayed events has been disallowed")
    if delay_ms <= 0:
        raise InvalidParam("the delay must be a positive number of milliseconds")
    if delay_ms > config.max_delay_ms:
        raise MatrixError(
            f"The requested delay ({delay_ms}ms) exceeds the allowed maximum "
            f"({config.max_delay_ms}ms)", errcode="M_UNKNOWN", status=400,
            **{"org.matrix.msc4140.errcode": "M_MAX_DELAY_EXCEEDED",
               "org.matrix.msc4140.max_delay": config.max_delay_ms})


def parse_delay(raw: str | None) -> int | None:
    """The ``org.matrix.msc4140.delay`` query parameter: None when absent."""
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 15:
        raise InvalidParam("org.matrix.msc4140.delay must be a whole number of milliseconds")
    return int(raw)


def parse_action(action: Any) -> str:
    if action not in ACTIONS:
        raise InvalidParam("'action' is not one of 'cancel', 'restart', 'send'")
    return action


def answer_on_finalised(action: str, outcome: str) -> None:
    """Return normally when ``action`` on an event that ended with ``outcome`` is a
    harmless retry; raise 409 when it contradicts what happened."""
    if not ACTIONS_ON_FINALISED[(action, outcome)]:
        raise MatrixError(f"The delayed event was already {outcome}",
                          errcode="M_UNKNOWN", status=409)


def not_found() -> NotFound:
    return NotFound("No such delayed event")


def cancelled_by_state_update() -> dict[str, str]:
    """The error recorded on a delayed state event dropped because another user set
    the same state first (Synapse's behaviour, from MSC4140's earlier text)."""
    return {"errcode": "M_CANCELLED_BY_STATE_UPDATE",
            "error": "A different user updated the same state before this was sent"}


def to_json(event: Any) -> dict[str, Any]:
    """A delayed event as ``GET /delayed_events[/{delay_id}]`` returns it: the MSC's
    fields, plus ``delay`` and ``running_since`` (earlier revisions, which
    matrix-js-sdk 37 and Synapse 1.163 still use) for the scheduled ones."""
    body: dict[str, Any] = {
        "delay_id": event.delay_id, "room_id": event.room_id, "type": event.event_type,
        "delay_ms": event.delay_ms, "scheduled_at": event.scheduled_at,
        "content": dict(event.content),
    }
    if event.state_key is not None:
        body["state_key"] = event.state_key
    if event.outcome is None:
        body.update(delay=event.delay_ms, running_since=event.scheduled_at)
        return body
    body["finalised_ts"] = event.finalised_ts
    if event.event_id is not None:
        body["event_id"] = event.event_id
    if event.error is not None:
        body["error"] = dict(event.error)
    return body
