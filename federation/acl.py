"""Server Access Control Lists: may this server take part in this room?

Spec: Server-Server API, "Server Access Control Lists (ACLs)", and the client-server
``m.room.server_acl`` event. Pure: takes the ACL event's content and a server name.

The rules, in the spec's order: the port is ignored; an IP literal is denied when
``allow_ip_literals`` is false; a server matching any ``deny`` glob is denied; one
matching an ``allow`` glob is allowed; everything else is denied (so an ACL without
``allow`` denies every server). Globs use ``*`` (any run of characters) and ``?``
(one character); entries that are not strings are ignored, as a malformed ACL must not
take the room down.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Any, Mapping


def _host(server_name: str) -> str:
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[:end + 1] if end != -1 else server_name
    return server_name.rsplit(":", 1)[0] if server_name.count(":") == 1 else server_name


def _is_ip_literal(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE | re.DOTALL)


def _matches(host: str, globs: Any) -> bool:
    if not isinstance(globs, list):
        return False
    return any(isinstance(g, str) and _glob(g).match(host) for g in globs)


def server_allowed(server_name: str, acl_content: Mapping[str, Any] | None) -> bool:
    """True if ``server_name`` may take part under this ``m.room.server_acl`` content
    (None: the room has no ACL, everyone may)."""
    if acl_content is None:
        return True
    host = _host(server_name)
    allow_ip = acl_content.get("allow_ip_literals", True)
    if allow_ip is False and _is_ip_literal(host):
        return False
    if _matches(host, acl_content.get("deny", [])):
        return False
    return _matches(host, acl_content.get("allow", []))
