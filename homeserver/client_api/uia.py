"""User-Interactive Authentication (spec: Client-Server API, "User-Interactive
Authentication API").

An endpoint offers *flows*, each a list of *stages*. The client starts without
``auth`` and gets 401 with the flows and a ``session``; it then completes stages one
request at a time, in the order of some flow, passing ``auth: {type, session, …}``.
A failed attempt at a stage is 401 with the same body plus ``errcode``/``error``; once
every stage of one flow is complete the endpoint runs.

Sessions live in memory and expire ``lifetime_ms`` after creation (a restart forgets
in-flight sessions; clients then start again). A session is bound to the operation and
user it was created for, and for account operations also to the request body, so a
session completed for "delete device A" cannot be replayed to delete device B or to
set a different password.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Mapping, Sequence

from homeserver.accounts.login import PasswordVerifier, user_from_identifier
from homeserver.errors import BadJson, Forbidden, MatrixError, MissingParam, UserDeactivated
from homeserver.http.validate import require

LOGIN_PASSWORD = "m.login.password"
LOGIN_DUMMY = "m.login.dummy"
LOGIN_REGISTRATION_TOKEN = "m.login.registration_token"

#: the flows of endpoints that re-check the password of the logged-in user
PASSWORD_FLOWS: tuple[tuple[str, ...], ...] = ((LOGIN_PASSWORD,),)

DEFAULT_LIFETIME_MS = 30 * 60 * 1000


class StageFailed(MatrixError):
    """An attempt at a stage failed; the client may try again (401 inside the UIA body)."""

    errcode = "M_FORBIDDEN"
    status = 401


class AuthRequired(MatrixError):
    """The 401 response of an endpoint whose authentication is not complete."""

    status = 401

    def __init__(self, session: "UiaSession", flows: Sequence[Sequence[str]],
                 params: Mapping[str, Any], error: MatrixError | None = None) -> None:
        super().__init__(error.message if error else "Additional authentication required",
                         errcode=error.errcode if error else None)
        self.session = session
        self.flows = flows
        self.params = params
        self.error = error

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "flows": [{"stages": list(flow)} for flow in self.flows],
            "params": dict(self.params),
            "session": self.session.session_id,
            "completed": list(self.session.completed),
        }
        if self.error is not None:
            body.update(self.error.to_json())
        return body


@dataclasses.dataclass
class UiaSession:
    session_id: str
    operation: str
    user_id: str | None
    request_hash: str | None
    created_ms: int
    completed: list[str] = dataclasses.field(default_factory=list)
    #: scratch space for stages and the operation (registration token, username…)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


class UiaSessions:
    """In-memory sessions with a fixed lifetime and a size cap (oldest evicted first)."""

    def __init__(self, now_ms: Callable[[], int], *, lifetime_ms: int = DEFAULT_LIFETIME_MS,
                 max_sessions: int = 10_000) -> None:
        self._now_ms = now_ms
        self._lifetime_ms = lifetime_ms
        self._max = max_sessions
        self._sessions: OrderedDict[str, UiaSession] = OrderedDict()

    def create(self, operation: str, user_id: str | None,
               request_hash: str | None) -> UiaSession:
        self._sweep()
        while len(self._sessions) >= self._max:
            self._sessions.popitem(last=False)
        session = UiaSession(secrets.token_urlsafe(24), operation, user_id, request_hash,
                             self._now_ms())
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str) -> UiaSession | None:
        """The live session, or None if unknown or expired."""
        session = self._sessions.get(session_id)
        if session is not None and self._expired(session):
            del self._sessions[session_id]
            return None
        return session

    def discard(self, session_id: str) -> None:
        """Forget a session (an operation that must re-prompt every time)."""
        self._sessions.pop(session_id, None)

    def _expired(self, session: UiaSession) -> bool:
        return session.created_ms + self._lifetime_ms <= self._now_ms()

    def _sweep(self) -> None:
        # sessions are in creation order, so the expired ones are at the front
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if not self._expired(oldest):
                break
            self._sessions.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sessions)


Stage = Callable[[Mapping[str, Any], UiaSession], Awaitable[None]]


def request_hash(body: Mapping[str, Any]) -> str:
    """What a bound session remembers of the request: its body without ``auth``."""
    rest = {k: v for k, v in body.items() if k != "auth"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode("utf-8")).hexdigest()


class UserInteractiveAuth:
    def __init__(self, sessions: UiaSessions, stages: Mapping[str, Stage]) -> None:
        self._sessions = sessions
        self._stages = dict(stages)

    def forget(self, session: UiaSession) -> None:
        """End a completed session so it cannot authorise the operation again."""
        self._sessions.discard(session.session_id)

    def peek(self, body: Mapping[str, Any]) -> UiaSession | None:
        """The live session named by ``body["auth"]["session"]``, if any (no checks)."""
        auth = body.get("auth")
        if isinstance(auth, dict) and isinstance(auth.get("session"), str):
            return self._sessions.get(auth["session"])
        return None

    async def authenticate(self, body: Mapping[str, Any], *, operation: str,
                           flows: Sequence[Sequence[str]], user_id: str | None = None,
                           bind_request: bool = True,
                           params: Mapping[str, Any] | None = None) -> UiaSession:
        """The completed session, or raise :class:`AuthRequired` (401).

        ``bind_request``: the body (minus ``auth``) must stay the same across the
        session's requests. Registration passes False: clients fill in the username
        and password while they go through the stages.
        """
        params = params or {}
        auth = body.get("auth")
        if auth is not None and not isinstance(auth, dict):
            raise BadJson("auth must be an object")
        auth = auth or {}
        binding = request_hash(body) if bind_request else None
        session_id = auth.get("session")
        if session_id is None:
            session = self._sessions.create(operation, user_id, binding)
        else:
            if not isinstance(session_id, str):
                raise BadJson("auth.session must be a string")
            session = self._sessions.get(session_id)
            if session is None:
                raise MatrixError("Unknown or expired session ID", errcode="M_UNKNOWN",
                                  status=400)
            if (session.operation, session.user_id, session.request_hash) != \
                    (operation, user_id, binding):
                raise Forbidden(
                    "Requested operation has changed during the UI authentication session.")

        stage = auth.get("type")
        if stage is not None and stage not in session.completed:
            # a completed stage is never re-checked (spec): the retry just re-evaluates
            if not isinstance(stage, str):
                raise BadJson("auth.type must be a string")
            await self._attempt(stage, auth, session, flows, params)
        if any(session.completed[:len(flow)] == list(flow) for flow in flows):
            return session
        raise AuthRequired(session, flows, params)

    async def _attempt(self, stage: str, auth: Mapping[str, Any], session: UiaSession,
                       flows: Sequence[Sequence[str]], params: Mapping[str, Any]) -> None:
        if not any(stage in flow for flow in flows) or stage not in self._stages:
            raise AuthRequired(session, flows, params, MatrixError(
                f"Unrecognised auth type {stage!r}", errcode="M_UNRECOGNIZED"))
        done = session.completed
        if not any(list(flow[:len(done) + 1]) == done + [stage] for flow in flows):
            raise AuthRequired(session, flows, params, StageFailed(
                "Stages must be completed in the order of a flow"))
        try:
            await self._stages[stage](auth, session)
        except StageFailed as e:
            raise AuthRequired(session, flows, params, e) from None
        session.completed.append(stage)

    @staticmethod
    def fail_stage(session: UiaSession, stage: str, flows: Sequence[Sequence[str]],
                   message: str) -> AuthRequired:
        """Undo a completed stage that turned out invalid when it was used; the 401 to
        raise (the client redoes that stage)."""
        if stage in session.completed:
            del session.completed[session.completed.index(stage):]
        return AuthRequired(session, flows, {}, StageFailed(message))


# -- stages ---------------------------------------------------------------------------
async def dummy_stage(auth: Mapping[str, Any], session: UiaSession) -> None:
    """``m.login.dummy`` always succeeds."""


class PasswordStage:
    """``m.login.password``: the password of the session's own user."""

    def __init__(self, verifier: PasswordVerifier) -> None:
        self._verifier = verifier

    async def __call__(self, auth: Mapping[str, Any], session: UiaSession) -> None:
        user = user_from_identifier(auth)
        password = require(auth, "password", str)
        user_id = self._verifier.qualify(user)
        info = None if user_id is None else await self._verifier.resolve(user_id)
        if info is None or info.user_id != session.user_id:
            raise StageFailed("You can only authenticate as the logged-in user")
        try:
            await self._verifier.verify(info.user_id, password)
        except (Forbidden, UserDeactivated) as e:
            raise StageFailed(e.message, errcode=e.errcode) from None


class RegistrationTokenStage:
    """``m.login.registration_token`` (spec: "Token-authenticated registration").

    The stage only checks validity; the use is counted when the account is created
    (see :mod:`homeserver.accounts.registration`), so an abandoned attempt never holds
    on to one of the token's uses.
    """

    def __init__(self, tokens: Any) -> None:
        self._tokens = tokens

    async def __call__(self, auth: Mapping[str, Any], session: UiaSession) -> None:
        token = auth.get("token")
        if token is None:
            raise MissingParam("Missing registration token")
        if not isinstance(token, str):
            raise BadJson("token must be a string")
        if not await self._tokens.is_valid(token):
            raise StageFailed("Invalid registration token")
        session.data["registration_token"] = token
