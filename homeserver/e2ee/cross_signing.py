"""Cross-signing (spec: Client-Server API, "Cross-signing"):
``POST /keys/device_signing/upload`` and ``POST /keys/signatures/upload``.

Uploading cross-signing keys needs User-Interactive Authentication, except (spec
v1.11, MSC3967, as Synapse) when the user has no master key yet, or when every key
sent equals the one stored (a retry). Every key must be the user's, name its usage,
and hold exactly one ed25519 key; the self-signing and user-signing keys must be
signed by the master key (the new one if sent together).

Uploaded signatures are checked one by one and a bad one lands in ``failures`` with
its error; the good ones are stored:

- a device of the user, signed by the user's self-signing key;
- the user's master key, signed by one of the user's devices;
- another user's master key, signed by the user's user-signing key (shown to the
  signer only, see :meth:`homeserver.e2ee.keys.KeyService.query`).

The signed object must equal the stored one apart from ``signatures`` and
``unsigned``: the signature is stored, not the object.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping

from homeserver.client_api.uia import PASSWORD_FLOWS
from homeserver.crypto.signing import decode_base64
from homeserver.e2ee import signatures as sigs
from homeserver.e2ee.keys import UNREACHABLE, InvalidSignature
from homeserver.errors import BadJson, InvalidParam, MatrixError, MissingParam, NotFound
from homeserver.ids import InvalidId, UserID
from homeserver.store.cross_signing import KEY_TYPES, Signature
from homeserver.store.sql import canonical_json_text


def _failure(e: MatrixError) -> dict[str, Any]:
    return {"status": e.status, "errcode": e.errcode, "message": e.message}


def _same(a: Any, b: Any) -> bool:
    return canonical_json_text(a) == canonical_json_text(b)


def _signatures_by(obj: Mapping[str, Any], user_id: str) -> dict[str, Any]:
    signatures = obj.get("signatures")
    by_user = signatures.get(user_id) if isinstance(signatures, dict) else None
    return by_user if isinstance(by_user, dict) else {}


def _signature(obj: Mapping[str, Any], user_id: str, key_id: str) -> str:
    value = _signatures_by(obj, user_id).get(key_id)
    if not isinstance(value, str):
        raise InvalidSignature(f"No signature by {user_id} {key_id}")
    return value


def _check_same_key(signed: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    if not _same(sigs.without_signatures(signed), sigs.without_signatures(stored)):
        raise InvalidParam("Key does not match")


class CrossSigningService:
    def __init__(self, *, store: Any, uia: Any, server_name: str,
                 device_lists_changed: Callable[[str], Awaitable[None]]) -> None:
        self._store = store
        self._uia = uia
        self._server_name = server_name
        self._device_lists_changed = device_lists_changed

    # -- POST /keys/device_signing/upload ---------------------------------------------
    async def upload_keys(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        keys: dict[str, dict[str, Any]] = {}
        for key_type in KEY_TYPES:
            key = body.get(f"{key_type}_key")
            if key is None:
                continue
            if not isinstance(key, dict):
                raise BadJson(f"{key_type}_key must be an object")
            if key.get("user_id") != user_id:
                raise InvalidParam(f"{key_type}_key is not for {user_id}")
            usage = key.get("usage")
            if not isinstance(usage, list) or key_type not in usage:
                raise InvalidParam(f"{key_type}_key must have usage {key_type!r}")
            if sigs.cross_signing_key_id(key) is None:
                raise InvalidParam(f"{key_type}_key must hold one ed25519 key")
            signatures = key.get("signatures", {})
            if not isinstance(signatures, dict) or not all(
                    isinstance(v, dict) for v in signatures.values()):
                raise BadJson(f"{key_type}_key.signatures must map users to objects")
            keys[key_type] = key
        stored = (await self._store.cross_signing.get_keys([user_id])).get(user_id, {})
        if "master" in stored and any(not _same(k, stored.get(t)) for t, k in keys.items()):
            await self._uia.authenticate(body, operation="device_signing_upload",
                                         flows=PASSWORD_FLOWS, user_id=user_id)
        if not keys or all(_same(k, stored.get(t)) for t, k in keys.items()):
            return {}  # nothing new (e.g. a retry after a lost response)
        master = keys.get("master") or stored.get("master")
        if master is None:
            raise MissingParam("No master key available")
        master_id, master_pub = sigs.cross_signing_key_id(master)
        for key_type in ("self_signing", "user_signing"):
            key = keys.get(key_type)
            if key is not None and not sigs.signed_by(key, user_id, master_id,
                                                      decode_base64(master_pub)):
                raise InvalidSignature(f"{key_type}_key is not signed by the master key")
        await self._store.cross_signing.set_keys(user_id, keys)
        await self._device_lists_changed(user_id)
        return {}

    # -- POST /keys/signatures/upload -------------------------------------------------
    async def upload_signatures(self, user_id: str,
                                body: Mapping[str, Any]) -> dict[str, Any]:
        for target, objects in body.items():
            if not isinstance(objects, dict) or not all(
                    isinstance(o, dict) for o in objects.values()):
                raise BadJson("signatures must map user IDs to key IDs to objects")
        failures: dict[str, dict[str, Any]] = {}
        found: list[Signature] = []
        changed: dict[str, list[str | None]] = {}
        if user_id in body:
            await self._own(user_id, body[user_id], found, changed, failures)
        others = {u: o for u, o in body.items() if u != user_id}
        if others:
            await self._others(user_id, others, found, changed, failures)
        if found:
            await self._store.cross_signing.add_signatures(found, changed)
            for target in changed:
                await self._device_lists_changed(target)
        return {"failures": failures}

    async def _own(self, user_id: str, objects: Mapping[str, dict], found: list,
                   changed: dict, failures: dict) -> None:
        cross = (await self._store.cross_signing.get_keys([user_id])).get(user_id, {})
        devices = (await self._store.e2e_keys.get_device_keys({user_id: None})).get(
            user_id, {})
        master, self_signing = cross.get("master"), cross.get("self_signing")
        master_pub = sigs.cross_signing_key_id(master)[1] if master else None
        for key_id, obj in objects.items():
            try:
                if key_id == master_pub:
                    found += self._master_by_devices(user_id, obj, master, devices)
                    changed.setdefault(user_id, []).append(None)
                    continue
                if self_signing is None:
                    raise NotFound("No self-signing key")
                ss_id, ss_pub = sigs.cross_signing_key_id(self_signing)
                signature = _signature(obj, user_id, ss_id)
                if key_id not in devices:
                    raise NotFound("Unknown device")
                _check_same_key(obj, devices[key_id])
                if not sigs.signed_by(obj, user_id, ss_id, decode_base64(ss_pub)):
                    raise InvalidSignature("Invalid signature")
                found.append(Signature(user_id, ss_id, user_id, key_id, signature))
                changed.setdefault(user_id, []).append(key_id)
            except MatrixError as e:
                failures.setdefault(user_id, {})[key_id] = _failure(e)

    @staticmethod
    def _master_by_devices(user_id: str, obj: Mapping[str, Any], master: Mapping,
                           devices: Mapping[str, Mapping]) -> list[Signature]:
        master_id, _ = sigs.cross_signing_key_id(master)
        _check_same_key(obj, master)
        by_user = _signatures_by(obj, user_id)
        if not by_user:
            raise InvalidSignature("No signature")
        out = []
        known = _signatures_by(master, user_id)
        for key_id, signature in by_user.items():
            if key_id == master_id or known.get(key_id) == signature:
                continue  # the master key's own signature, or one stored with it
            device_id = key_id.partition(":")[2]
            device = devices.get(device_id)
            if device is None or not sigs.signed_by(
                    obj, user_id, key_id, sigs.public_key(device, key_id)):
                raise InvalidSignature(f"Invalid signature by {key_id}")
            out.append(Signature(user_id, key_id, user_id,
                                 master_id.partition(":")[2], signature))
        return out

    async def _others(self, user_id: str, others: Mapping[str, Mapping[str, dict]],
                      found: list, changed: dict, failures: dict) -> None:
        mine = (await self._store.cross_signing.get_keys([user_id])).get(user_id, {})
        user_signing = mine.get("user_signing")
        local = []
        for target in others:
            try:
                remote = UserID.parse(target).domain != self._server_name
            except InvalidId:
                raise InvalidParam(f"Invalid user ID {target!r}") from None
            if remote:
                failures[target] = {k: dict(UNREACHABLE) for k in others[target]}
            else:
                local.append(target)
        cross = await self._store.cross_signing.get_keys(local)
        for target in local:
            objects = others[target]
            try:
                if user_signing is None:
                    raise NotFound("No user-signing key")
                master = cross.get(target, {}).get("master")
                if master is None:
                    raise NotFound(f"No master key found for {target}")
            except MatrixError as e:
                failures[target] = {k: _failure(e) for k in objects}
                continue
            us_id, us_pub = sigs.cross_signing_key_id(user_signing)
            master_pub = sigs.cross_signing_key_id(master)[1]
            for key_id, obj in objects.items():
                try:
                    if key_id != master_pub:
                        raise NotFound("Unknown device")
                    signature = _signature(obj, user_id, us_id)
                    _check_same_key(obj, master)
                    if not sigs.signed_by(obj, user_id, us_id, decode_base64(us_pub)):
                        raise InvalidSignature("Invalid signature")
                    found.append(Signature(user_id, us_id, target, master_pub, signature))
                    changed.setdefault(target, []).append(None)
                except MatrixError as e:
                    failures.setdefault(target, {})[key_id] = _failure(e)
