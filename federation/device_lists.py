"""Tracking remote users' device lists (spec: Server-Server API, "Device Management").

A remote server tells us of its users' device changes with ``m.device_list_update``
EDUs, one device per EDU, each naming the ``stream_id`` it brings the list to and the
``prev_id`` s it follows. :meth:`RemoteDeviceLists.on_device_list_update` applies one
if our cached copy is at one of its ``prev_id`` s; otherwise we missed an update (or
never had the list) and resync the whole list with ``GET /user/devices/{userId}`` (the
spec's "device list resync"). ``m.signing_key_update`` replaces the cached master and
self-signing keys the same way.

Every change reaches local users' ``/sync`` ``device_lists.changed``: the store puts it
on the device-lists stream (:mod:`homeserver.store.remote_devices`) and the waker
(:func:`homeserver.e2ee.device_lists.device_list_waker`) wakes the long-polls of the
users sharing a room with the remote user.

Updates for remote users no local user shares a room with are dropped: nobody here
needs their devices, and caching them would let any server fill our database.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import quote

from twisted.internet import defer
from twisted.logger import Logger

from federation.client import RemoteError
from homeserver.ids import InvalidId, UserID
from homeserver.store.remote_devices import RemoteDeviceList

log = Logger()

DEVICE_LIST_UPDATE = "m.device_list_update"
SIGNING_KEY_UPDATE = "m.signing_key_update"


def _domain(user_id: Any) -> str | None:
    try:
        return UserID.parse(user_id).domain
    except InvalidId:
        return None


def parse_user_devices(body: Any, user_id: str) -> RemoteDeviceList:
    """A ``/user/devices`` answer as a cache entry; ValueError if it is malformed.
    Device keys not for this user and device are dropped (a server may only speak for
    its own users' devices, and they sign their keys as themselves)."""
    if not isinstance(body, dict) or body.get("user_id") != user_id:
        raise ValueError("not a device list of the user asked for")
    stream_id = body.get("stream_id")
    devices = body.get("devices")
    if not isinstance(stream_id, int) or not isinstance(devices, list):
        raise ValueError("stream_id or devices missing")
    out: dict[str, dict[str, Any]] = {}
    for device in devices:
        if not isinstance(device, dict) or not isinstance(device.get("device_id"), str):
            continue
        device_id = device["device_id"]
        out[device_id] = _device_entry(user_id, device_id, device.get("keys"),
                                       device.get("device_display_name"))
    cross = {k: body[k] for k in ("master_key", "self_signing_key")
             if isinstance(body.get(k), dict) and body[k].get("user_id") == user_id}
    return RemoteDeviceList(user_id, stream_id, out, cross.get("master_key"),
                            cross.get("self_signing_key"))


def _device_entry(user_id: str, device_id: str, keys: Any, name: Any) -> dict[str, Any]:
    ok = isinstance(keys, dict) and keys.get("user_id") == user_id \
        and keys.get("device_id") == device_id
    return {"keys": keys if ok else None,
            "device_display_name": name if isinstance(name, str) else None}


class RemoteDeviceLists:
    def __init__(self, *, server_name: str, store: Any, client: Any,
                 device_lists_changed: Callable[[str], Awaitable[None]]) -> None:
        self._server_name = server_name
        self._cache = store.remote_device_lists
        self._streams = store.streams
        self._client = client
        self._changed = device_lists_changed
        self._resyncs: dict[str, defer.Deferred] = {}

    # -- EDU handlers: ``(origin, content) -> None``, for the inbound /send lane --------
    async def on_device_list_update(self, origin: str, content: Mapping[str, Any]) -> None:
        """``m.device_list_update``: apply it, or resync if one was missed."""
        user_id = content.get("user_id")
        if _domain(user_id) != origin:
            log.info("dropped a device list update from {origin} for {user}",
                     origin=origin, user=user_id)
            return
        device_id, stream_id = content.get("device_id"), content.get("stream_id")
        prev_ids = content.get("prev_id", [])
        if not isinstance(device_id, str) or not isinstance(stream_id, int) or \
                not isinstance(prev_ids, list):
            log.info("dropped a malformed device list update from {origin}", origin=origin)
            return
        if not await self.tracked(user_id):
            return
        device = None if content.get("deleted") is True else _device_entry(
            user_id, device_id, content.get("keys"), content.get("device_display_name"))
        if await self._cache.apply_update(user_id, prev_ids, stream_id, device_id, device):
            await self._changed(user_id)
            return
        await self.resync(user_id)

    async def on_signing_key_update(self, origin: str, content: Mapping[str, Any]) -> None:
        """``m.signing_key_update``: the user's new master / self-signing keys."""
        user_id = content.get("user_id")
        if _domain(user_id) != origin or not await self.tracked(user_id):
            return
        keys = {k: v for k, v in content.items()
                if k in ("master_key", "self_signing_key") and isinstance(v, dict)
                and v.get("user_id") == user_id}
        if await self._cache.set_cross_signing(user_id, keys):
            await self._changed(user_id)
        else:
            await self.resync(user_id)

    # -- reading ------------------------------------------------------------------------
    async def get(self, user_id: str) -> RemoteDeviceList | None:
        """The user's device list: cached, else fetched now (None if unreachable)."""
        cached = await self._cache.get(user_id)
        return cached if cached is not None else await self.resync(user_id)

    async def cached(self, user_id: str) -> RemoteDeviceList | None:
        return await self._cache.get(user_id)

    async def resync(self, user_id: str,
                     timeout: float | None = None) -> RemoteDeviceList | None:
        """Fetch the whole list (one request per user at a time); None on failure."""
        running = self._resyncs.get(user_id)
        if running is None:
            running = defer.ensureDeferred(self._resync(user_id, timeout))
            self._resyncs[user_id] = running
            running.addBoth(self._done, user_id)
        # each waiter gets its own Deferred: the shared one's result stays intact
        waiter: defer.Deferred = defer.Deferred()
        running.addBoth(lambda r: (waiter.callback(r), r)[1])
        return await waiter

    def _done(self, result: Any, user_id: str) -> Any:
        self._resyncs.pop(user_id, None)
        return result

    async def _resync(self, user_id: str, timeout: float | None) -> RemoteDeviceList | None:
        domain = _domain(user_id)
        if domain is None:
            return None
        try:
            body = await self._client.get_json(
                domain, "/_matrix/federation/v1/user/devices/" + quote(user_id, safe=""),
                timeout=timeout)
            entry = parse_user_devices(body, user_id)
        except (RemoteError, ValueError) as e:
            log.info("device list resync of {user} failed: {error}", user=user_id, error=e)
            return None
        await self._cache.replace(entry)
        await self._changed(user_id)
        return entry

    async def tracked(self, user_id: str) -> bool:
        """Whether we keep ``user_id``'s device list: a local user shares a room with
        them (or we cache them already)."""
        if await self._cache.get(user_id) is not None:
            return True
        return any(_domain(u) == self._server_name for u in
                   await self._streams.users_sharing_a_room_with(user_id))


def keys_from_lists(lists: Mapping[str, RemoteDeviceList],
                    wanted: Mapping[str, list[str]]) -> dict[str, Any]:
    """A ``/keys/query`` answer (``device_keys``, ``master_keys``,
    ``self_signing_keys``) from cached device lists."""
    out: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
    for user_id, entry in lists.items():
        devices = wanted.get(user_id) or list(entry.devices)
        out["device_keys"][user_id] = {
            d: dict(entry.devices[d]["keys"]) for d in devices
            if d in entry.devices and entry.devices[d].get("keys")}
        if entry.master_key:
            out["master_keys"][user_id] = dict(entry.master_key)
        if entry.self_signing_key:
            out["self_signing_keys"][user_id] = dict(entry.self_signing_key)
    return out
