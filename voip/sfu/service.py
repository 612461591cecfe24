"""The SFU as the HTTP API sees it: admission, negotiation, routing, clean-up.

Twisted-facing (the servlets await these methods) over an asyncio core (aiortc): each
operation checks the caller on the Twisted side (the room gate: joined members only),
then runs one coroutine on the asyncio loop (``_aio``) that negotiates the session's
SDP under its ``serial`` lock and applies the routing change. Media never touches the
room actor: the actor owns who is in the room; the SFU owns sessions and packets.
A sweep every second closes sessions that died (connection failed, never connected,
silent too long) and a member event that takes a user out of a room closes their
sessions in its call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Protocol

from twisted.internet import defer, task
from twisted.logger import Logger

from homeserver.errors import BadJson, Forbidden, MatrixError, NotFound
from voip.sfu.activity import BitratePolicer, DelayHistogram, TrackActivity
from voip.sfu.calls import Call, CallDirectory, CallLimit
from voip.sfu.fanout import Publication
from voip.sfu.router import RoutingError, TrackKey
from voip.sfu.sdp_text import SdpError, parse_offer_mids
from voip.sfu.sfu_config import SfuConfig
from voip.sfu.suppression import DenoiseStage, PayloadDenoiser
from voip.sfu.video import H264, VP8, SimulcastPreference
from voip.sfu.video_fanout import VideoPublication

if TYPE_CHECKING:
    from voip.sfu.session import Session

log = Logger()

#: publishers may burst above the bitrate they were asked to keep (FEC, encoder
#: overshoot); beyond this factor packets are dropped
POLICE_FACTOR = 2


class RoomGate(Protocol):
    """What the SFU asks of the rooms (homeserver.rooms via the composition root)."""

    def is_joined(self, room_id: str, user_id: str) -> Awaitable[bool]: ...

    def is_encrypted(self, room_id: str) -> Awaitable[bool]: ...


def _aio(coro) -> defer.Deferred:
    return defer.Deferred.fromFuture(asyncio.ensure_future(coro))


def _error(kind: type[MatrixError], message: str, **kw) -> MatrixError:
    """A Matrix error that partytracks also understands (errorCode/errorDescription)."""
    return kind(message, errorCode=kind.errcode, errorDescription=message, **kw)


def _limit(message: str) -> MatrixError:
    return MatrixError(message, errcode="M_LIMIT_EXCEEDED", status=429,
                       errorCode="M_LIMIT_EXCEEDED", errorDescription=message)


def _description(body: dict, expected: str, *, required: bool) -> str | None:
    desc = body.get("sessionDescription")
    if desc is None:
        if required:
            raise _error(BadJson, f"sessionDescription with an {expected} is required")
        return None
    if not isinstance(desc, dict) or desc.get("type") != expected \
            or not isinstance(desc.get("sdp"), str):
        raise _error(BadJson, f"sessionDescription must be {{type: {expected!r}, sdp}}")
    return desc["sdp"]


def _string(entry: dict, key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value or len(value) > 255:
        raise _error(BadJson, f"each track needs a {key}")
    return value


def _simulcast(entry: dict) -> SimulcastPreference | None:
    """A track entry's ``simulcast`` object, Cloudflare Realtime's shape:
    ``{preferredRid, priorityOrdering?, ridNotAvailable?}`` ("none" or "asciibetical")."""
    raw = entry.get("simulcast")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _error(BadJson, "simulcast must be an object")
    rid = raw.get("preferredRid")
    if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= 255):
        raise _error(BadJson, "simulcast.preferredRid must be a rid")
    for key in ("priorityOrdering", "ridNotAvailable"):
        if raw.get(key, "asciibetical") not in ("none", "asciibetical"):
            raise _error(BadJson, f"simulcast.{key} must be 'none' or 'asciibetical'")
    return SimulcastPreference(rid, raw.get("ridNotAvailable", "asciibetical") != "none")


def _tracks(body: dict) -> list[dict]:
    tracks = body.get("tracks")
    if not isinstance(tracks, list) or not tracks or len(tracks) > 64 \
            or not all(isinstance(t, dict) for t in tracks):
        raise _error(BadJson, "tracks must be a non-empty list of objects")
    return tracks


class SfuService:
    def __init__(self, config: SfuConfig, *, gate: RoomGate, clock,
                 ice_servers_for: Callable[[str], list[dict]],
                 denoiser_factory: Callable[[], PayloadDenoiser] | None = None) -> None:
        self._config = config
        self._gate = gate
        self._clock = clock
        self._ice_servers_for = ice_servers_for
        self._denoiser_factory = denoiser_factory
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.calls = CallDirectory(max_calls=config.max_calls,
                                   max_participants=config.max_participants_per_call)
        self._sweeper = task.LoopingCall(self.sweep)
        self._sweeper.clock = clock

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._sweeper.start(1.0, now=False)

    def stop(self) -> defer.Deferred:
        """Close every peer connection (the server is stopping)."""
        if self._sweeper.running:
            self._sweeper.stop()
        sessions = self.calls.sessions()
        for session in sessions:
            self._forget(session)
        d = _aio(_close_all(sessions))
        if self._executor is not None:
            d.addBoth(lambda r: (self._executor.shutdown(wait=False), r)[1])
        return d

    def _now(self) -> float:
        return self._clock.seconds()

    # -- admission --------------------------------------------------------------------
    async def _admit(self, requester, room_id: str) -> None:
        if not await self._gate.is_joined(room_id, requester.user_id):
            raise _error(Forbidden, "You are not joined to this room")

    async def _owned(self, requester, room_id: str, session_id: str) -> tuple[Call, Session]:
        await self._admit(requester, room_id)
        found = self.calls.find(room_id, session_id)
        if found is None:
            raise _error(NotFound, "Unknown session")
        call, session = found
        if session.user_id != requester.user_id:
            raise _error(Forbidden, "This session belongs to another user")
        return call, session

    async def create_session(self, requester, room_id: str, body: dict) -> dict:
        await self._admit(requester, room_id)
        offer = _description(body, "offer", required=False)
        if offer is not None:
            parse_offer_mids_or_400(offer)
        try:
            self.calls.check_admission(room_id)
        except CallLimit as e:
            raise _limit(str(e)) from None
        # no await from the check to add(): the admission still holds
        from voip.sfu.session import Session  # aiortc and PyAV load with the first call

        session = Session(secrets.token_hex(16), user_id=requester.user_id,
                          device_id=requester.device_id, room_id=room_id,
                          config=self._config, now=self._now,
                          ice_servers=self._ice_servers_for(requester.user_id))
        session.noise_suppression = body.get("noiseSuppression") is True
        session.delays = self.calls.add(room_id, session.id, session).delays
        out: dict[str, Any] = {"sessionId": session.id}
        if offer is not None:
            try:
                answer = await _aio(self._serially(session, session.answer_offer(offer)))
            except SdpError as e:
                await self._close(session)
                raise _error(BadJson, str(e)) from None
            out["sessionDescription"] = {"type": "answer", "sdp": answer}
        return out

    # -- tracks -----------------------------------------------------------------------
    async def new_tracks(self, requester, room_id: str, session_id: str, body: dict) -> dict:
        call, session = await self._owned(requester, room_id, session_id)
        tracks = _tracks(body)
        locations = {t.get("location", "local") for t in tracks}
        if locations == {"local"}:
            offer = _description(body, "offer", required=True)
            wanted = [(_string(t, "trackName"), _string(t, "mid"),
                       t.get("noiseSuppression", session.noise_suppression) is True)
                      for t in tracks]
            self._check_local(call, session, offer, wanted)
            encrypted = await self._gate.is_encrypted(room_id)
            return await _aio(self._serially(session, self._publish(
                call, session, offer, wanted, denoise_allowed=not encrypted)))
        if locations == {"remote"}:
            if body.get("sessionDescription") is not None:
                raise _error(BadJson, "pulling tracks takes no sessionDescription")
            sources = [(TrackKey(_string(t, "sessionId"), _string(t, "trackName")),
                        _simulcast(t)) for t in tracks]
            for key, _ in sources:
                if not call.router.is_published(key):
                    raise _error(NotFound, f"No track {key.track_name!r} in session "
                                           f"{key.session_id} of this call")
            return await _aio(self._serially(session, self._pull(call, session, sources)))
        raise _error(BadJson, "tracks must all be local or all be remote")

    def _check_local(self, call: Call, session: Session, offer: str, wanted) -> None:
        media = parse_offer_mids_or_400(offer)
        names = [name for name, _, _ in wanted]
        if len(set(names)) != len(names):
            raise _error(BadJson, "track names must be unique")
        for name, mid, _ in wanted:
            if mid not in media:
                raise _error(BadJson, f"mid {mid} is not in the offer")
            kind, direction = media[mid]
            if kind not in ("audio", "video") or direction not in ("sendonly", "sendrecv"):
                raise _error(BadJson, f"mid {mid} sends neither audio nor video")
            if call.router.is_published(TrackKey(session.id, name)):
                raise _error(BadJson, f"track {name!r} is already published")

    async def _publish(self, call: Call, session: Session, offer: str, wanted,
                       denoise_allowed: bool) -> dict:
        try:
            answer = await session.answer_offer(offer)
        except SdpError as e:
            raise _error(BadJson, str(e)) from None
        out = []
        for name, mid, denoise in wanted:
            receiver = session.receiver(mid)
            if receiver is None:  # the offer changed under us: not a transceiver of ours
                raise _error(BadJson, f"mid {mid} has no receiver")
            codec = session.input_codec(mid)
            if codec is None:
                raise _error(BadJson, f"mid {mid} offers no codec we forward (Opus, VP8, "
                                      "H.264 packetization-mode 1)")
            if codec in (VP8, H264):
                receiver.max_bitrate = self._config.max_video_bitrate
                publication = VideoPublication(
                    codec, TrackActivity(),
                    BitratePolicer(POLICE_FACTOR * self._config.max_video_bitrate),
                    self._now, receiver.request_keyframe)
                try:
                    call.publish(session.id, name, mid, publication)
                except RoutingError as e:
                    raise _error(BadJson, str(e)) from None
                receiver.sink = publication.on_rtp
                out.append({"trackName": name, "mid": mid, "noiseSuppression": False})
                continue
            publication = Publication(
                TrackActivity(), BitratePolicer(POLICE_FACTOR * self._config.max_bitrate_per_track),
                self._now)
            denoised = denoise and denoise_allowed and self._denoiser_factory is not None
            if denoised:
                publication.stage = DenoiseStage(self._denoiser_factory(),
                                                 publication.fan_out, self._denoise_pool())
            try:
                call.publish(session.id, name, mid, publication)
            except RoutingError as e:  # published meanwhile by a concurrent request
                publication.close()
                raise _error(BadJson, str(e)) from None
            receiver.sink = publication.on_rtp
            out.append({"trackName": name, "mid": mid, "noiseSuppression": denoised})
        return {"requiresImmediateRenegotiation": False, "tracks": out,
                "sessionDescription": {"type": "answer", "sdp": answer}}

    async def _pull(self, call: Call, session: Session, sources) -> dict:
        codecs = [call.publications[key].codec for key, _ in sources]
        try:
            mids, offer = await session.offer_outputs(codecs)
        except SdpError as e:
            raise _error(BadJson, str(e)) from None
        out = []
        for mid, (key, preference) in zip(mids, sources):
            output = session.outputs[mid]
            if preference is not None and hasattr(output, "preference"):
                output.preference = preference
            if call.router.is_published(key):  # it may have gone while we offered
                call.subscribe(session.id, mid, key, output)
            entry = {"trackName": key.track_name, "sessionId": key.session_id, "mid": mid}
            if preference is not None:
                entry["simulcast"] = _describe_preference(preference)
            out.append(entry)
        return {"requiresImmediateRenegotiation": True, "tracks": out,
                "sessionDescription": {"type": "offer", "sdp": offer}}

    async def renegotiate(self, requester, room_id: str, session_id: str, body: dict) -> dict:
        _call, session = await self._owned(requester, room_id, session_id)
        answer = _description(body, "answer", required=True)

        async def apply():
            try:
                await session.accept_answer(answer)
            except SdpError as e:
                raise _error(BadJson, str(e)) from None
            return {}
        return await _aio(self._serially(session, apply()))

    async def close_tracks(self, requester, room_id: str, session_id: str, body: dict) -> dict:
        call, session = await self._owned(requester, room_id, session_id)
        mids = [_string(t, "mid") for t in _tracks(body)]
        offer = _description(body, "offer", required=False)
        for mid in mids:
            if call.router.publication(session.id, mid) is None and mid not in session.outputs:
                raise _error(NotFound, f"No track on mid {mid} in this session")
        if offer is not None:
            parse_offer_mids_or_400(offer)

        async def apply():
            for mid in mids:
                if call.router.publication(session.id, mid) is not None:
                    publication, _orphaned = call.unpublish(session.id, mid)
                    publication.close()
                    session.stop_input(mid)
                elif mid in session.outputs:
                    call.unsubscribe(session.id, mid, session.outputs[mid])
                    session.stop_output(mid)
            out: dict[str, Any] = {"requiresImmediateRenegotiation": False,
                                   "tracks": [{"mid": mid} for mid in mids]}
            if offer is not None:
                try:
                    answer = await session.answer_offer(offer)
                except SdpError as e:
                    raise _error(BadJson, str(e)) from None
                out["sessionDescription"] = {"type": "answer", "sdp": answer}
            return out
        return await _aio(self._serially(session, apply()))

    async def update_tracks(self, requester, room_id: str, session_id: str, body: dict) -> dict:
        """Point pulled transceivers at other tracks of the same codec (per-subscriber
        track selection) or, for video, at another simulcast layer (``simulcast``);
        no renegotiation. Timestamps stay continuous (TimestampRewriter); video moves
        at the new source's next keyframe, which is asked for."""
        call, session = await self._owned(requester, room_id, session_id)
        changes = []
        for t in _tracks(body):
            if t.get("location", "remote") != "remote":
                raise _error(BadJson, "only remote (pulled) tracks can be updated")
            mid = _string(t, "mid")
            if mid not in session.outputs:
                raise _error(NotFound, f"No pulled track on mid {mid} in this session")
            key = None  # without a track name: keep the source (a simulcast-only update)
            output = session.outputs[mid]
            if "trackName" in t:
                key = TrackKey(_string(t, "sessionId"), _string(t, "trackName"))
                if not call.router.is_published(key):
                    raise _error(NotFound, f"No track {key.track_name!r} in session "
                                           f"{key.session_id} of this call")
                if call.publications[key].codec != _output_codec(session, mid):
                    raise _error(BadJson, f"track {key.track_name!r} is not in the codec "
                                          f"negotiated on mid {mid}: pull it instead")
            preference = _simulcast(t)
            if preference is not None and not hasattr(output, "preference"):
                raise _error(BadJson, f"mid {mid} is not video: no simulcast")
            changes.append((mid, key, preference))
        out = []
        for mid, key, preference in changes:
            output = session.outputs[mid]
            if preference is not None:
                output.preference = preference
            if key is not None:
                call.subscribe(session.id, mid, key, output)
            elif preference is not None and output.source is not None:
                output.source.retarget(output)
            sub = call.router.subscription(session.id, mid)
            entry = {"mid": mid, "sessionId": sub and sub.source.session_id,
                     "trackName": sub and sub.source.track_name}
            if preference is not None:
                entry["simulcast"] = _describe_preference(preference)
            out.append(entry)
        return {"requiresImmediateRenegotiation": False, "tracks": out}

    async def describe_session(self, requester, room_id: str, session_id: str) -> dict:
        call, session = await self._owned(requester, room_id, session_id)
        now = self._now()
        tracks = []
        for mid, key in call.router.published_by(session.id):
            tracks.append({"location": "local", "mid": mid, "trackName": key.track_name,
                           "status": "active",
                           **call.publications[key].activity.describe(now)})
        for mid in session.outputs:
            sub = call.router.subscription(session.id, mid)
            tracks.append({"location": "remote", "mid": mid,
                           "sessionId": sub and sub.source.session_id,
                           "trackName": sub and sub.source.track_name,
                           "status": "active" if sub else "inactive"})
        return {"tracks": tracks, "connectionState": session.pc.connectionState,
                "noiseSuppression": session.noise_suppression}

    async def describe_call(self, requester, room_id: str) -> dict:
        """Who is in the room's call and what they publish, with speaking/muted, and how
        long the call's packets waited inside the SFU."""
        await self._admit(requester, room_id)
        call = self.calls.call(room_id)
        now = self._now()
        participants = []
        for session in (call.sessions.values() if call else ()):
            participants.append({
                "sessionId": session.id, "userId": session.user_id,
                "deviceId": session.device_id,
                "tracks": [{"trackName": key.track_name, "mid": mid,
                            **call.publications[key].activity.describe(now)}
                           for mid, key in call.router.published_by(session.id)]})
        forwarding = call.delays.describe() if call else DelayHistogram().describe()
        return {"participants": participants, "forwarding": forwarding}

    def ice_servers(self, requester) -> dict:
        return {"iceServers": self._ice_servers_for(requester.user_id)}

    # -- clean-up ---------------------------------------------------------------------
    async def _serially(self, session: Session, coro):
        async with session.serial:
            if session.closed:
                coro.close()
                raise _error(NotFound, "Unknown session")
            return await coro

    def _forget(self, session: Session) -> None:
        removed = self.calls.remove(session.id, session.outputs)
        if removed is not None:
            for publication in removed[2]:
                publication.close()

    def _close(self, session: Session) -> defer.Deferred:
        self._forget(session)
        return _aio(session.close())

    def sweep(self) -> None:
        """Close every session that died (see Session.death)."""
        now = self._now()
        for session in self.calls.sessions():
            call = self.calls.call(session.room_id)
            has_media = bool(call.router.published_by(session.id) or session.outputs)
            reason = session.death(now, has_media=has_media)
            if reason is not None:
                log.info("sfu: closing session {id} of {user} in {room}: {reason}",
                         id=session.id, user=session.user_id, room=session.room_id,
                         reason=reason)
                self._close(session).addErrback(
                    lambda f: log.failure("sfu: closing a session failed", f))

    def on_room_event(self, event, stream_pos: int) -> None:
        """Notifier observer: a user who is no longer joined leaves the room's call."""
        if event.get("type") != "m.room.member":
            return
        if (event.get("content") or {}).get("membership") == "join":
            return
        call = self.calls.call(event.get("room_id"))
        if call is None:
            return
        for session in list(call.sessions.values()):
            if session.user_id == event.get("state_key"):
                self._close(session).addErrback(
                    lambda f: log.failure("sfu: closing a session failed", f))

    def _denoise_pool(self) -> concurrent.futures.Executor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=2, thread_name_prefix="sfu-denoise")
        return self._executor


def _describe_preference(preference: SimulcastPreference) -> dict:
    return {"preferredRid": preference.preferred_rid,
            "ridNotAvailable": "asciibetical" if preference.fallback else "none"}


def _output_codec(session: Session, mid: str) -> str:
    """The codec a pulled transceiver was offered with (its source's)."""
    return session.output_codecs.get(mid, "audio/opus")


async def _close_all(sessions) -> None:
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


def parse_offer_mids_or_400(offer: str) -> dict[str, tuple[str, str]]:
    try:
        return parse_offer_mids(offer)
    except SdpError as e:
        raise _error(BadJson, str(e)) from None

