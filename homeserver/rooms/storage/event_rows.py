"""Rows of a room's ``events`` table as PDUs: the JSON codec, and the recently read
events kept decoded (a room's hot set: its state, its newest messages).

A row is ``EVENT_COLUMNS``; its state groups ride in ``internal_metadata``
(``state_before``, ``state_after``), so history visibility of a cached event needs no
query. A redacted event is handed out in its pruned form (spec: "Redactions"), with
``internal_metadata["redacted_by"]``; ``original=True`` gives the event as received and
is never cached.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import orjson

from homeserver.crypto.canonical_json import encode_canonical_json
from homeserver.events.pdu import PDU
from homeserver.events.redaction import redact_event_dict
from homeserver.events.room_versions import RoomVersion

EVENT_COLUMNS = ("seq, event_id, json, outlier, rejected, soft_failed, redacted_by,"
                 " state_before, state_after")
#: decoded events kept per room
CACHE_SIZE = 256


def decode(raw: bytes, strict: bool) -> dict[str, Any]:
    """A stored event's JSON.

    orjson decodes 3-4x faster than ``json`` and shares the key strings of the dicts it
    makes (a quarter to a third less memory per cached event), but it turns integers
    beyond 64 bits into floats, which would change the event. Events of room versions
    with strict canonical JSON (6+) were checked on the way in to hold no floats and no
    integers beyond ±(2**53-1); the standard library decodes the others exactly.
    """
    if strict:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def encode(pdu: PDU) -> bytes:
    """The bytes stored for an event that arrived without its own."""
    return encode_canonical_json(pdu.get_dict())


class DecodedEvents:
    """event_id → PDU for the ``size`` most recently read events of one room."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._pdus: collections.OrderedDict[str, PDU] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._pdus)

    def get(self, event_id: str) -> PDU | None:
        pdu = self._pdus.get(event_id)
        if pdu is not None:
            self._pdus.move_to_end(event_id)
        return pdu

    def clear(self) -> None:
        self._pdus.clear()

    def from_row(self, row: tuple, room_version: RoomVersion, original: bool = False
                 ) -> PDU:
        """The PDU of an ``EVENT_COLUMNS`` row (from the cache unless ``original``)."""
        (seq, event_id, raw, outlier, rejected, soft_failed, redacted_by, state_before,
         state_after) = row
        if not original:
            cached = self.get(event_id)
            if cached is not None:
                return cached
        raw = bytes(raw)
        event_dict = decode(raw, room_version.strict_canonical_json)
        if redacted_by is not None and not original:
            # the pruned form keeps its event ID and signatures valid (they cover it)
            event_dict = redact_event_dict(room_version, event_dict)
        # only ``persist`` reads a PDU's bytes, and never a stored event's: a cached
        # event does without them (a third of its memory)
        pdu = PDU(room_version, event_dict, event_id, raw if original else None)
        pdu.internal_metadata.update(seq=seq, outlier=bool(outlier), rejected=rejected,
                                     soft_failed=bool(soft_failed), redacted_by=redacted_by,
                                     state_before=state_before, state_after=state_after)
        if not original:
            self._keep(pdu)
        return pdu

    def written(self, pdu: PDU) -> None:
        """``pdu`` was just written (``internal_metadata`` filled in): keep it, as a
        read would, so the reads that follow a write (auth of the next event, the
        announcement) need not decode it again."""
        kept = PDU(pdu.room_version, pdu.get_dict(), pdu.event_id)
        kept.internal_metadata.update(pdu.internal_metadata)
        self._keep(kept)

    def _keep(self, pdu: PDU) -> None:
        self._pdus[pdu.event_id] = pdu
        if len(self._pdus) > self._size:
            self._pdus.popitem(last=False)
