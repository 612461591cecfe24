"""Client transaction IDs for room events (spec: Client-Server API, "Transaction
identifiers"; ``ClientEvent.unsigned.transaction_id``).

One record: the room DB's ``event_txns`` (key → event, written with the event in the
same SQLite transaction). It makes a retried ``PUT …/send/…/{txnId}`` idempotent even
across a crash, and answers which client transaction sent an event (the
``transaction_id`` a sync or ``/messages`` shows the sending device), from the room's
own file, already there when the event is announced. A retry to a sleeping room wakes
it, as the send it repeats would have. (The global ``client_txn_ids`` table serves
to-device sends, which have no room.)

The *scope* of a transaction is the sending device (spec v1.7+), or
``"token:<token_id>"`` for an access token without a device.

Pure: the keys and scopes.
"""

from __future__ import annotations


def scope_of(requester) -> str:
    """The transaction scope of a :class:`~homeserver.client_api.auth.Requester`."""
    if requester.device_id:
        return requester.device_id
    return f"token:{requester.token_id}"


def _escape(field: str) -> str:
    return field.replace("\\", "\\\\").replace("|", "\\|")


def txn_key(user_id: str, scope: str, endpoint: str, txn_id: str) -> str:
    """The idempotency key of one request: same device, same endpoint and path
    (``endpoint`` names the path without the txn ID, e.g. "send/!r/m.room.message").

    Fields are joined by "|"; a "|" or "\\" inside one (device IDs, transaction IDs
    and event types are the client's choice) is escaped with "\\", so two different
    requests never share a key. A key without either character reads as it always did.
    """
    return "|".join(_escape(f) for f in (user_id, scope, endpoint, txn_id))


def split_txn_key(key: str) -> list[str]:
    """The fields of a :func:`txn_key`, unescaped."""
    if "\\" not in key:
        return key.split("|")  # nothing escaped (the usual key): 30x faster
    fields, current, chars = [], [], iter(key)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == "|":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return fields


def send_endpoint(room_id: str, event_type: str) -> str:
    """The ``endpoint`` of ``PUT /rooms/{room_id}/send/{event_type}/{txnId}``."""
    return f"send/{room_id}/{event_type}"


def redact_endpoint(room_id: str, event_id: str) -> str:
    """The ``endpoint`` of ``PUT /rooms/{room_id}/redact/{event_id}/{txnId}``."""
    return f"redact/{room_id}/{event_id}"


def txn_id_of(key: str, event, user_id: str, scope: str) -> str | None:
    """The client transaction ID in ``key`` if it is ``user_id``'s ``scope`` sending
    ``event`` (a PDU) through an endpoint that can have made it, else None. (A
    redaction's own target is not compared: a redacted redaction of an older room
    version has lost it.)"""
    fields = split_txn_key(key)
    if len(fields) != 4 or fields[0] != user_id or fields[1] != scope:
        return None
    endpoint = fields[2]
    if endpoint == send_endpoint(event.room_id, event.type) or (
            event.type == "m.room.redaction"
            and endpoint.startswith(redact_endpoint(event.room_id, ""))):
        return fields[3]
    return None
