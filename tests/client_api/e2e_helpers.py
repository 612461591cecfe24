"""Signed key objects as clients make them (ed25519 via pynacl), for the E2EE tests."""

from __future__ import annotations

from typing import Any

import nacl.signing

from homeserver.crypto.signing import SigningKey, encode_base64, sign_json

V3 = "/_matrix/client/v3"


def new_key(version: str | None = None) -> SigningKey:
    """A fresh ed25519 key; ``version`` defaults to its own public key (cross-signing)."""
    nacl_key = nacl.signing.SigningKey.generate()
    return SigningKey(version or encode_base64(bytes(nacl_key.verify_key)), nacl_key)


def device_keys(user_id: str, device_id: str, key: SigningKey | None = None,
                ) -> tuple[dict[str, Any], SigningKey]:
    """Self-signed device keys (spec: "DeviceKeys") and the device's signing key."""
    key = key or new_key(device_id)
    obj = {"user_id": user_id, "device_id": device_id,
           "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
           "keys": {f"curve25519:{device_id}": encode_base64(b"c" * 32),
                    f"ed25519:{device_id}": key.verify_key_base64}}
    return sign_json(obj, user_id, key), key


def cross_signing_key(user_id: str, usage: str, signer: SigningKey | None = None,
                      ) -> tuple[dict[str, Any], SigningKey]:
    """A cross-signing key (spec: "CrossSigningKey"), signed by ``signer`` if given."""
    key = new_key()
    obj = {"user_id": user_id, "usage": [usage],
           "keys": {f"ed25519:{key.version}": key.version}}
    if signer is not None:
        obj = sign_json(obj, user_id, signer)
    return obj, key


def sign(obj: dict[str, Any], user_id: str, key: SigningKey) -> dict[str, Any]:
    return sign_json(obj, user_id, key)
