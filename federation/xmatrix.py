"""X-Matrix request authentication: build, parse and verify (pure; no Twisted).

Spec: Server-Server API, "Authentication" → "Request Authentication". Every federation
request is signed by its origin server: the signed object is

    {"method": ..., "uri": ..., "origin": ..., "destination": ..., "content": ...}

(``content`` only if the request has a JSON body; ``uri`` is the path and query string
exactly as sent, starting with ``/_matrix``), and each signature travels in its own
header::

    Authorization: X-Matrix origin="origin.example",destination="dest.example",
                   key="ed25519:key1",sig="ABCDEF..."

The parameters follow RFC 9110's ``auth-param`` grammar: ``name=value`` pairs
separated by commas with optional whitespace, each value a token or a quoted string
(backslash escapes), names case-insensitive. Servers before spec v1.3 send no
``destination`` and some quote nothing, so both must be accepted.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from homeserver.crypto.canonical_json import CanonicalJsonError, encode_canonical_json
from homeserver.crypto.signing import (
    ED25519, SigningKey, decode_base64, encode_base64, verify_signature_bytes,
)
from homeserver.ids import is_valid_server_name

SCHEME = "X-Matrix"

# RFC 9110 §5.6.2 token characters
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# a token plus ":" and "/" and "=": origin=host:port and sig=base64 arrive unquoted from
# some servers, and a key ID contains a colon
_LENIENT_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z:/=\[\]]+")
_QUOTED_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
_OWS = re.compile(r"[ \t]*")


class XMatrixError(ValueError):
    """The Authorization header is not a well-formed X-Matrix header."""


@dataclasses.dataclass(frozen=True)
class XMatrixAuth:
    """One parsed X-Matrix header: who signed, for whom, with which key."""

    origin: str
    key_id: str
    signature: str
    #: None when the sender predates spec v1.3 and did not say
    destination: str | None = None


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    while True:
        pos = _OWS.match(text, pos).end()
        if pos >= len(text):
            break
        name = _TOKEN_RE.match(text, pos)
        if name is None:
            raise XMatrixError(f"expected a parameter name at offset {pos}")
        pos = _OWS.match(text, name.end()).end()
        if text[pos:pos + 1] != "=":
            raise XMatrixError(f"parameter {name.group()!r} has no value")
        pos = _OWS.match(text, pos + 1).end()
        if text[pos:pos + 1] == '"':
            quoted = _QUOTED_RE.match(text, pos)
            if quoted is None:
                raise XMatrixError("unterminated quoted string")
            value = re.sub(r"\\(.)", r"\1", quoted.group(1))
            pos = quoted.end()
        else:
            token = _LENIENT_TOKEN_RE.match(text, pos)
            if token is None:
                raise XMatrixError(f"parameter {name.group()!r} has an empty value")
            value, pos = token.group(), token.end()
        key = name.group().lower()
        if key in params:
            raise XMatrixError(f"parameter {key!r} given twice")
        params[key] = value
        pos = _OWS.match(text, pos).end()
        if pos < len(text):
            if text[pos] != ",":
                raise XMatrixError(f"expected ',' at offset {pos}")
            pos += 1
    return params


def parse_authorization(header: str) -> XMatrixAuth:
    """Parse one ``Authorization`` header value; raises :class:`XMatrixError`.

    The scheme is matched case-insensitively (RFC 9110 §11.1); unknown parameters are
    ignored as the spec asks. ``origin``, ``key`` and ``sig`` are required and the
    server names must be valid.
    """
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        raise XMatrixError("not an X-Matrix authorization header")
    params = _parse_params(rest)
    missing = [p for p in ("origin", "key", "sig") if not params.get(p)]
    if missing:
        raise XMatrixError(f"missing parameter(s): {', '.join(missing)}")
    origin, destination = params["origin"], params.get("destination")
    if not is_valid_server_name(origin):
        raise XMatrixError(f"invalid origin {origin!r}")
    if destination is not None and not is_valid_server_name(destination):
        raise XMatrixError(f"invalid destination {destination!r}")
    return XMatrixAuth(origin=origin, key_id=params["key"], signature=params["sig"],
                       destination=destination)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_authorization(auth: XMatrixAuth) -> str:
    """The header value for ``auth``, every value quoted (as Synapse sends it)."""
    parts = [f"origin={_quote(auth.origin)}"]
    if auth.destination is not None:
        parts.append(f"destination={_quote(auth.destination)}")
    parts += [f"key={_quote(auth.key_id)}", f"sig={_quote(auth.signature)}"]
    return f"{SCHEME} " + ",".join(parts)


def signed_request_json(method: str, uri: str, origin: str, destination: str,
                        content: Any = None) -> dict[str, Any]:
    """The object whose canonical JSON is signed (spec: "Request Authentication")."""
    obj: dict[str, Any] = {"method": method.upper(), "uri": uri, "origin": origin,
                           "destination": destination}
    if content is not None:
        obj["content"] = content
    return obj


def sign_request(keys: list[SigningKey] | tuple[SigningKey, ...], *, method: str, uri: str,
                 origin: str, destination: str, content: Any = None) -> list[str]:
    """One ``Authorization`` header value per signing key of ``origin``."""
    message = encode_canonical_json(
        signed_request_json(method, uri, origin, destination, content))
    return [format_authorization(XMatrixAuth(
        origin=origin, destination=destination, key_id=key.key_id,
        signature=encode_base64(key.sign(message)))) for key in keys]


def verify_request(auth: XMatrixAuth, verify_key: bytes, *, method: str, uri: str,
                   destination: str, content: Any = None) -> bool:
    """True if ``auth.signature`` signs this request with ``verify_key``.

    ``destination`` is the name the request was meant for (ours); a header naming
    another destination never verifies. Never raises for bad input.
    """
    if not auth.key_id.startswith(ED25519 + ":"):
        return False
    if auth.destination is not None and auth.destination != destination:
        return False
    try:
        signature = decode_base64(auth.signature)
        message = encode_canonical_json(
            signed_request_json(method, uri, auth.origin, destination, content))
    except (ValueError, CanonicalJsonError):
        return False
    return verify_signature_bytes(message, signature, verify_key)


def xmatrix_headers(values: list[str]) -> list[XMatrixAuth]:
    """The well-formed X-Matrix headers among raw ``Authorization`` values.

    Raises :class:`XMatrixError` if there is none (for the 401's message, the first
    problem found is kept).
    """
    found, problem = [], "no X-Matrix Authorization header"
    for value in values:
        try:
            found.append(parse_authorization(value))
        except XMatrixError as e:
            problem = str(e)
    if not found:
        raise XMatrixError(problem)
    return found
