"""One error hierarchy: a MatrixError carries the spec's errcode and HTTP status.

Raised anywhere in the domain, turned into a JSON body by the HTTP layer. Errors from
remote servers are a different class (federation.client.RemoteError) so that a remote
500 is never passed to a client as ours (STYLE.md 10).
"""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    """An error with a Matrix ``errcode`` and an HTTP status, safe to show a client."""

    errcode = "M_UNKNOWN"
    status = 400

    def __init__(self, message: str = "", *, errcode: str | None = None,
                 status: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message or self.__class__.__name__
        if errcode is not None:
            self.errcode = errcode
        if status is not None:
            self.status = status
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"errcode": self.errcode, "error": self.message}
        body.update(self.extra)
        return body


def _error(name: str, errcode: str, status: int) -> type[MatrixError]:
    return type(name, (MatrixError,), {"errcode": errcode, "status": status})


Forbidden = _error("Forbidden", "M_FORBIDDEN", 403)
UnknownToken = _error("UnknownToken", "M_UNKNOWN_TOKEN", 401)
MissingToken = _error("MissingToken", "M_MISSING_TOKEN", 401)
#: federation requests without a valid X-Matrix signature (server-server "Authentication")
Unauthorized = _error("Unauthorized", "M_UNAUTHORIZED", 401)
BadJson = _error("BadJson", "M_BAD_JSON", 400)
NotJson = _error("NotJson", "M_NOT_JSON", 400)
NotFound = _error("NotFound", "M_NOT_FOUND", 404)
Unrecognized = _error("Unrecognized", "M_UNRECOGNIZED", 404)
MissingParam = _error("MissingParam", "M_MISSING_PARAM", 400)
InvalidParam = _error("InvalidParam", "M_INVALID_PARAM", 400)
TooLarge = _error("TooLarge", "M_TOO_LARGE", 413)
UserInUse = _error("UserInUse", "M_USER_IN_USE", 400)
InvalidUsername = _error("InvalidUsername", "M_INVALID_USERNAME", 400)
RoomInUse = _error("RoomInUse", "M_ROOM_IN_USE", 400)
InvalidRoomState = _error("InvalidRoomState", "M_INVALID_ROOM_STATE", 400)
UnsupportedRoomVersionError = _error(
    "UnsupportedRoomVersionError", "M_UNSUPPORTED_ROOM_VERSION", 400)
IncompatibleRoomVersion = _error("IncompatibleRoomVersion", "M_INCOMPATIBLE_ROOM_VERSION", 400)
GuestAccessForbidden = _error("GuestAccessForbidden", "M_GUEST_ACCESS_FORBIDDEN", 403)
UserDeactivated = _error("UserDeactivated", "M_USER_DEACTIVATED", 403)
Exclusive = _error("Exclusive", "M_EXCLUSIVE", 400)
WeakPassword = _error("WeakPassword", "M_WEAK_PASSWORD", 400)
ServerNotTrusted = _error("ServerNotTrusted", "M_SERVER_NOT_TRUSTED", 401)
CannotLeaveServerNoticeRoom = _error(
    "CannotLeaveServerNoticeRoom", "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM", 403)
UnknownError = _error("UnknownError", "M_UNKNOWN", 400)


class LimitExceeded(MatrixError):
    errcode = "M_LIMIT_EXCEEDED"
    status = 429

    def __init__(self, retry_after_ms: int, message: str = "Too many requests") -> None:
        super().__init__(message, retry_after_ms=int(retry_after_ms))
        self.retry_after_ms = int(retry_after_ms)


class MethodNotAllowed(MatrixError):
    errcode = "M_UNRECOGNIZED"
    status = 405


class AuthError(Forbidden):
    """An event failed the authorization rules (spec: Room Versions, auth rules)."""


# the content repository's own codes (spec: Client-Server API, "Content repository")
NotYetUploaded = _error("NotYetUploaded", "M_NOT_YET_UPLOADED", 504)
CannotOverwriteMedia = _error("CannotOverwriteMedia", "M_CANNOT_OVERWRITE_MEDIA", 409)
