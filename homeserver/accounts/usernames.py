"""Which localparts may be registered (spec appendix "User Identifiers"; the error
messages follow Synapse's so that operators and clients see the familiar text).
"""

from __future__ import annotations

from homeserver.errors import InvalidUsername
from homeserver.ids import MAX_ID_BYTES, UserID

#: longer ``username`` values are refused before any other check
MAX_USERNAME_LENGTH = 512


def user_id_for(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def check_localpart(localpart: str, server_name: str, *, allow_numeric: bool = False) -> str:
    """The user ID for a new account called ``localpart``; raises M_INVALID_USERNAME.

    Purely numeric localparts are kept for generated IDs (guests and registrations
    without a username), so that a generated ID never collides with a chosen one.
    """
    if not localpart:
        raise InvalidUsername("User ID cannot be empty")
    if not UserID.is_valid_new_localpart(localpart):
        raise InvalidUsername("User ID can only contain characters a-z, 0-9, or '=_-./+'")
    if localpart[0] == "_":
        raise InvalidUsername("User ID may not begin with _")
    user_id = user_id_for(localpart, server_name)
    if len(user_id.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidUsername(f"User ID may not be longer than {MAX_ID_BYTES} characters")
    if localpart.isdigit() and not allow_numeric:
        raise InvalidUsername("Numeric user IDs are reserved for guest users.")
    return user_id


def normalise_username(username: str) -> str:
    """Map a requested ``username`` onto a localpart (spec: the server "MUST either map
    the provided username onto a user_id in a logical manner, or reject" it): lower case.
    """
    if len(username) > MAX_USERNAME_LENGTH:
        raise InvalidUsername("Invalid username")
    return username.lower()
