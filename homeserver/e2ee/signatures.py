"""Pure checks of the signed JSON objects of end-to-end encryption (no Twisted).

Spec: Client-Server API, "Device keys", "Cross-signing"; appendices "Signing JSON".
A device's identity keys are signed by the device's own ed25519 key
(``ed25519:<device_id>``); a cross-signing key names itself by its public key
(``ed25519:<unpadded base64>``) and is signed by the master key (self-signing,
user-signing) or by devices (master).
"""

from __future__ import annotations

from typing import Any, Mapping

from homeserver.crypto.signing import ED25519, decode_base64, verify_json_signature


def without_signatures(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What a signature covers: the object minus ``signatures`` and ``unsigned``."""
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def public_key(obj: Mapping[str, Any], key_id: str) -> bytes | None:
    """The 32-byte ed25519 key ``obj["keys"][key_id]``, or None if absent/malformed."""
    keys = obj.get("keys")
    if not key_id.startswith(ED25519 + ":") or not isinstance(keys, Mapping):
        return None
    value = keys.get(key_id)
    if not isinstance(value, str):
        return None
    try:
        raw = decode_base64(value)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def cross_signing_key_id(key: Mapping[str, Any]) -> tuple[str, str] | None:
    """``("ed25519:<pub>", "<pub>")`` of a cross-signing key, or None unless it holds
    exactly one ed25519 key named by itself (spec: "CrossSigningKey")."""
    keys = key.get("keys")
    if not isinstance(keys, Mapping) or len(keys) != 1:
        return None
    ((key_id, value),) = keys.items()
    if not isinstance(value, str) or key_id != f"{ED25519}:{value}":
        return None
    return (key_id, value) if public_key(key, key_id) is not None else None


def signed_by(obj: Mapping[str, Any], user_id: str, key_id: str,
              key_bytes: bytes | None) -> bool:
    """True if ``obj`` carries a valid signature by ``user_id``'s ``key_id``."""
    if key_bytes is None:
        return False
    return verify_json_signature(obj, user_id, key_id, key_bytes)


def self_signed_device(device_keys: Mapping[str, Any]) -> bool:
    """True if device keys are signed by the device's own ed25519 key."""
    user_id, device_id = device_keys.get("user_id"), device_keys.get("device_id")
    if not isinstance(user_id, str) or not isinstance(device_id, str):
        return False
    key_id = f"{ED25519}:{device_id}"
    return signed_by(device_keys, user_id, key_id, public_key(device_keys, key_id))


def merge_signatures(obj: Mapping[str, Any],
                     extra: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A copy of ``obj`` with ``(signer user, key ID, signature)`` entries added."""
    out = dict(obj)
    existing = obj.get("signatures")
    signatures = {u: dict(s) for u, s in existing.items() if isinstance(s, Mapping)} \
        if isinstance(existing, Mapping) else {}
    for user_id, key_id, signature in extra:
        signatures.setdefault(user_id, {})[key_id] = signature
    if signatures:
        out["signatures"] = signatures
    return out
