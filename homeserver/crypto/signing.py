"""Ed25519 signing keys, their file format, and signed JSON.

Spec: appendices "Signing JSON" / "Signing Details" / "Checking for a Signature", and
"Unpadded Base64". The key file format is Synapse's (``signing_key_path``): one key per
line, ``ed25519 <version> <unpadded base64 of the 32-byte seed>``, so an operator can
move a Synapse server's identity over unchanged.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import secrets
import string
import tempfile
from typing import Any, Mapping

import nacl.exceptions
import nacl.signing

from homeserver.crypto.canonical_json import CanonicalJsonError, encode_canonical_json

ED25519 = "ed25519"

# Synapse generates versions as "a_" + four letters; anything without whitespace reads.
_VERSION_ALPHABET = string.ascii_letters


# -- unpadded base64 (spec: appendices, "Unpadded Base64") --------------------------------

def encode_base64(data: bytes, *, urlsafe: bool = False) -> str:
    """Unpadded base64 of ``data``; the URL-safe alphabet (``-``/``_``) if asked."""
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.rstrip(b"=").decode("ascii")


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def decode_base64(data: str | bytes) -> bytes:
    """Decode base64 with or without padding, standard or URL-safe alphabet.

    The spec asks decoders to accept both padded and unpadded input. Anything else
    (whitespace, stray characters, an impossible length) raises ``ValueError``.
    """
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    raw = raw.rstrip(b"=").translate(_URLSAFE_TO_STANDARD)
    if len(raw) % 4 == 1:
        raise ValueError("invalid base64 length")
    try:
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=True)
    except binascii.Error as e:
        raise ValueError(f"invalid base64: {e}") from None


# -- keys --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SigningKey:
    """One of our server's ed25519 signing keys (spec: server-server "Server keys")."""

    version: str
    nacl_key: nacl.signing.SigningKey = dataclasses.field(repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.version or any(ch.isspace() for ch in self.version):
            raise ValueError(f"invalid signing key version {self.version!r}")

    @classmethod
    def from_seed(cls, version: str, seed: bytes) -> "SigningKey":
        if len(seed) != 32:
            raise ValueError("an ed25519 seed is 32 bytes")
        return cls(version, nacl.signing.SigningKey(seed))

    @property
    def alg(self) -> str:
        return ED25519

    @property
    def key_id(self) -> str:
        """The signing key identifier, e.g. ``ed25519:a_AbCd``."""
        return f"{ED25519}:{self.version}"

    @property
    def seed(self) -> bytes:
        return bytes(self.nacl_key)

    @property
    def verify_key_bytes(self) -> bytes:
        return bytes(self.nacl_key.verify_key)

    @property
    def verify_key_base64(self) -> str:
        """The public key as published in ``/_matrix/key/v2/server`` (unpadded)."""
        return encode_base64(self.verify_key_bytes)

    def sign(self, message: bytes) -> bytes:
        """The detached 64-byte ed25519 signature of ``message``."""
        return self.nacl_key.sign(message).signature


def generate_signing_key(version: str | None = None) -> SigningKey:
    """A fresh random key; the version defaults to Synapse's style, ``a_`` + 4 letters."""
    if version is None:
        version = "a_" + "".join(secrets.choice(_VERSION_ALPHABET) for _ in range(4))
    return SigningKey(version, nacl.signing.SigningKey.generate())


def parse_signing_keys(text: str) -> list[SigningKey]:
    """Parse the Synapse key file format; blank lines are skipped.

    Raises ``ValueError`` naming the line for a malformed entry or an algorithm other
    than ed25519 (the only one the spec defines).
    """
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"signing key line {number}: expected 'ed25519 <version> <seed>'")
        alg, version, seed_b64 = parts
        if alg != ED25519:
            raise ValueError(f"signing key line {number}: unsupported algorithm {alg!r}")
        try:
            keys.append(SigningKey.from_seed(version, decode_base64(seed_b64)))
        except ValueError as e:
            raise ValueError(f"signing key line {number}: {e}") from None
    return keys


def read_signing_keys(path: str | os.PathLike[str]) -> list[SigningKey]:
    """All keys in a Synapse-format signing key file, in file order."""
    with open(path, encoding="ascii") as f:
        return parse_signing_keys(f.read())


def format_signing_key(key: SigningKey) -> str:
    return f"{key.alg} {key.version} {encode_base64(key.seed)}\n"


def write_signing_key(path: str | os.PathLike[str], key: SigningKey) -> None:
    """Write ``key`` in Synapse's format, readable by the owner only.

    Written to a temporary file and renamed so that a crash never leaves a server with
    a truncated identity.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".signing_key.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:  # mkstemp makes it 0600
            f.write(format_signing_key(key))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# -- signed JSON (spec: appendices, "Signing Details") ------------------------------------

def _signable_bytes(obj: Mapping[str, Any], strict: bool) -> bytes:
    # signatures and unsigned are not covered, so intermediaries may add to them
    return encode_canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")},
        strict=strict)


def sign_json(obj: Mapping[str, Any], server_name: str, key: SigningKey, *,
              strict: bool = True) -> dict[str, Any]:
    """A copy of ``obj`` with our signature added under ``signatures[server_name]``.

    Existing signatures (ours under other key IDs, or other servers') are kept. The
    input is not modified. ``strict=False`` only for events of room versions 3-5.
    Raises :class:`CanonicalJsonError` if ``obj`` cannot be canonically encoded.
    """
    existing = obj.get("signatures") or {}
    if not isinstance(existing, Mapping) or not all(
            isinstance(sigs, Mapping) for sigs in existing.values()):
        raise ValueError("'signatures' must map server names to objects")
    signature = encode_base64(key.sign(_signable_bytes(obj, strict)))
    signed = dict(obj)
    signatures = {server: dict(sigs) for server, sigs in existing.items()}
    signatures.setdefault(server_name, {})[key.key_id] = signature
    signed["signatures"] = signatures
    return signed


def verify_signature_bytes(message: bytes, signature: bytes, verify_key_bytes: bytes) -> bool:
    """True if ``signature`` is a valid ed25519 signature of ``message``."""
    try:
        nacl.signing.VerifyKey(verify_key_bytes).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
            nacl.exceptions.TypeError, ValueError, TypeError):
        return False
    return True


def verify_json_signature(obj: Mapping[str, Any], server_name: str, key_id: str,
                          verify_key_bytes: bytes, *, strict: bool = True) -> bool:
    """True if ``obj`` carries a valid signature by ``server_name`` with ``key_id``.

    Follows "Checking for a Signature": a missing entry, an algorithm other than
    ed25519, bad base64, a body that is not canonical JSON or a wrong signature all
    give False; this never raises for bad input.
    """
    if not key_id.startswith(ED25519 + ":"):
        return False
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        return False
    server_sigs = signatures.get(server_name)
    if not isinstance(server_sigs, Mapping):
        return False
    signature_b64 = server_sigs.get(key_id)
    if not isinstance(signature_b64, str):
        return False
    try:
        signature = decode_base64(signature_b64)
        message = _signable_bytes(obj, strict)
    except (ValueError, CanonicalJsonError):
        return False
    return verify_signature_bytes(message, signature, verify_key_bytes)
