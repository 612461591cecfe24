"""RoomRegistry: room_id → RoomActor; creates rooms, wakes them, bounds open DBs.

Each room lives in ``<data_dir>/<h[:2]>/<h>.db`` with ``h = sha256(room_id)`` in hex:
room IDs may hold characters unfit for file names, and v12 room IDs are unknown until
the create event is hashed, so the name is derived, never chosen. (The room ID is in
the file's ``room_meta``.)

Only awake rooms are in memory. A room wakes on ``get`` (opening its DB and replaying
its outbox) and hibernates after ``idle_seconds`` without work or subscribers; at most
``max_open`` rooms stay awake, the least recently fetched idle ones being closed first
(an actor with work in progress or live subscribers is never closed). Of the awake
rooms, only the ``max_warm`` most recently used keep their caches in memory
(``rooms.actor.memory.WarmRooms``).
"""

from __future__ import annotations

import collections
import glob
import hashlib
import os
import secrets
import string
from typing import Any, Callable, Mapping, Sequence

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from homeserver.crypto.signing import SigningKey
from homeserver.errors import MatrixError, NotFound, RoomInUse, UnsupportedRoomVersionError
from homeserver.events.builder import finalize_event
from homeserver.events.pdu import PDU
from homeserver.events.room_versions import UnsupportedRoomVersion, get_room_version
from homeserver.rooms.actor.actor import RoomActor, RoomServices
from homeserver.rooms.actor.memory import MemoryReturner, WarmRooms, compact
from homeserver.rooms.actor.protocols import RoomListener, RoomStreamWriter
from homeserver.rooms.actor.room_writer import RemoteOutcome
from homeserver.rooms.storage.store import RoomStore

log = Logger()

_ROOM_ID_ALPHABET = string.ascii_letters


class RoomRegistry:
    def __init__(self, *, data_dir: str, server_name: str, signing_key: SigningKey,
                 clock: IReactorTime, stream_writer: RoomStreamWriter,
                 listener: RoomListener, idle_seconds: float = 30.0, max_open: int = 256,
                 max_warm: int = 256, release_free_pools: bool = True,
                 now_ms: Callable[[], int] | None = None, full_every: int = 100,
                 close_in_thread: Callable[[Callable[[], None]], Any] | None = None,
                 wal_in_thread: Callable[[Callable[[], None]], Any] | None = None
                 ) -> None:
        """``close_in_thread(fn)`` takes the fsyncs of closing a hibernating room's DB
        off the reactor thread and returns a Deferred that fires once ``fn`` ran (e.g.
        ``deferToThreadPool`` on a pool of its own), the WAL checkpoints of awake
        rooms (``RoomStore.checkpoint_in``); None closes inline and leaves
        checkpoints to SQLite. ``wal_in_thread(fn)`` (default: ``close_in_thread``)
        creates a woken room's WAL before its first commit (``RoomStore.start_wal_in``):
        a thread of its own, so that a send never waits behind a queue of closes."""
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self._data_dir = data_dir
        self._services = RoomServices(
            server_name=server_name, signing_key=signing_key, clock=clock,
            stream_writer=stream_writer, listener=listener,
            now_ms=now_ms or (lambda: int(clock.seconds() * 1000)),
            idle_seconds=idle_seconds, warm=WarmRooms(max_warm),
            in_thread=wal_in_thread or close_in_thread)
        self._max_open = max_open
        self._full_every = full_every
        self._closer = close_in_thread
        self._memory = MemoryReturner(clock, all_asleep=lambda: not self._awake,
                                      free_pools=release_free_pools)
        #: awake actors, least recently fetched first
        self._awake: collections.OrderedDict[str, RoomActor] = collections.OrderedDict()
        self._waking: dict[str, list[defer.Deferred]] = {}
        self._stopping = False
        self._last_create_ts = 0
        self._hibernation_observers: list[Callable[[str], None]] = []
        self._memory.add_releaser(self._compact)

    def _compact(self) -> None:
        compact(self._awake, self._waking)
        if self._services.warm is not None:
            self._services.warm.compact()

    # -- lookups ------------------------------------------------------------------------
    def path_for(self, room_id: str) -> str:
        digest = hashlib.sha256(room_id.encode("utf-8")).hexdigest()
        return os.path.join(self._data_dir, digest[:2], digest + ".db")

    def known(self, room_id: str) -> bool:
        """True if this server has the room (awake or on disk)."""
        return room_id in self._awake or os.path.exists(self.path_for(room_id))

    def is_awake(self, room_id: str) -> bool:
        return room_id in self._awake

    @property
    def awake_count(self) -> int:
        return len(self._awake)

    def add_hibernation_observer(self, observer: Callable[[str], None]) -> None:
        """``observer(room_id)`` when a room leaves memory (idle or evicted): a cache
        of something the room holds (its state, its members) drops it then, so that a
        hibernated room costs nothing in RAM anywhere."""
        self._hibernation_observers.append(observer)

    def add_memory_releaser(self, release: Callable[[], None], *,
                            when_all_asleep: bool = False) -> None:
        """``release()`` each time hibernated rooms' memory is given back to the OS
        (``MemoryReturner``): for memory held elsewhere that rooms filled, such as the
        global DB's page cache; ``when_all_asleep``: only once no room is awake."""
        self._memory.add_releaser(release, when_all_asleep=when_all_asleep)

    async def get(self, room_id: str) -> RoomActor:
        """The room's actor, woken from disk if needed; NotFound if no such room."""
        self._check_running()
        actor = self._awake.get(room_id)
        if actor is not None:
            self._awake.move_to_end(room_id)
            return actor
        if room_id in self._waking:
            d: defer.Deferred = defer.Deferred()
            self._waking[room_id].append(d)
            return await d
        self._waking[room_id] = []
        try:
            actor = await self._wake(room_id)
        except Exception as e:
            for d in self._waking.pop(room_id):
                d.errback(e)
            raise
        self._awake[room_id] = actor
        for d in self._waking.pop(room_id):
            d.callback(actor)
        self._evict()
        return actor

    def _open(self, path: str, *, create: bool = False) -> RoomStore:
        """An awake room's store: its WAL checkpoints (two fsyncs each) run on the
        closer's thread too, not inside the commits of the reactor thread."""
        store = RoomStore.open(path, create=create, full_every=self._full_every)
        if self._closer is not None:
            store.checkpoint_in(self._closer)
        return store

    async def _wake(self, room_id: str) -> RoomActor:
        path = self.path_for(room_id)
        try:
            store = self._open(path)
        except FileNotFoundError:
            raise NotFound(f"unknown room {room_id}") from None
        if store.get_meta("room_id") != room_id:
            # a creation that crashed before its first commit left an empty DB
            store.close()
            raise NotFound(f"unknown room {room_id}")
        actor = RoomActor(store, self._services, on_idle=self._hibernate, reopen=self.get)
        await actor.recover()
        return actor

    async def recover_unclean(self) -> list[str]:
        """Wake every room whose database was not closed cleanly, replaying its outbox.

        SQLite removes a database's ``-wal`` file when its last connection closes, and a
        hibernating or stopping room always closes; so a leftover ``-wal`` marks a room
        that was open when the process died and may hold committed events the room
        stream never heard of. Called once at start-up, before clients are served, so
        /sync cannot miss them even if nobody touches the room. Returns the room IDs.
        """
        recovered = []
        for wal in sorted(glob.glob(os.path.join(self._data_dir, "*", "*.db-wal"))):
            path = wal[:-len("-wal")]
            try:
                store = RoomStore.open(path, full_every=self._full_every)
            except Exception as e:  # a damaged file must not keep the server down
                log.error("cannot open room database {path}: {e}", path=path, e=e)
                continue
            room_id = store.get_meta("room_id")
            store.close()
            if room_id is None or self.path_for(room_id) != path:
                continue
            await self.get(room_id)
            recovered.append(room_id)
        if recovered:
            log.info("replayed the outbox of {n} room(s) after an unclean stop",
                     n=len(recovered))
        return recovered

    # -- creation -----------------------------------------------------------------------
    def new_room_id(self) -> str:
        """A free room ID of the pre-v12 form (``!random:our.server``), for a room
        whose ID must be known before it is created (an upgrade's tombstone)."""
        while True:
            localpart = "".join(secrets.choice(_ROOM_ID_ALPHABET) for _ in range(18))
            room_id = f"!{localpart}:{self._services.server_name}"
            if not self.known(room_id):
                return room_id

    async def create_room(self, creator: str, room_version: str,
                          initial_partials: Sequence[Mapping[str, Any]],
                          is_public: bool = False, room_id: str | None = None
                          ) -> tuple[str, list[PDU]]:
        """Create a room: its DB file, the create event and ``initial_partials``.

        ``initial_partials`` are partial events (type, sender, content, state_key) as
        ``rooms.rules.creation.initial_room_events`` makes them; the first may be the
        ``m.room.create`` partial (else a default one is used). All events are written
        in one transaction, then the room is registered in the global rooms index and
        its events announced. Raises UnsupportedRoomVersionError, or AuthError if an
        initial event is refused (and then nothing is left on disk).

        ``room_id`` (from :meth:`new_room_id`) names the room in versions before 12,
        whose room IDs are not derived from the create event; RoomInUse if taken.
        """
        self._check_running()
        try:
            version = get_room_version(room_version)
        except UnsupportedRoomVersion:
            raise UnsupportedRoomVersionError(
                f"unsupported room version {room_version!r}") from None
        if room_id is not None and (version.room_id_from_create_event
                                    or self.known(room_id)):
            raise RoomInUse(f"room ID {room_id} cannot be used for this room")
        partials = [dict(p) for p in initial_partials]
        if not partials or partials[0].get("type") != "m.room.create":
            partials.insert(0, {"type": "m.room.create", "sender": creator, "content": {}})
        # v12: the same creator, content and millisecond give the same room ID, so
        # timestamps of create events never repeat here, and a collision with a room
        # on disk moves on (older versions draw a new random ID each attempt)
        ts = max(self._services.now_ms(), self._last_create_ts + 1)
        for _attempt in range(100):
            create = self._build_create(version, creator, partials[0], ts, room_id)
            room_id, path = create.room_id, self.path_for(create.room_id)
            if not os.path.exists(path):
                break
            ts += 1
        else:
            raise RoomInUse("could not find a free room ID")
        self._last_create_ts = ts
        store = self._open(path, create=True)
        actor = RoomActor(store, self._services, room_id=room_id, room_version=version,
                          on_idle=self._hibernate, reopen=self.get)
        self._awake[room_id] = actor
        meta = {"creator": creator, "is_public": int(is_public), "registered": 0}
        try:
            events = await actor.create_room_events(create, partials[1:], meta)
        except Exception:
            await self._discard(actor, path)
            raise
        self._evict()
        return room_id, events

    async def import_room(self, room_id: str, room_version: str, event: PDU,
                          state: Sequence[PDU], auth_chain: Sequence[PDU], *,
                          joined_via: str | None = None) -> RemoteOutcome:
        """Start holding a room that exists elsewhere, from a send_join answer.

        ``event`` is our user's join (already signed by the resident server where
        the room version needs it), ``state`` the room state before it and
        ``auth_chain`` the auth chain of both; signatures and hashes have been
        checked by the caller. One transaction; on failure nothing is left on disk.
        Raises RoomInUse if we already have the room, InvalidRoomState if the join
        is not accepted against that state. ``joined_via``: the server that answered
        the join (kept as the room's ``joined_via`` meta: the first to ask for history).
        """
        self._check_running()
        try:
            version = get_room_version(room_version)
        except UnsupportedRoomVersion:
            raise UnsupportedRoomVersionError(
                f"unsupported room version {room_version!r}") from None
        if self.known(room_id):
            raise RoomInUse(f"room {room_id} is already here")
        path = self.path_for(room_id)
        store = self._open(path, create=True)
        actor = RoomActor(store, self._services, room_id=room_id, room_version=version,
                          on_idle=self._hibernate, reopen=self.get)
        self._awake[room_id] = actor
        creator = next((e.sender for e in state if e.type == "m.room.create"), "")
        meta = {"creator": creator, "is_public": 0, "registered": 0}
        if joined_via is not None:
            meta["joined_via"] = joined_via
        try:
            outcome = await actor.import_room(event, state, auth_chain, meta)
        except Exception:
            await self._discard(actor, path)
            raise
        self._evict()
        return outcome

    async def _discard(self, actor: RoomActor, path: str) -> None:
        """Undo a room whose first transaction failed: no actor, no files."""
        if self._awake.get(actor.room_id) is actor:
            del self._awake[actor.room_id]
        await actor.drain()
        actor.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)

    def _build_create(self, version, creator: str, partial: Mapping[str, Any],
                      now_ms: int, room_id: str | None = None) -> PDU:
        content = dict(partial.get("content") or {})
        content.setdefault("room_version", version.identifier)
        if not version.implicit_room_creator:
            content.setdefault("creator", creator)
        event = {"type": "m.room.create", "sender": partial.get("sender", creator),
                 "state_key": "", "content": content, "prev_events": [],
                 "auth_events": [], "depth": 1}
        if not version.room_id_from_create_event:
            event["room_id"] = room_id or self.new_room_id()
        return finalize_event(version, event, self._services.server_name,
                              self._services.signing_key, now_ms)

    # -- memory bounds ------------------------------------------------------------------
    def _hibernate(self, actor: RoomActor) -> None:
        if self._awake.get(actor.room_id) is actor:
            del self._awake[actor.room_id]
        self._asleep(actor)

    def _evict(self) -> None:
        excess = len(self._awake) - self._max_open
        if excess <= 0:
            return
        for room_id, actor in list(self._awake.items()):
            if excess <= 0:
                break
            if actor.pinned:
                continue
            del self._awake[room_id]
            self._asleep(actor)
            excess -= 1
        if excess > 0:
            log.info("{n} rooms over max_open: all busy or subscribed", n=excess)

    def _asleep(self, actor: RoomActor) -> None:
        closing = actor.close(self._closer)
        self._services.stream_writer.room_hibernated(actor.room_id)
        for observer in self._hibernation_observers:
            observer(actor.room_id)
        if isinstance(closing, defer.Deferred):
            # the room's memory is free once its file is closed, in the closer thread
            closing.addBoth(self._closed_elsewhere, actor.room_id)
        else:
            self._memory.rooms_closed()

    def _closed_elsewhere(self, result: Any, room_id: str) -> None:
        if isinstance(result, Failure):
            log.failure("closing the DB of {room_id} failed", result, room_id=room_id)
        self._memory.rooms_closed()

    # -- shutdown -----------------------------------------------------------------------
    def stop(self) -> defer.Deferred:
        """Drain every inbox, then close every room DB (graceful SIGTERM)."""
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        self._stopping = True
        self._memory.cancel()
        while self._awake:
            actors = list(self._awake.values())
            for actor in actors:
                await actor.drain()
            for actor in actors:
                if self._awake.get(actor.room_id) is actor:
                    del self._awake[actor.room_id]
                actor.close()

    def _check_running(self) -> None:
        if self._stopping:
            raise MatrixError("the server is shutting down", status=503)
