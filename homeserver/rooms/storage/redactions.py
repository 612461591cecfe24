"""Redactions in a room's database: remembered when they arrive, applied to their
target now or when it arrives.

Spec (room versions 3+, "Handling redactions"): a redaction applies if its sender may
redact anyone's events, or the target was sent by the same server. An applied
redaction sets the target's ``events.redacted_by``; its JSON stays as received and
readers prune it on the way out (:mod:`.event_rows`).

This class shares the room DB connection and never begins or commits a transaction.
"""

from __future__ import annotations

import sqlite3

from homeserver.events.pdu import PDU


class Redactions:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def record(self, redaction: PDU, has_power: bool) -> None:
        """Remember ``redaction`` (``has_power``: its sender may redact anyone's)."""
        self._conn.execute(
            "INSERT OR IGNORE INTO redactions VALUES (?, ?, ?, ?)",
            (redaction.event_id, redaction.redacts, redaction.origin, int(has_power)))

    def apply_pending(self, pdu: PDU) -> int | None:
        """Apply the redaction ``pdu`` is, or the one waiting for ``pdu`` as its
        target, if it is allowed to; the seq of the event it redacted, if any."""
        rows = self._conn.execute(
            "SELECT r.redaction_event_id, r.sender_domain, r.has_power, e.sender, e.seq"
            " FROM redactions r JOIN events e ON e.event_id = r.redacts"
            " WHERE (r.redacts = ? OR r.redaction_event_id = ?) AND e.redacted_by IS NULL",
            (pdu.event_id, pdu.event_id)).fetchall()
        for redaction_id, domain, has_power, target_sender, target_seq in rows:
            if has_power or target_sender.split(":", 1)[1] == domain:
                self._conn.execute("UPDATE events SET redacted_by = ? WHERE seq = ?",
                                   (redaction_id, target_seq))
                return target_seq
        return None
