"""Creating accounts (spec: ``POST /register``, ``GET /register/available``,
"Token-authenticated registration", "Guest Access").

:class:`Registrar` creates accounts (it is shared with shared-secret registration in
``synapse_compat``); :class:`RegistrationService` is the ``/register`` endpoint's
logic: configuration checks, checks that must come before User-Interactive
Authentication, the UIA itself, then the account and its first login.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from homeserver.accounts.devices import check_display_name
from homeserver.accounts.passwords import PasswordHasher, check_new_password
from homeserver.accounts.sessions import check_device_id
from homeserver.accounts.usernames import check_localpart, normalise_username, user_id_for
from homeserver.errors import (
    Forbidden, GuestAccessForbidden, InvalidParam, MatrixError, MissingParam, UnknownToken,
    UserInUse,
)
from homeserver.http.validate import optional

LOGIN_DUMMY = "m.login.dummy"
LOGIN_REGISTRATION_TOKEN = "m.login.registration_token"


class Registrar:
    """Creates local accounts: explicit or generated localparts, users or guests."""

    def __init__(self, store: Any, ratelimiter: Any, server_name: str) -> None:
        self._accounts = store.accounts
        self._directory = store.user_directory
        self._ratelimiter = ratelimiter
        self._server_name = server_name
        self._next_numeric: int | None = None

    def user_id_for(self, username: str) -> str:
        """The user ID ``username`` would get; M_INVALID_USERNAME if it cannot be had."""
        return check_localpart(normalise_username(username), self._server_name)

    async def check_available(self, user_id: str) -> None:
        """M_USER_IN_USE if the ID (in any letter case) is taken."""
        if await self._accounts.find_user_ids_case_insensitive(user_id):
            raise UserInUse("User ID already taken.")

    def ratelimit(self, ip: str) -> None:
        """``rc_registration``: account creations per client IP (429 when exhausted)."""
        self._ratelimiter.check("rc_registration", ip)

    async def create(self, user_id: str | None, password_hash: str | None, *,
                     ip: str | None = None, is_guest: bool = False, admin: bool = False,
                     user_type: str | None = None, displayname: str | None = None) -> str:
        """Create the account; a numeric localpart is generated when ``user_id`` is None.

        ``ip`` is rate-limited with ``rc_registration`` (None: an admin is registering,
        or the caller has already called :meth:`ratelimit`).
        New non-guest users get their localpart as displayname, as Synapse does, and
        an entry in the user directory.
        """
        if ip is not None:
            self.ratelimit(ip)
        if user_id is None:
            user_id = await self._create_generated(password_hash, is_guest, admin, user_type)
        else:
            await self.check_available(user_id)
            localpart = user_id[1:].split(":", 1)[0]
            if not await self._accounts.create_user(
                    user_id, password_hash, is_admin=admin, is_guest=is_guest,
                    user_type=user_type, displayname=displayname or localpart):
                raise UserInUse("User ID already taken.")
        if not is_guest:
            profile = await self._accounts.get_profile(user_id)
            await self._directory.update_user(
                user_id, profile.displayname if profile else None,
                profile.avatar_url if profile else None)
        return user_id

    async def _create_generated(self, password_hash: str | None, is_guest: bool, admin: bool,
                                user_type: str | None) -> str:
        # numeric localparts cannot be chosen (see usernames.check_localpart), so the only
        # collisions are earlier generated IDs: probe upwards from the number of users
        if self._next_numeric is None:
            self._next_numeric = await self._accounts.count_users(include_guests=True) + 1
        while True:
            localpart = str(self._next_numeric)
            self._next_numeric += 1
            user_id = user_id_for(localpart, self._server_name)
            if await self._accounts.create_user(
                    user_id, password_hash, is_admin=admin, is_guest=is_guest,
                    user_type=user_type, displayname=None if is_guest else localpart):
                return user_id


class RegistrationService:
    """``POST /register`` and ``GET /register/available``."""

    def __init__(self, config: Any, registrar: Registrar, sessions: Any, uia: Any,
                 hasher: PasswordHasher, store: Any) -> None:
        self._config = config
        self._registrar = registrar
        self._sessions = sessions  # homeserver.accounts.sessions.SessionIssuer
        self._uia = uia  # homeserver.client_api.uia.UserInteractiveAuth
        self._hasher = hasher
        self._store = store

    def flows(self) -> list[list[str]]:
        """Open registration is one dummy stage; a required token comes first (as in
        Synapse, so a client sees ``m.login.registration_token`` and asks for it)."""
        flow = [LOGIN_DUMMY]
        if self._config.registration_requires_token:
            flow = [LOGIN_REGISTRATION_TOKEN] + flow
        return [flow]

    def _require_enabled(self) -> None:
        if not self._config.enable_registration:
            raise Forbidden("Registration has been disabled")

    async def available(self, username: str) -> None:
        """``GET /register/available``: raises unless ``username`` could be registered."""
        self._require_enabled()
        await self._registrar.check_available(self._registrar.user_id_for(username))

    async def token_valid(self, token: str) -> bool:
        """``GET /register/m.login.registration_token/validity``."""
        self._require_enabled()
        return await self._store.registration_tokens.is_valid(token)

    async def register(self, body: Mapping[str, Any], *, kind: str, ip: str,
                       user_agent: str | None = None) -> dict[str, Any]:
        if kind == "guest":
            return await self._register_guest(body, ip, user_agent)
        if kind != "user":
            raise InvalidParam("kind must be 'user' or 'guest'")
        self._require_enabled()
        username = optional(body, "username", str)
        password = body.get("password")
        if password is not None:
            check_new_password(password)
        device_id = check_device_id(body.get("device_id"))
        display_name = check_display_name(body.get("initial_device_display_name"))
        inhibit_login = optional(body, "inhibit_login", bool, False)
        want_refresh = optional(body, "refresh_token", bool, False)
        guest = await self._guest_to_upgrade(body)

        previous = self._uia.peek(body)
        if previous is not None and "registered_user_id" in previous.data:
            # the client lost our answer and retries: same account, a fresh login
            return await self._finish(previous.data["registered_user_id"], inhibit_login,
                                      device_id, display_name, want_refresh, ip, user_agent)
        user_id = guest
        if guest is None and username is not None:
            user_id = self._registrar.user_id_for(username)
            # spec: checked before User-Interactive Authentication
            await self._registrar.check_available(user_id)

        flows = self.flows()
        try:
            session = await self._uia.authenticate(body, operation="register", flows=flows,
                                                   bind_request=False)
        except MatrixError as e:
            if getattr(e, "session", None) is not None:
                self._remember(e.session.data, user_id, password)
            raise
        self._remember(session.data, user_id, password)
        if "password" not in session.data:
            raise MissingParam("Missing params: password")
        user_id = session.data.get("user_id")

        # rate-limit before the (deliberately slow) hash
        self._registrar.ratelimit(ip)
        password_hash = await self._hasher.hash(session.data["password"])
        token = session.data.get("registration_token")
        if token is not None:
            # the use is counted now, atomically with the validity check
            if not await self._store.registration_tokens.start_use(token):
                raise self._uia.fail_stage(session, LOGIN_REGISTRATION_TOKEN, flows,
                                           "Registration token is no longer valid")
        try:
            if guest is not None:
                await self._upgrade_guest(guest, password_hash)
                user_id = guest
            else:
                user_id = await self._registrar.create(user_id, password_hash)
        except BaseException:
            if token is not None:
                await self._store.registration_tokens.abandon_use(token)
            raise
        if token is not None:
            await self._store.registration_tokens.complete_use(token)
        del session.data["password"]
        session.data["registered_user_id"] = user_id
        return await self._finish(user_id, inhibit_login, device_id, display_name,
                                  want_refresh, ip, user_agent)

    @staticmethod
    def _remember(data: dict[str, Any], user_id: str | None, password: str | None) -> None:
        """Keep the username and password across the session's requests, so the client
        need not send them every time. The password stays in memory only (sessions are
        never persisted) and is hashed once, when the account is created: hashing it on
        every unauthenticated 401 would let anyone make the server burn argon2 time.
        """
        if user_id is not None:
            data["user_id"] = user_id
        if password is not None:
            data["password"] = password

    async def _finish(self, user_id: str, inhibit_login: bool, device_id: str | None,
                      display_name: str | None, want_refresh: bool, ip: str,
                      user_agent: str | None) -> dict[str, Any]:
        if inhibit_login:
            return {"user_id": user_id, "home_server": self._config.server_name}
        return await self._sessions.start_session(
            user_id, device_id=device_id, display_name=display_name,
            want_refresh=want_refresh, ip=ip, user_agent=user_agent)

    # -- guests -----------------------------------------------------------------------
    async def _register_guest(self, body: Mapping[str, Any], ip: str,
                              user_agent: str | None) -> dict[str, Any]:
        """A guest account: no UIA, and every parameter but the device's display name
        is ignored (spec); the server picks the device ID."""
        if not self._config.allow_guest_access:
            raise GuestAccessForbidden("Guest access is disabled")
        display_name = body.get("initial_device_display_name")
        if not isinstance(display_name, str):
            display_name = None
        user_id = await self._registrar.create(None, None, ip=ip, is_guest=True)
        return await self._sessions.start_session(
            user_id, display_name=check_display_name(display_name), ip=ip,
            user_agent=user_agent)

    async def _guest_to_upgrade(self, body: Mapping[str, Any]) -> str | None:
        """The guest named by ``guest_access_token`` (spec "Guest Access": a guest
        upgrades by registering its own localpart with its token), else None."""
        token = optional(body, "guest_access_token", str)
        if token is None:
            return None
        if not self._config.allow_guest_access:
            raise GuestAccessForbidden("Guest access is disabled")
        owner = await self._store.devices.get_user_by_access_token(token)
        if owner is None:
            raise UnknownToken("Unknown guest access token", soft_logout=False)
        if not owner.is_guest:
            raise Forbidden("Cannot register taken user ID without valid guest "
                            "credentials for that user.")
        username = optional(body, "username", str)
        if username is not None and user_id_for(normalise_username(username),
                                                self._config.server_name) != owner.user_id:
            raise Forbidden("A guest may only register its own user ID")
        return owner.user_id

    async def _upgrade_guest(self, user_id: str, password_hash: str) -> None:
        await self._store.accounts.set_password_hash(user_id, password_hash)
        await self._store.accounts.set_guest(user_id, False)
        localpart = user_id[1:].split(":", 1)[0]
        await self._store.accounts.set_displayname(user_id, localpart)
        await self._store.user_directory.update_user(user_id, localpart, None)


__all__: Sequence[str] = ("Registrar", "RegistrationService")
