"""Who receives which track: the SFU's routing decisions, as data (pure; DESIGN.md §3).

A *publication* is a track a session sends us, named by its session and track name
(the Cloudflare Calls / partytracks naming: ``{sessionId, trackName}``). A
*subscription* is one transceiver (``mid``) of a subscribing session fed by one
publication. A subscriber chooses exactly which tracks it pulls and may point a
subscription at another publication later (``tracks/update``) without renegotiating.

No I/O, no aiortc, no twisted: the service applies what these methods return.
"""

from __future__ import annotations

import dataclasses


class RoutingError(Exception):
    """A request the routing table cannot satisfy; ``kind`` says which failure."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "unknown_track", "unknown_mid", "duplicate_track"


@dataclasses.dataclass(frozen=True)
class TrackKey:
    """A published track: the publishing session and the name it gave the track."""

    session_id: str
    track_name: str


@dataclasses.dataclass(frozen=True)
class Subscription:
    """Transceiver ``mid`` of session ``subscriber`` receives publication ``source``."""

    subscriber: str
    mid: str
    source: TrackKey


@dataclasses.dataclass(frozen=True)
class Removal:
    """What removing a session undid: its publications, the subscriptions of others
    that lost their source, and its own subscriptions."""

    published: tuple[TrackKey, ...]
    orphaned: tuple[Subscription, ...]
    pulled: tuple[Subscription, ...]


class Router:
    """The routing table of one call."""

    def __init__(self) -> None:
        self._mids: dict[TrackKey, str] = {}          # publication → publisher's mid
        self._by_mid: dict[tuple[str, str], TrackKey] = {}  # (session, mid) → publication
        self._subscribers: dict[TrackKey, dict[tuple[str, str], Subscription]] = {}
        self._pulled: dict[str, dict[str, Subscription]] = {}  # session → mid → sub

    # -- publications ---------------------------------------------------------------
    def publish(self, session_id: str, track_name: str, mid: str) -> TrackKey:
        """Record that ``session_id`` sends ``track_name`` on its transceiver ``mid``."""
        key = TrackKey(session_id, track_name)
        existing = self._mids.get(key)
        if existing is not None and existing != mid:
            raise RoutingError("duplicate_track",
                               f"track {track_name!r} is already published on mid {existing}")
        if (session_id, mid) in self._by_mid and self._by_mid[session_id, mid] != key:
            raise RoutingError("duplicate_track", f"mid {mid} already carries a track")
        self._mids[key] = mid
        self._by_mid[session_id, mid] = key
        self._subscribers.setdefault(key, {})
        return key

    def publication(self, session_id: str, mid: str) -> TrackKey | None:
        return self._by_mid.get((session_id, mid))

    def is_published(self, key: TrackKey) -> bool:
        return key in self._mids

    def unpublish(self, session_id: str, mid: str) -> tuple[TrackKey, tuple[Subscription, ...]]:
        """Stop the publication on ``mid``; returns it and the subscriptions it fed
        (which stay, sourceless, until their subscriber closes or redirects them)."""
        key = self._by_mid.pop((session_id, mid), None)
        if key is None:
            raise RoutingError("unknown_mid", f"no published track on mid {mid}")
        del self._mids[key]
        orphaned = tuple(self._subscribers.pop(key, {}).values())
        for sub in orphaned:
            self._pulled[sub.subscriber].pop(sub.mid, None)
        return key, orphaned

    # -- subscriptions --------------------------------------------------------------
    def subscribe(self, subscriber: str, mid: str, source: TrackKey) -> Subscription:
        """Feed ``subscriber``'s transceiver ``mid`` from ``source`` (replacing what it
        received before, if anything)."""
        if source not in self._mids:
            raise RoutingError("unknown_track", f"no track {source.track_name!r} in "
                                                f"session {source.session_id}")
        self.unsubscribe(subscriber, mid)
        sub = Subscription(subscriber, mid, source)
        self._subscribers[source][subscriber, mid] = sub
        self._pulled.setdefault(subscriber, {})[mid] = sub
        return sub

    def unsubscribe(self, subscriber: str, mid: str) -> Subscription | None:
        sub = self._pulled.get(subscriber, {}).pop(mid, None)
        if sub is not None:
            self._subscribers.get(sub.source, {}).pop((subscriber, mid), None)
        return sub

    def subscription(self, subscriber: str, mid: str) -> Subscription | None:
        return self._pulled.get(subscriber, {}).get(mid)

    def subscribers(self, source: TrackKey) -> list[Subscription]:
        return list(self._subscribers.get(source, {}).values())

    # -- sessions -------------------------------------------------------------------
    def published_by(self, session_id: str) -> list[tuple[str, TrackKey]]:
        """``(mid, publication)`` pairs of one session."""
        return [(mid, key) for (sid, mid), key in self._by_mid.items() if sid == session_id]

    def pulled_by(self, session_id: str) -> list[Subscription]:
        return list(self._pulled.get(session_id, {}).values())

    def remove_session(self, session_id: str) -> Removal:
        """Forget everything ``session_id`` published or pulled."""
        published, orphaned = [], []
        for mid, _key in self.published_by(session_id):
            key, subs = self.unpublish(session_id, mid)
            published.append(key)
            orphaned.extend(s for s in subs if s.subscriber != session_id)
        pulled = []
        for sub in self.pulled_by(session_id):
            self.unsubscribe(session_id, sub.mid)
            pulled.append(sub)
        self._pulled.pop(session_id, None)
        return Removal(tuple(published), tuple(orphaned), tuple(pulled))
