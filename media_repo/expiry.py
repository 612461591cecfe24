"""Removing async-upload media IDs that were created and never filled (spec:
Client-Server API, ``POST /_matrix/media/v1/create``: "the media ID … will expire"
at ``unused_expires_at``)."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime

from homeserver.periodic import PeriodicJob


class PendingMediaExpiry(PeriodicJob):
    """Every ``interval`` seconds, asks the repository to drop expired empty IDs.

    Downloads and PUTs treat an expired ID as unknown already; this only keeps the
    table from growing (and frees the user's pending allowance's rows).
    """

    def __init__(self, repository: Any, clock: IReactorTime, interval: float = 3600) -> None:
        super().__init__("media-expiry", repository.expire_unused, clock=clock,
                         interval=interval)
