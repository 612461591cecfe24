"""The global database (DESIGN.md §4): what crosses rooms.

:class:`GlobalStore` is a plain object holding the :class:`Database` and one small
store per concern, each owning a few tables::

    store = GlobalStore.from_config({"name": "sqlite3", "args": {"database": p}}, reactor)
    store.db.setServiceParent(root)        # migrates, then starts the thread pool
    await store.accounts.create_user("@alice:example.org", hash_password("…"))

It implements :class:`homeserver.rooms.actor.protocols.RoomStreamWriter` by delegating to
``store.streams`` and ``store.rooms``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from homeserver.rooms.actor.protocols import Announcement
from homeserver.store import positions
from homeserver.store.account_data import AccountData
from homeserver.store.access_tokens import AccessTokens
from homeserver.store.accounts import Accounts
from homeserver.store.cross_signing import CrossSigning
from homeserver.store.database import Database
from homeserver.store.delayed_events import DelayedEvents
from homeserver.store.devices import Devices
from homeserver.store.directory_entries import DirectoryEntries
from homeserver.store.e2e_keys import E2eKeys
from homeserver.store.federation_txns import InboundTransactions
from homeserver.store.filters import Filters
from homeserver.store.key_backups import KeyBackups
from homeserver.store.login_tokens import LoginTokens
from homeserver.store.media import Media
from homeserver.store.federation_destinations import FederationDestinations
from homeserver.store.outbox import FederationOutbox
from homeserver.store.notifications import Notifications
from homeserver.store.openid_tokens import OpenIdTokens
from homeserver.store.presence import Presence
from homeserver.store.push_progress import PushProgress
from homeserver.store.push_rules import PushRules
from homeserver.store.pushers import Pushers
from homeserver.store.receipts import Receipts
from homeserver.store.remote_devices import RemoteDeviceLists
from homeserver.store.registration_tokens import RegistrationTokens
from homeserver.store.erased_users import ErasedUsers
from homeserver.store.reports import Reports
from homeserver.store.room_positions import RoomPositions
from homeserver.store.rooms import Rooms
from homeserver.store.server_keys import ServerKeys
from homeserver.store.stream_tail import RoomStreamTail
from homeserver.store.remote_memberships import RemoteMemberships
from homeserver.store.streams import Streams
from homeserver.store.sync_reads import SyncReads
from homeserver.store.to_device import ToDevice
from homeserver.store.user_directory import UserDirectory

__all__ = ["GlobalStore", "Database", "STREAMS"]

STREAMS = positions.STREAMS


class GlobalStore:
    """Every part of the global database, as attributes sharing one :class:`Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._positions: dict[str, int] = {}
        self._positions_loaded = False
        db.add_advance_listener(self._advanced)
        self.accounts = Accounts(db)
        self.devices = Devices(db)
        self.access_tokens = AccessTokens(db, self.devices)
        self.rooms = Rooms(db)
        tail = RoomStreamTail()
        self.streams = Streams(db, tail)
        self.account_data = AccountData(db)
        self.receipts = Receipts(db)
        self.presence = Presence(db)
        self.to_device = ToDevice(db)
        self.filters = Filters(db)
        self.registration_tokens = RegistrationTokens(db)
        self.server_keys = ServerKeys(db)
        self.user_directory = UserDirectory(db)
        self.sync_reads = SyncReads(db, tail)
        self.directory_entries = DirectoryEntries(db)
        self.reports = Reports(db)
        self.erased_users = ErasedUsers(db)
        self.room_positions = RoomPositions(db, tail)
        self.e2e_keys = E2eKeys(db)
        self.cross_signing = CrossSigning(db)
        self.key_backups = KeyBackups(db)
        self.federation_outbox = FederationOutbox(db)
        self.federation_destinations = FederationDestinations(db)
        self.federation_inbound_txns = InboundTransactions(db)
        self.push_rules = PushRules(db)
        self.notifications = Notifications(db)
        self.pushers = Pushers(db)
        self.push_progress = PushProgress(db)
        self.media = Media(db)
        # federation queries (helper fedquery)
        self.remote_device_lists = RemoteDeviceLists(db)
        self.openid_tokens = OpenIdTokens(db)
        self.login_tokens = LoginTokens(db)
        self.delayed_events = DelayedEvents(db)  # MSC4140 (helper rtcsig)
        self.remote_memberships = RemoteMemberships(db)

    @classmethod
    def from_config(cls, database_config: Mapping[str, Any], reactor: Any, *,
                    migrate_on_start: bool = True) -> "GlobalStore":
        """Build from Synapse's ``database`` config section (see :class:`Database`)."""
        return cls(Database.from_config(database_config, reactor,
                                        migrate_on_start=migrate_on_start))

    # -- RoomStreamWriter -------------------------------------------------------------
    async def announce(self, announcements: Sequence[Announcement]) -> list[int]:
        """See :meth:`RoomStreamWriter.announce`."""
        return await self.streams.announce(announcements)

    async def seed_memberships(self, room_id: str,
                               members: Iterable[tuple[str, str, str]]) -> int:
        """See :meth:`Streams.seed_memberships`."""
        return await self.streams.seed_memberships(room_id, members)

    async def register_room(self, room_id: str, room_version: str, creator: str,
                            is_public: bool = False) -> None:
        """See :meth:`RoomStreamWriter.register_room`."""
        await self.rooms.register_room(room_id, room_version, creator, is_public)

    def room_hibernated(self, room_id: str) -> None:
        """See :meth:`RoomStreamWriter.room_hibernated`: its stream tail goes, and
        its last membership change position (``Streams.member_changes``)."""
        self.streams.tail.forget(room_id)
        self.streams.forget_member_changes(room_id, self._positions.get(positions.ROOM, 0))

    # -- stream positions -------------------------------------------------------------
    async def current_position(self, stream_name: str) -> int:
        """The highest committed position of one of :data:`STREAMS`."""
        if stream_name not in STREAMS:
            raise positions.UnknownStream(stream_name)
        return await self.db.run(positions.read_position, stream_name)

    async def current_positions(self) -> dict[str, int]:
        """Every stream's position, read together (for a sync token).

        Read from the database once, then kept in memory: every committed write of a
        position reaches ``_advanced`` (``Database.add_advance_listener``), so /sync
        needs no round trip for its token. A server sharing its PostgreSQL with other
        processes will need their advances too (over Redis, DESIGN.md §8).
        """
        if not self._positions_loaded:
            read = await self.db.run(positions.read_all_positions)
            self._advanced(read)  # advances that landed while we read may be newer
            self._positions_loaded = True
        return dict(self._positions)

    def _advanced(self, advanced: dict[str, int]) -> None:
        for stream, pos in advanced.items():
            if stream not in self._positions or pos > self._positions[stream]:
                self._positions[stream] = pos
