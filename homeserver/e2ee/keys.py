"""The key management API (spec: Client-Server API, "End-to-End Encryption", "Key
management API"): ``/keys/upload``, ``/keys/query``, ``/keys/claim``,
``/keys/changes``.

Users of other servers are asked over federation through the ``remote`` collaborator
(:class:`federation.remote_keys.RemoteKeys`, helper fedquery) within the request's
``timeout``; a server that cannot answer ends up in ``failures`` under its name (the
spec's shape), and everyone else is answered. Without ``remote`` (no federation) every
remote server is such a failure.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

from homeserver.crypto.signing import ED25519
from homeserver.e2ee import signatures as sigs
from homeserver.e2ee.device_lists import DeviceListChanges
from homeserver.errors import BadJson, InvalidParam, MatrixError
from homeserver.http.validate import optional, require
from homeserver.ids import InvalidId, UserID
from homeserver.sync.tokens import FIELDS, StreamToken

#: the ``failures`` entry for every remote server when there is no federation client
UNREACHABLE = {"status": 503, "message": "Federation is not available on this server"}

InvalidSignature = type("InvalidSignature", (MatrixError,),
                        {"errcode": "M_INVALID_SIGNATURE", "status": 400})


def _user_domain(user_id: Any) -> str:
    if not isinstance(user_id, str):
        raise BadJson("user IDs must be strings")
    try:
        return UserID.parse(user_id).domain
    except InvalidId:
        raise InvalidParam(f"Invalid user ID {user_id!r}") from None


def _string_map(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadJson(f"{name} must be an object")
    return value


class RemoteKeys(Protocol):
    """Keys of other servers' users (``(answers, failures)``, per server asked)."""
    async def query(self, by_server: Mapping[str, Mapping[str, list[str]]],
                    timeout_ms: int | None) -> tuple[dict[str, Any], dict[str, Any]]: ...

    async def claim(self, by_server: Mapping[str, Mapping[str, Mapping[str, str]]],
                    timeout_ms: int | None) -> tuple[dict[str, Any], dict[str, Any]]: ...


def _timeout(body: Mapping[str, Any]) -> int | None:
    timeout = optional(body, "timeout", int)
    if timeout is not None and timeout < 0:
        raise InvalidParam("timeout must not be negative")
    return timeout


class KeyService:
    def __init__(self, *, store: Any, server_name: str,
                 device_lists_changed: Callable[[str], Awaitable[None]],
                 remote: RemoteKeys | None = None) -> None:
        """``device_lists_changed(user_id)`` wakes whoever must hear of it."""
        self._remote = remote
        self._store = store
        self._server_name = server_name
        self._device_lists_changed = device_lists_changed
        self._changes = DeviceListChanges(store)

    # -- upload -----------------------------------------------------------------------
    async def upload(self, user_id: str, device_id: str | None,
                     body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /keys/upload``."""
        if device_id is None:
            raise InvalidParam("To upload keys, the access token must belong to a device")
        device_keys = optional(body, "device_keys", dict)
        if device_keys is not None:
            self._check_device_keys(device_keys, user_id, device_id)
        one_time_keys = optional(body, "one_time_keys", dict, {})
        fallback_keys = optional(body, "fallback_keys", dict)
        if fallback_keys is None:  # the unstable name clients used before v1.2
            fallback_keys = optional(body, "org.matrix.msc2732.fallback_keys", dict, {})
        for name, keys in (("one_time_keys", one_time_keys),
                           ("fallback_keys", fallback_keys)):
            for key in keys.values():
                if not isinstance(key, (dict, str)):
                    raise BadJson(f"{name} values must be objects or strings")
        counts, changed = await self._store.e2e_keys.upload(
            user_id, device_id, device_keys, one_time_keys, fallback_keys)
        if changed:
            await self._device_lists_changed(user_id)
        return {"one_time_key_counts": counts.one_time_keys}

    @staticmethod
    def _check_device_keys(keys: Mapping[str, Any], user_id: str, device_id: str) -> None:
        if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
            raise InvalidParam("device_keys must be for the user and device of the "
                               "access token")
        algorithms = require(keys, "algorithms", list)
        if not all(isinstance(a, str) for a in algorithms):
            raise BadJson("device_keys.algorithms must be a list of strings")
        key_map = require(keys, "keys", dict)
        if not all(isinstance(v, str) for v in key_map.values()):
            raise BadJson("device_keys.keys values must be strings")
        require(keys, "signatures", dict)
        optional(keys, "unsigned", dict)
        if not sigs.self_signed_device(keys):
            raise InvalidSignature("device_keys are not signed by the device's "
                                   f"{ED25519}:{device_id} key")

    # -- query ------------------------------------------------------------------------
    async def query(self, requester: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /keys/query``: device and cross-signing keys with the signatures
        the requester may see (the target's own, and the requester's)."""
        wanted = _string_map(require(body, "device_keys", dict), "device_keys")
        timeout = _timeout(body)
        local: dict[str, list[str] | None] = {}
        remote: dict[str, dict[str, list[str]]] = {}
        failures: dict[str, Any] = {}
        for user_id, device_ids in wanted.items():
            domain = _user_domain(user_id)
            if not isinstance(device_ids, list) or not all(
                    isinstance(d, str) for d in device_ids):
                raise BadJson("device_keys values must be lists of device IDs")
            if domain != self._server_name:
                remote.setdefault(domain, {})[user_id] = device_ids
                continue
            local[user_id] = device_ids or None
        devices = await self._store.e2e_keys.get_device_keys(local)
        cross = await self._store.cross_signing.get_keys(local)
        targets = [(u, d) for u, ds in devices.items() for d in ds]
        for user_id, keys in cross.items():
            for key in keys.values():
                ident = sigs.cross_signing_key_id(key)
                if ident is not None:
                    targets.append((user_id, ident[1]))
        extra = await self._store.cross_signing.signatures_of(targets)

        def with_signatures(user_id: str, key_id: str, obj: Mapping[str, Any]) -> dict:
            visible = [(s.signer_user_id, s.signer_key_id, s.signature)
                       for s in extra.get((user_id, key_id), ())
                       if s.signer_user_id in (user_id, requester)]
            return sigs.merge_signatures(obj, visible)

        out: dict[str, Any] = {
            "device_keys": {u: {d: with_signatures(u, d, k)
                                for d, k in devices.get(u, {}).items()} for u in local},
            "failures": failures,
            "master_keys": {}, "self_signing_keys": {}, "user_signing_keys": {},
        }
        for user_id, keys in cross.items():
            for key_type, key in keys.items():
                if key_type == "user_signing" and user_id != requester:
                    continue  # spec: only the user's own user-signing key is returned
                ident = sigs.cross_signing_key_id(key)
                signed = with_signatures(user_id, ident[1], key) if ident else dict(key)
                out[f"{key_type}_keys"][user_id] = signed
        if remote and self._remote is None:
            failures.update({server: dict(UNREACHABLE) for server in remote})
        elif remote:
            answers, remote_failures = await self._remote.query(remote, timeout)
            for kind, by_user in answers.items():
                out[kind].update(by_user)
            failures.update(remote_failures)
        return out

    # -- claim ------------------------------------------------------------------------
    async def claim(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /keys/claim``: a one-time key per device, else its fallback key."""
        wanted = _string_map(require(body, "one_time_keys", dict), "one_time_keys")
        timeout = _timeout(body)
        local: list[tuple[str, str, str]] = []
        remote: dict[str, dict[str, dict[str, str]]] = {}
        failures: dict[str, Any] = {}
        for user_id, by_device in wanted.items():
            domain = _user_domain(user_id)
            if not isinstance(by_device, dict) or not all(
                    isinstance(a, str) for a in by_device.values()):
                raise BadJson("one_time_keys must map device IDs to algorithms")
            if domain != self._server_name:
                remote.setdefault(domain, {})[user_id] = by_device
                continue
            local += [(user_id, d, a) for d, a in sorted(by_device.items())]
        claimed = await self._store.e2e_keys.claim(local)
        if remote and self._remote is None:
            failures.update({server: dict(UNREACHABLE) for server in remote})
        elif remote:
            remote_claimed, remote_failures = await self._remote.claim(remote, timeout)
            claimed.update(remote_claimed)
            failures.update(remote_failures)
        return {"one_time_keys": claimed, "failures": failures}

    # -- changes ----------------------------------------------------------------------
    async def changes(self, user_id: str, from_token: str | None,
                      to_token: str | None) -> dict[str, list[str]]:
        """``GET /keys/changes``: ``changed``/``left`` between two sync tokens."""
        if from_token is None:
            raise MatrixError("Missing from parameter", errcode="M_MISSING_PARAM")
        since = StreamToken.parse(from_token)
        current = StreamToken.from_positions(await self._store.current_positions())
        upto = current if to_token is None else StreamToken.parse(to_token)
        # a ``to`` ahead of what has been committed is read up to now
        upto = StreamToken(*(min(getattr(upto, f), getattr(current, f)) for f in FIELDS))
        shared: list[set[str]] = []

        async def sharing() -> set[str]:
            if not shared:
                shared.append(await self._store.streams.users_sharing_a_room_with(
                    user_id) | {user_id})
            return shared[0]

        return (await self._changes.between(user_id, since, upto, sharing)).to_json()

    # -- device deletion --------------------------------------------------------------
    async def account_deactivated(self, user_id: str) -> None:
        """The Deactivator's hook: every device key left, the cross-signing keys and
        the key backups go (as Synapse, which keeps cross-signing keys though), and
        room mates' syncs list the user's device list as changed."""
        await self._store.e2e_keys.delete_user(user_id)
        await self._store.cross_signing.delete_user(user_id)
        await self._store.key_backups.delete_user(user_id)
        await self._device_lists_changed(user_id)

    async def devices_deleted(self, user_id: str, device_ids: Iterable[str]) -> None:
        """DeviceManager's deletion hook: the devices' keys go (DeviceManager then
        wakes the room mates' syncs, for every deletion)."""
        await self._store.e2e_keys.delete_devices(user_id, device_ids)


__all__ = ["KeyService", "InvalidSignature"]
