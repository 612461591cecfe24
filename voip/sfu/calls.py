"""A room's call and the server's calls: participants, publications, limits.

A call belongs to its room: its participants are sessions of users joined to the room
(checked by the service before a session is admitted). The call keeps the Router's
decisions and the data path in step: a subscription in the Router is exactly one
subscriber ``PacketTrack`` attached to the source ``Publication`` (or
``VideoPublication``). No twisted and no
aiortc here: sessions, publications and tracks are what the service hands in.
"""

from __future__ import annotations

from typing import Any, Mapping

from voip.sfu.activity import DelayHistogram
from voip.sfu.router import Removal, Router, Subscription, TrackKey


class CallLimit(Exception):
    """A limit of the ``voip.sfu`` config would be exceeded."""


class Call:
    """The participants of one room's call and what flows between them."""

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.sessions: dict[str, Any] = {}
        self.router = Router()
        self.publications: dict[TrackKey, Any] = {}
        #: how long this call's packets waited between arriving and their sender
        self.delays = DelayHistogram()

    def publish(self, session_id: str, track_name: str, mid: str, publication: Any) -> TrackKey:
        key = self.router.publish(session_id, track_name, mid)
        self.publications[key] = publication
        return key

    def unpublish(self, session_id: str, mid: str) -> tuple[Any, tuple[Subscription, ...]]:
        """Stop a publication; returns it (to close) and the subscriptions it fed."""
        key, orphaned = self.router.unpublish(session_id, mid)
        return self.publications.pop(key), orphaned

    def subscribe(self, subscriber: str, mid: str, source: TrackKey, output: Any) -> None:
        """Feed ``output`` (subscriber's transceiver ``mid``) from ``source``, moving it
        off whatever fed it before."""
        previous = self.router.subscription(subscriber, mid)
        self.router.subscribe(subscriber, mid, source)
        if previous is not None and previous.source in self.publications:
            self.publications[previous.source].detach(output)
        self.publications[source].attach(output)

    def unsubscribe(self, subscriber: str, mid: str, output: Any) -> Subscription | None:
        sub = self.router.unsubscribe(subscriber, mid)
        if sub is not None and sub.source in self.publications:
            self.publications[sub.source].detach(output)
        return sub

    def remove_session(self, session_id: str,
                       outputs: Mapping[str, Any]) -> tuple[Removal, list[Any]]:
        """Forget a session whose pulled transceivers are ``outputs`` (mid → output);
        returns the Router's removal and the session's publications (to close)."""
        removed = self.router.remove_session(session_id)
        self.sessions.pop(session_id, None)
        publications = [self.publications.pop(key) for key in removed.published]
        for sub in removed.pulled:
            publication = self.publications.get(sub.source)
            if publication is not None and sub.mid in outputs:
                publication.detach(outputs[sub.mid])
        return removed, publications


class CallDirectory:
    """Every call on this server, by room and by session, within the limits."""

    def __init__(self, *, max_calls: int, max_participants: int) -> None:
        self._max_calls = max_calls
        self._max_participants = max_participants
        self._calls: dict[str, Call] = {}
        self._room_of: dict[str, str] = {}

    def check_admission(self, room_id: str) -> None:
        """Raise CallLimit if one more participant may not join ``room_id``'s call."""
        call = self._calls.get(room_id)
        if call is None:
            if len(self._calls) >= self._max_calls:
                raise CallLimit(f"this server already carries {self._max_calls} calls")
        elif len(call.sessions) >= self._max_participants:
            raise CallLimit(f"this call already has {self._max_participants} participants")

    def add(self, room_id: str, session_id: str, session: Any) -> Call:
        self.check_admission(room_id)
        call = self._calls.setdefault(room_id, Call(room_id))
        call.sessions[session_id] = session
        self._room_of[session_id] = room_id
        return call

    def call(self, room_id: str) -> Call | None:
        return self._calls.get(room_id)

    def find(self, room_id: str, session_id: str) -> tuple[Call, Any] | None:
        """The call and session for ``session_id`` if it is in ``room_id``'s call."""
        if self._room_of.get(session_id) != room_id:
            return None
        call = self._calls[room_id]
        return call, call.sessions[session_id]

    def remove(self, session_id: str,
               outputs: Mapping[str, Any]) -> tuple[Call, Removal, list[Any]] | None:
        room_id = self._room_of.pop(session_id, None)
        if room_id is None:
            return None
        call = self._calls[room_id]
        removed, publications = call.remove_session(session_id, outputs)
        if not call.sessions:
            del self._calls[room_id]
        return call, removed, publications

    def sessions(self) -> list[Any]:
        return [s for call in self._calls.values() for s in call.sessions.values()]

