"""Remote users' device lists, as their servers told us (table ``remote_device_lists``).

Spec: Server-Server API, "Device Management": a server tracks the device lists of the
remote users its users share rooms with, from ``GET /user/devices/{userId}`` (a full
copy with the ``stream_id`` it is current as of) and ``m.device_list_update`` EDUs
(one device at a time, chained by ``prev_id``). One row per remote user holds the
whole list as JSON: it is read and replaced whole, never joined against.

Every change also goes on the device-lists stream (``device_list_changes``, the one
local changes use) in the same transaction, so local users' ``/sync`` lists the remote
user in ``device_lists.changed``. Unlike local changes nothing goes to the federation
outbox: a remote user's changes are their own server's to announce.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from homeserver.store import positions
from homeserver.store.database import Database
from homeserver.store.devices import device_list_changes, last_device_update
from homeserver.store.sql import JsonText, metadata, upsert

remote_device_lists = sa.Table(
    "remote_device_lists", metadata,
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("stream_id", sa.BigInteger, nullable=False),
    #: device ID → {"keys": DeviceKeys | None, "device_display_name": str | None}
    sa.Column("devices", JsonText, nullable=False),
    sa.Column("master_key", JsonText, nullable=True),
    sa.Column("self_signing_key", JsonText, nullable=True),
)

_r = remote_device_lists.c


@dataclasses.dataclass(frozen=True)
class RemoteDeviceList:
    user_id: str
    stream_id: int
    devices: Mapping[str, Mapping[str, Any]]
    master_key: Mapping[str, Any] | None
    self_signing_key: Mapping[str, Any] | None


def _note_change(conn: Connection, user_id: str) -> int:
    positions.lock_stream(conn, positions.DEVICE_LISTS)
    pos = conn.execute(sa.insert(device_list_changes).values(user_id=user_id, device_id=None)
                       .returning(device_list_changes.c.pos)).scalar_one()
    positions.advance(conn, positions.DEVICE_LISTS, pos)
    return pos


class RemoteDeviceLists:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str) -> RemoteDeviceList | None:
        def txn(conn: Connection) -> RemoteDeviceList | None:
            row = conn.execute(sa.select(remote_device_lists)
                               .where(_r.user_id == user_id)).first()
            if row is None:
                return None
            return RemoteDeviceList(row.user_id, row.stream_id, row.devices,
                                    row.master_key, row.self_signing_key)

        return await self._db.run(txn)

    async def replace(self, entry: RemoteDeviceList) -> int:
        """Store a full copy (a resync); returns its device-lists stream position."""
        def txn(conn: Connection) -> int:
            upsert(conn, remote_device_lists, {
                "user_id": entry.user_id, "stream_id": entry.stream_id,
                "devices": dict(entry.devices), "master_key": entry.master_key,
                "self_signing_key": entry.self_signing_key}, key=["user_id"])
            return _note_change(conn, entry.user_id)

        return await self._db.run(txn)

    async def apply_update(self, user_id: str, prev_ids: list[int], stream_id: int,
                           device_id: str, device: Mapping[str, Any] | None) -> bool:
        """Apply one ``m.device_list_update`` if the cached copy is at one of
        ``prev_ids`` (or the update is already applied); False if the chain is broken
        (the caller resyncs). ``device`` None deletes the device."""
        def txn(conn: Connection) -> bool:
            row = conn.execute(sa.select(_r.stream_id, _r.devices)
                               .where(_r.user_id == user_id)).first()
            if row is None:
                return False
            if stream_id <= row.stream_id:
                return True  # a duplicate or an older update: nothing to do
            if row.stream_id not in prev_ids:
                return False
            devices = dict(row.devices)
            if device is None:
                devices.pop(device_id, None)
            else:
                devices[device_id] = dict(device)
            conn.execute(sa.update(remote_device_lists).where(_r.user_id == user_id)
                         .values(stream_id=stream_id, devices=devices))
            _note_change(conn, user_id)
            return True

        return await self._db.run(txn)

    async def set_cross_signing(self, user_id: str, keys: Mapping[str, Any]) -> bool:
        """Replace cached ``master_key``/``self_signing_key`` (``m.signing_key_update``);
        False if the user is not cached."""
        values = {k: dict(v) for k, v in keys.items()
                  if k in ("master_key", "self_signing_key") and isinstance(v, Mapping)}

        def txn(conn: Connection) -> bool:
            if not values:
                return False
            done = conn.execute(sa.update(remote_device_lists)
                                .where(_r.user_id == user_id).values(**values)).rowcount
            if done:
                _note_change(conn, user_id)
            return bool(done)

        return await self._db.run(txn)

    async def latest_position(self, user_id: str) -> int:
        """The device-lists stream position of a (local) user's last device change, 0
        if none: the ``stream_id`` our ``/user/devices`` answers carry, and so the
        ``prev_id`` our next ``m.device_list_update`` of the user names
        (``devices.mark_device_lists_changed``)."""
        return await self._db.run(lambda conn: last_device_update(conn, user_id))
