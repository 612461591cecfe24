"""Password hashing off the reactor thread, new-password checks, changing a password
(spec: ``POST /account/password``).

argon2 is deliberately slow and memory-hungry, so every hash runs in the reactor's
thread pool; the reactor thread only awaits the result.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import threads

from homeserver.errors import BadJson, InvalidParam, MissingParam
from homeserver.store.accounts import hash_password

#: Synapse refuses longer passwords too; argon2 would accept them, but a megabyte
#: "password" is only a way to make the server work
MAX_PASSWORD_LENGTH = 512


def check_new_password(password: Any, name: str = "password") -> str:
    """``password`` if it may be set as a password (M_MISSING_PARAM, M_BAD_JSON if not a
    string, M_INVALID_PARAM if empty, too long or holding NUL)."""
    if password is None:
        raise MissingParam(f"Missing params: {name}")
    if not isinstance(password, str):
        raise BadJson(f"{name} must be a string")
    if not password or len(password) > MAX_PASSWORD_LENGTH or "\x00" in password:
        raise InvalidParam(f"Invalid {name}")
    return password


class PasswordHasher:
    """Hashes passwords in the reactor's thread pool."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    async def hash(self, password: str) -> str:
        return await threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), hash_password, password)


class PasswordChanger:
    """``POST /account/password`` after User-Interactive Authentication."""

    def __init__(self, accounts: Any, devices: Any, hasher: PasswordHasher) -> None:
        self._accounts = accounts
        self._devices = devices  # homeserver.accounts.devices.DeviceManager
        self._hasher = hasher

    async def change_password(self, requester: Any, new_password: str, *,
                              logout_devices: bool = True) -> None:
        """Set the new hash; with ``logout_devices`` every other device is deleted and
        every other token revoked, while the requesting token keeps working (spec: the
        server SHOULD NOT revoke the access token provided in the request).
        """
        password_hash = await self._hasher.hash(check_new_password(new_password))
        await self._accounts.set_password_hash(requester.user_id, password_hash)
        if logout_devices:
            await self._devices.delete_all_devices(
                requester.user_id, except_device_id=requester.device_id,
                except_token_id=requester.token_id, except_token=requester.access_token)
