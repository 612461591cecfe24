"""Reporting content (spec: Client-Server API, "Reporting content").

A report of an event needs the reporter to be able to see it: joined to the room
(spec v1.8: "The caller must be joined to the room") and the event visible to them
under history visibility; anything else is M_NOT_FOUND, the same answer as for an
event that does not exist, so reports cannot probe for hidden events. Rooms and users
may be reported by anyone; an unknown one is M_NOT_FOUND.
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import BadJson, InvalidParam, MissingParam, NotFound
from homeserver.ids import UserID
from homeserver.rooms.features.visibility import HistoryVisibility

#: the longest reason kept (a report is not a place to store documents)
MAX_REASON_LEN = 10_000


def _reason(body: dict[str, Any], *, required: bool) -> str | None:
    reason = body.get("reason")
    if reason is None:
        if required:
            raise MissingParam("Missing parameter: reason")
        return None
    if not isinstance(reason, str):
        raise BadJson("reason must be a string")
    if len(reason) > MAX_REASON_LEN:
        raise InvalidParam(f"reason is longer than {MAX_REASON_LEN} characters")
    return reason


class ContentReports:
    def __init__(self, *, rooms: Any, store: Any, visibility: HistoryVisibility) -> None:
        self._rooms = rooms
        self._reports = store.reports
        self._accounts = store.accounts
        self._visibility = visibility

    async def report_event(self, reporter: str, room_id: str, event_id: str,
                           body: dict[str, Any]) -> None:
        """``POST /rooms/{roomId}/report/{eventId}`` (``reason``, optional; ``score``,
        optional, -100..0, removed from the spec in v1.18 but still accepted)."""
        reason = _reason(body, required=False)
        score = body.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int)):
            raise BadJson("score must be an integer")
        if score is not None and not -100 <= score <= 0:
            raise InvalidParam("score must be between -100 and 0")
        not_found = NotFound("The event was not found or you are not joined to the room.")
        try:
            actor = await self._rooms.get(room_id)
        except NotFound:
            raise not_found from None
        if await actor.membership(reporter) != "join":
            raise not_found
        event = await actor.get_event(event_id)
        if event is None or event.internal_metadata.get("outlier") or \
                not await self._visibility.is_visible(
                    actor, await self._visibility.viewer(actor, reporter), event):
            raise not_found
        await self._reports.add_report(reporter, room_id=room_id, event_id=event_id,
                                       reason=reason, score=score)

    async def report_room(self, reporter: str, room_id: str, body: dict[str, Any]) -> None:
        """``POST /rooms/{roomId}/report`` (v1.13)."""
        reason = _reason(body, required=True)
        if not self._rooms.known(room_id):
            raise NotFound("The room was not found.")
        await self._reports.add_report(reporter, room_id=room_id, reason=reason)

    async def report_user(self, reporter: str, user_id: str, body: dict[str, Any]) -> None:
        """``POST /users/{userId}/report`` (v1.14): local users only are known."""
        reason = _reason(body, required=True)
        UserID.parse(user_id)
        if await self._accounts.get_user(user_id) is None:
            raise NotFound("The user was not found.")
        await self._reports.add_report(reporter, target_user_id=user_id, reason=reason)
