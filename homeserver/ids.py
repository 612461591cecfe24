"""Validated identifier values: parse at the edge, pass frozen values inside.

Grammar from the spec appendix "Identifier Grammar". IDs are at most 255 bytes.
"""

from __future__ import annotations

import dataclasses
import re

from homeserver.errors import InvalidParam

MAX_ID_BYTES = 255

# server_name = hostname [ ":" port ]; hostname = IPv4 / "[" IPv6 "]" / dns-name
_SERVER_NAME_RE = re.compile(
    r"^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9\-.]{1,255})(?::\d{1,5})?\Z"
)
# historical user IDs allow any printable ASCII except ':'; new ones are stricter.
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline ("alice\n")
_LOCALPART_HISTORICAL_RE = re.compile(r"^[\x21-\x39\x3b-\x7e]+\Z")
_LOCALPART_STRICT_RE = re.compile(r"^[a-z0-9._=\-/+]+\Z")


class InvalidId(InvalidParam):
    pass


def is_valid_server_name(name: str) -> bool:
    if not isinstance(name, str) or not _SERVER_NAME_RE.match(name):
        return False
    if ":" in name and not name.endswith("]"):
        port = name.rsplit(":", 1)[1]
        if not port.isdigit() or not 0 < int(port) < 65536:
            return False
    return True


def _split(sigil: str, value: object, kind: str) -> tuple[str, str]:
    if not isinstance(value, str) or not value.startswith(sigil):
        raise InvalidId(f"{kind} must start with {sigil!r}")
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidId(f"{kind} is longer than {MAX_ID_BYTES} bytes")
    local, sep, server = value[1:].partition(":")
    if not sep or not local and sigil != "!":
        raise InvalidId(f"{kind} {value!r} must be {sigil}localpart:server")
    if not is_valid_server_name(server):
        raise InvalidId(f"{kind} {value!r} has an invalid server name")
    return local, server


@dataclasses.dataclass(frozen=True)
class ServerName:
    value: str

    @classmethod
    def parse(cls, value: object) -> "ServerName":
        if not isinstance(value, str) or not is_valid_server_name(value):
            raise InvalidId(f"invalid server name {value!r}")
        return cls(value)

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class UserID:
    localpart: str
    domain: str

    @classmethod
    def parse(cls, value: object) -> "UserID":
        local, server = _split("@", value, "user ID")
        if not _LOCALPART_HISTORICAL_RE.match(local):
            raise InvalidId(f"user ID {value!r} has an invalid localpart")
        return cls(local, server)

    @staticmethod
    def is_valid_new_localpart(localpart: str) -> bool:
        """True if ``localpart`` may be registered today (lower case, no historical chars)."""
        return bool(_LOCALPART_STRICT_RE.match(localpart))

    def to_string(self) -> str:
        return f"@{self.localpart}:{self.domain}"

    __str__ = to_string


@dataclasses.dataclass(frozen=True)
class RoomAlias:
    localpart: str
    domain: str

    @classmethod
    def parse(cls, value: object) -> "RoomAlias":
        local, server = _split("#", value, "room alias")
        return cls(local, server)

    def to_string(self) -> str:
        return f"#{self.localpart}:{self.domain}"

    __str__ = to_string


def parse_room_id(value: object) -> str:
    """Validate a room ID and return it as a string.

    Room v12 IDs are ``!`` + 43 URL-safe base64 characters with no server part
    (MSC4291); earlier versions are ``!opaque:server``.
    """
    if not isinstance(value, str) or not value.startswith("!"):
        raise InvalidId("room ID must start with '!'")
    if len(value.encode("utf-8")) > MAX_ID_BYTES or len(value) < 2:
        raise InvalidId("room ID has an invalid length")
    if ":" in value:
        _split("!", value, "room ID")
    elif not re.fullmatch(r"![A-Za-z0-9_\-]{43}", value):
        raise InvalidId(f"invalid room ID {value!r}")
    return value


def parse_event_id(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("$") or len(value) < 2:
        raise InvalidId("event ID must start with '$'")
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidId("event ID is longer than 255 bytes")
    return value


@dataclasses.dataclass(frozen=True)
class MxcUri:
    server_name: str
    media_id: str

    @classmethod
    def parse(cls, value: object) -> "MxcUri":
        if not isinstance(value, str) or not value.startswith("mxc://"):
            raise InvalidId("not an mxc:// URI")
        server, _, media_id = value[len("mxc://"):].partition("/")
        if not is_valid_server_name(server) or not re.fullmatch(r"[A-Za-z0-9_\-]+", media_id):
            raise InvalidId(f"invalid mxc URI {value!r}")
        return cls(server, media_id)

    def __str__(self) -> str:
        return f"mxc://{self.server_name}/{self.media_id}"
