"""Full-text search inside one room's database (spec: Client-Server API, "Server Side
Search", ``room_events``).

Each room DB holds one FTS5 table, ``event_search``, whose rowid is ``events.seq``
(created and back-filled by step 3 of :mod:`homeserver.rooms.storage.schema`).
Three columns hold the three searchable keys of the spec:

- ``body``  — ``content.body`` of ``m.room.message``
- ``name``  — ``content.name`` of ``m.room.name``
- ``topic`` — ``content.topic`` of ``m.room.topic`` (and the ``text/plain`` body of
  its ``m.topic`` block when ``topic`` is missing)

Rows are written when a timeline event is persisted (``index_event``) and deleted
when the event is redacted (``forget_event``), so redacted text is not searchable and
not kept. Encrypted events have no cleartext keys and are never indexed (the spec
excludes encrypted rooms from search).

:class:`SearchIndex` is synchronous and shares the room store's sqlite3 connection
(the store owns one as ``store.search``): writes run inside the store's own
transactions, reads on the reactor thread like every other room DB read.

Search terms: every word must match, as a prefix ("mart" finds "martians"); a
``"quoted phrase"`` must match as a phrase; a word starting with ``-`` must not
match; ``OR`` between two words makes either enough. Anything else in the term is
quoted, so no client input can make an FTS5 syntax error.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from typing import Any, Iterable, Mapping, Sequence

from homeserver.events.pdu import PDU

#: the spec's search keys → FTS columns
KEY_COLUMNS: Mapping[str, str] = {"content.body": "body", "content.name": "name",
                                  "content.topic": "topic"}
#: the event type whose key each column holds
COLUMN_TYPES: Mapping[str, str] = {"body": "m.room.message", "name": "m.room.name",
                                   "topic": "m.room.topic"}
_COLUMNS = ("body", "name", "topic")


#: highlight() marks matched tokens with \x01 … \x02 (control characters: never in
#: text that matters)
_HIGHLIGHT_RE = re.compile("\x01(.*?)\x02", re.S)
_TIMELINE = "e.outlier = 0 AND e.rejected IS NULL AND e.soft_failed = 0"
#: a seq larger than any real one (cursor arithmetic)
MAX_SEQ = 2 ** 62


# -- what is indexed ----------------------------------------------------------------------------
def searchable_text(pdu: PDU) -> dict[str, str]:
    """The FTS columns ``pdu`` fills (empty if it has nothing searchable)."""
    content = pdu.content
    if not isinstance(content, Mapping):
        return {}
    if pdu.type == "m.room.message":
        body = content.get("body")
        return {"body": body} if isinstance(body, str) and body else {}
    if pdu.type == "m.room.name" and pdu.state_key == "":
        name = content.get("name")
        return {"name": name} if isinstance(name, str) and name else {}
    if pdu.type == "m.room.topic" and pdu.state_key == "":
        topic = content.get("topic")
        if not isinstance(topic, str) or not topic:
            topic = _plain_topic(content.get("m.topic"))
        return {"topic": topic} if topic else {}
    return {}


def _plain_topic(block: Any) -> str | None:
    texts = block.get("m.text") if isinstance(block, Mapping) else None
    if not isinstance(texts, list):
        return None
    for text in texts:
        if isinstance(text, Mapping) and isinstance(text.get("body"), str) \
                and text.get("mimetype", "text/plain") == "text/plain":
            return text["body"]
    return None


# -- queries ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SearchQuery:
    """A parsed search term, ready for FTS5 ``MATCH``."""

    expression: str
    #: the positive words and phrases, lower case (the minimum of ``highlights``)
    words: tuple[str, ...]


_TOKEN_RE = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def parse_search_term(term: str, keys: Iterable[str] | None = None) -> SearchQuery | None:
    """The FTS5 expression for a client's ``search_term`` restricted to ``keys``
    (spec key names; None: all). None if the term has nothing to search for."""
    columns = _columns_for(keys)
    if not columns:
        return None
    positives: list[list[str]] = []   # OR-groups, ANDed together
    negatives: list[str] = []
    words: list[str] = []
    pending_or = False
    for match in _TOKEN_RE.finditer(term):
        negated, phrase, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None:
            if bare == "OR" and positives:
                pending_or = True
                continue
            negated = "-" if bare.startswith("-") and len(bare) > 1 else ""
            text, is_phrase = (bare[1:] if negated else bare), False
        else:
            text, is_phrase = phrase, True
        if not any(ch.isalnum() for ch in text):
            continue  # punctuation only: no token to match
        quoted = '"' + text.replace('"', '""') + '"' + ("" if is_phrase else "*")
        if negated:
            negatives.append(quoted)
            continue
        words.append(text.lower())
        if pending_or:
            positives[-1].append(quoted)
        else:
            positives.append([quoted])
        pending_or = False
    if not positives:
        return None  # a term of only negations would match everything
    expression = " AND ".join(
        g[0] if len(g) == 1 else "(" + " OR ".join(g) + ")" for g in positives)
    for negative in negatives:
        expression = f"({expression}) NOT {negative}"
    colspec = "{" + " ".join(columns) + "}"
    return SearchQuery(f"{colspec} : ({expression})", tuple(dict.fromkeys(words)))


def _columns_for(keys: Iterable[str] | None) -> list[str]:
    if keys is None:
        return list(_COLUMNS)
    wanted = {KEY_COLUMNS[k] for k in keys if k in KEY_COLUMNS}
    return [c for c in _COLUMNS if c in wanted]


@dataclasses.dataclass(frozen=True)
class Hit:
    seq: int
    event_id: str
    #: higher is more relevant (the negated BM25 score)
    rank: float
    origin_server_ts: int
    #: matched tokens of this event, lower case
    highlights: frozenset[str]


@dataclasses.dataclass(frozen=True)
class HitFilter:
    """The parts of a RoomEventFilter that apply inside one room's index."""

    senders: frozenset[str] | None = None
    not_senders: frozenset[str] = frozenset()
    #: restrict to these columns (from the filter's ``types``/``not_types``)
    columns: tuple[str, ...] | None = None
    contains_url: bool | None = None


def _where(query: SearchQuery, hit_filter: HitFilter) -> tuple[str, list[Any]]:
    sql = f"event_search MATCH ? AND {_TIMELINE} AND e.redacted_by IS NULL"
    args: list[Any] = [query.expression]
    if hit_filter.senders is not None:
        sql += f" AND e.sender IN ({','.join('?' * len(hit_filter.senders))})"
        args += sorted(hit_filter.senders)
    if hit_filter.not_senders:
        sql += f" AND e.sender NOT IN ({','.join('?' * len(hit_filter.not_senders))})"
        args += sorted(hit_filter.not_senders)
    if hit_filter.columns is not None:
        types = [COLUMN_TYPES[c] for c in hit_filter.columns]
        sql += f" AND e.type IN ({','.join('?' * len(types))})"
        args += types
    if hit_filter.contains_url is not None:
        sql += (" AND (json_type(CAST(e.json AS TEXT), '$.content.url') = 'text') = ?")
        args.append(int(hit_filter.contains_url))
    return sql, args


def search(conn: sqlite3.Connection, query: SearchQuery, *, order_by: str = "rank",
           limit: int, offset: int = 0, before: tuple[int, int] | None = None,
           hit_filter: HitFilter = HitFilter()) -> list[Hit]:
    """Matching timeline events of this room, best (``rank``) or newest (``recent``)
    first. ``before`` = (origin_server_ts, seq): only hits strictly older than that
    (for ``recent`` pagination); ``offset`` skips hits (for ``rank`` pagination)."""
    where, args = _where(query, hit_filter)
    if before is not None:
        where += " AND (e.origin_server_ts < ? OR (e.origin_server_ts = ? AND e.seq < ?))"
        args += [before[0], before[0], before[1]]
    if order_by == "recent":
        order = "e.origin_server_ts DESC, e.seq DESC"
    else:
        order = "bm25(event_search) ASC, e.origin_server_ts DESC, e.seq DESC"
    marks = ", ".join(f"highlight(event_search, {i}, char(1), char(2))"
                      for i in range(len(_COLUMNS)))
    rows = conn.execute(
        f"SELECT e.seq, e.event_id, bm25(event_search), e.origin_server_ts, {marks}"
        f" FROM event_search JOIN events e ON e.seq = event_search.rowid"
        f" WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
        args + [limit, offset]).fetchall()
    return [Hit(seq, event_id, -score, ts, _highlights(texts))
            for seq, event_id, score, ts, *texts in rows]


def count(conn: sqlite3.Connection, query: SearchQuery,
          hit_filter: HitFilter = HitFilter()) -> int:
    """How many timeline events of this room match."""
    where, args = _where(query, hit_filter)
    return conn.execute(
        f"SELECT count(*) FROM event_search JOIN events e ON e.seq = event_search.rowid"
        f" WHERE {where}", args).fetchone()[0]


def _highlights(texts: Sequence[str | None]) -> frozenset[str]:
    found: set[str] = set()
    for text in texts:
        if text:
            found.update(m.lower() for m in _HIGHLIGHT_RE.findall(text) if m.strip())
    return frozenset(found)


class SearchIndex:
    """The ``event_search`` table of one room DB."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def index_event(self, seq: int, pdu: PDU) -> None:
        """Index a timeline event just persisted as ``seq`` (no-op if not searchable)."""
        columns = searchable_text(pdu)
        if columns:
            self._conn.execute(
                "INSERT INTO event_search (rowid, body, name, topic) VALUES (?, ?, ?, ?)",
                (seq, columns.get("body"), columns.get("name"), columns.get("topic")))

    def forget_event(self, seq: int) -> None:
        """Drop a redacted event's text from the index."""
        self._conn.execute("DELETE FROM event_search WHERE rowid = ?", (seq,))

    def search(self, query: SearchQuery, *, order_by: str = "rank", limit: int,
               offset: int = 0, before: tuple[int, int] | None = None,
               hit_filter: HitFilter | None = None) -> list[Hit]:
        """See :func:`search`."""
        return search(self._conn, query, order_by=order_by, limit=limit, offset=offset,
                      before=before, hit_filter=hit_filter or HitFilter())

    def count(self, query: SearchQuery, hit_filter: HitFilter | None = None) -> int:
        """See :func:`count`."""
        return count(self._conn, query, hit_filter or HitFilter())
