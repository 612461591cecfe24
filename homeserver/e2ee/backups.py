"""Server-side key backups (spec: Client-Server API, "Server-side key backups";
key_backup.yaml). The server keeps what the client encrypted and never reads it.

Versions are numbered per user from 1 and sent as strings; anything that is not one
of the user's live versions is 404 M_NOT_FOUND. Keys may be written only to the
current (newest) version: another live version is 403 M_WRONG_ROOM_KEYS_VERSION with
``current_version``. A key replaces the stored one only if it is better by the
spec's rule (``RoomKey.better_than``).
"""

from __future__ import annotations

from typing import Any, Mapping

from homeserver.errors import BadJson, InvalidParam, MatrixError, NotFound
from homeserver.http.validate import optional, require
from homeserver.store.key_backups import BackupVersion, NoBackup, RoomKey, WrongVersion

_MAX_VERSION = 2 ** 53 - 1


def parse_version(value: str | None) -> int | None:
    """A version from the path or query (None if absent); unknown shapes are 404."""
    if value is None:
        return None
    if not value.isdigit() or not 0 < int(value) <= _MAX_VERSION:
        raise NotFound(f"Unknown backup version {value!r}")
    return int(value)


def _version_json(v: BackupVersion) -> dict[str, Any]:
    return {"version": str(v.version), "algorithm": v.algorithm, "auth_data": v.auth_data,
            "etag": str(v.etag), "count": v.count}


def _room_key(value: Any) -> RoomKey:
    if not isinstance(value, dict):
        raise BadJson("a backed-up key must be an object")
    first = require(value, "first_message_index", int)
    forwarded = require(value, "forwarded_count", int)
    verified = require(value, "is_verified", bool)
    data = require(value, "session_data", dict)
    if first < 0 or forwarded < 0:
        raise BadJson("first_message_index and forwarded_count must not be negative")
    return RoomKey(first, forwarded, verified, data)


def _sessions(value: Any) -> dict[str, RoomKey]:
    if not isinstance(value, dict):
        raise BadJson("a room's backup must be an object")
    sessions = require(value, "sessions", dict)
    return {s: _room_key(k) for s, k in sessions.items()}


class KeyBackupService:
    def __init__(self, *, store: Any) -> None:
        self._backups = store.key_backups

    # -- versions ---------------------------------------------------------------------
    async def create_version(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        algorithm = require(body, "algorithm", str)
        auth_data = require(body, "auth_data", dict)
        version = await self._backups.create_version(user_id, algorithm, auth_data)
        return {"version": str(version)}

    async def get_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        info = await self._backups.get_version(user_id, parse_version(version))
        if info is None:
            raise NotFound("No backup found" if version is None
                           else f"Unknown backup version {version}")
        return _version_json(info)

    async def update_version(self, user_id: str, version: str,
                             body: Mapping[str, Any]) -> dict[str, Any]:
        number = parse_version(version)
        algorithm = require(body, "algorithm", str)
        auth_data = require(body, "auth_data", dict)
        body_version = optional(body, "version", str)
        if body_version is not None and body_version != version:
            raise InvalidParam("version in body does not match the path")

        def check(current: BackupVersion) -> None:
            if current.algorithm != algorithm:
                raise InvalidParam("Algorithm does not match")

        try:
            await self._backups.update_version(user_id, number, check, auth_data)
        except NoBackup:
            raise NotFound(f"Unknown backup version {version}") from None
        return {}

    async def delete_version(self, user_id: str, version: str | None) -> dict[str, Any]:
        try:
            await self._backups.delete_version(user_id, parse_version(version))
        except NoBackup:
            raise NotFound("No backup found" if version is None
                           else f"Unknown backup version {version}") from None
        return {}

    # -- keys -------------------------------------------------------------------------
    async def put_keys(self, user_id: str, version: str | None, body: Mapping[str, Any],
                       room_id: str | None = None,
                       session_id: str | None = None) -> dict[str, Any]:
        """PUT at any of the three levels; ``body`` is what that level holds."""
        number = self._required_version(version)
        if session_id is not None:
            keys = {room_id: {session_id: _room_key(body)}}
        elif room_id is not None:
            keys = {room_id: _sessions(body)}
        else:
            rooms = require(body, "rooms", dict)
            keys = {r: _sessions(v) for r, v in rooms.items()}
        try:
            info = await self._backups.put_keys(user_id, number, keys)
        except NoBackup:
            raise NotFound(f"Unknown backup version {version}") from None
        except WrongVersion as e:
            raise MatrixError("Wrong backup version", errcode="M_WRONG_ROOM_KEYS_VERSION",
                              status=403, current_version=str(e.current)) from None
        return {"etag": str(info.etag), "count": info.count}

    async def get_keys(self, user_id: str, version: str | None, room_id: str | None = None,
                       session_id: str | None = None) -> dict[str, Any]:
        number = self._required_version(version)
        try:
            keys = await self._backups.get_keys(user_id, number, room_id, session_id)
        except NoBackup:
            raise NotFound(f"Unknown backup version {version}") from None
        if session_id is not None:
            key = keys.get(room_id, {}).get(session_id)
            if key is None:
                raise NotFound("No room_keys found")
            return key.to_json()
        rooms = {r: {"sessions": {s: k.to_json() for s, k in sessions.items()}}
                 for r, sessions in keys.items()}
        if room_id is not None:
            return rooms.get(room_id, {"sessions": {}})
        return {"rooms": rooms}

    async def delete_keys(self, user_id: str, version: str | None,
                          room_id: str | None = None,
                          session_id: str | None = None) -> dict[str, Any]:
        number = self._required_version(version)
        try:
            info = await self._backups.delete_keys(user_id, number, room_id, session_id)
        except NoBackup:
            raise NotFound(f"Unknown backup version {version}") from None
        return {"etag": str(info.etag), "count": info.count}

    @staticmethod
    def _required_version(version: str | None) -> int:
        if version is None or version == "":
            raise MatrixError("Missing version parameter", errcode="M_MISSING_PARAM")
        return parse_version(version)
