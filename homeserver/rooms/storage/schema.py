"""The room DB schema as an ordered list of migration steps (DESIGN.md §4).

``PRAGMA user_version`` holds the number of steps applied. Opening a room DB runs the
missing steps in order, each in its own transaction, so an old file is migrated lazily
the first time its room wakes (10,000 hibernated rooms are never migrated in one go).
Steps are append-only: never edit a step that has shipped, add a new one.

Table notes:

- ``events.seq`` is the local arrival order; it is the room's half of every stream
  token and the integer every other table refers to.
- ``events.json`` is the signed event exactly as received (never re-serialised), so
  signatures and hashes stay checkable. Redaction keeps it and sets ``redacted_by``;
  readers prune on the way out.
- The state *before* every non-outlier event is ``events.state_before``; the state
  *after* it is ``events.state_after`` (the same group for non-state and rejected
  events). Both are state group ids.
- ``state_groups`` are deltas against ``parent_id``; a group with ``parent_id`` NULL is
  a full snapshot. ``chain_len`` (deltas since the last full snapshot) is kept below
  the store's ``full_every`` so reading a group walks a bounded chain.
- ``state_group_entries.event_seq`` NULL means "removed relative to the parent" (state
  resolution can drop a key that a parent had).
- Types and state keys are interned (``interned_strings``) so state rows are integers.
"""

from __future__ import annotations

import sqlite3

_V1 = """
CREATE TABLE room_meta (
    key   TEXT PRIMARY KEY,
    value
);
CREATE TABLE interned_strings (
    id    INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);
CREATE TABLE events (
    seq              INTEGER PRIMARY KEY,
    event_id         TEXT NOT NULL UNIQUE,
    type             TEXT NOT NULL,
    state_key        TEXT,
    sender           TEXT NOT NULL,
    depth            INTEGER NOT NULL,
    origin_server_ts INTEGER NOT NULL,
    membership       TEXT,
    json             BLOB NOT NULL,
    outlier          INTEGER NOT NULL DEFAULT 0,
    rejected         TEXT,
    soft_failed      INTEGER NOT NULL DEFAULT 0,
    redacted_by      TEXT,
    state_before     INTEGER,
    state_after      INTEGER
);
-- the timeline is what clients see: accepted, not soft-failed, not outliers
CREATE INDEX events_topological ON events (depth, seq)
    WHERE outlier = 0 AND rejected IS NULL AND soft_failed = 0;
CREATE TABLE event_edges (
    event_seq     INTEGER NOT NULL,
    prev_event_id TEXT NOT NULL,
    PRIMARY KEY (event_seq, prev_event_id)
) WITHOUT ROWID;
CREATE INDEX event_edges_prev ON event_edges (prev_event_id);
CREATE TABLE event_auth (
    event_seq     INTEGER NOT NULL,
    auth_event_id TEXT NOT NULL,
    PRIMARY KEY (event_seq, auth_event_id)
) WITHOUT ROWID;
CREATE TABLE forward_extremities (
    event_id TEXT PRIMARY KEY,
    depth    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE redactions (
    redaction_event_id TEXT PRIMARY KEY,
    redacts            TEXT NOT NULL,
    sender_domain      TEXT NOT NULL,
    -- 1: the redacting sender had the power to redact anyone's event
    has_power          INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX redactions_redacts ON redactions (redacts);
CREATE TABLE state_groups (
    id        INTEGER PRIMARY KEY,
    parent_id INTEGER,
    chain_len INTEGER NOT NULL
);
CREATE TABLE state_group_entries (
    group_id     INTEGER NOT NULL,
    type_id      INTEGER NOT NULL,
    state_key_id INTEGER NOT NULL,
    event_seq    INTEGER,
    PRIMARY KEY (group_id, type_id, state_key_id)
) WITHOUT ROWID;
CREATE TABLE current_state (
    type_id      INTEGER NOT NULL,
    state_key_id INTEGER NOT NULL,
    event_seq    INTEGER NOT NULL,
    PRIMARY KEY (type_id, state_key_id)
) WITHOUT ROWID;
"""

# Step 2: client transaction IDs, so a retried PUT /send/{txnId} returns the event it
# already created instead of sending a duplicate (spec: Client-Server API, "Transaction
# identifiers"). The key is built by the caller (user, device, txn id).
_V2 = """
CREATE TABLE event_txns (
    txn_key  TEXT PRIMARY KEY,
    event_id TEXT NOT NULL
) WITHOUT ROWID;
"""


# Step 3: the relations index and the full-text search index (filled by the store at
# persist time, emptied of an event when it is redacted; see
# homeserver.rooms.storage.relations and homeserver.rooms.storage.search_index).
# Existing timeline events are back-filled.
_V3 = """
CREATE TABLE event_relations (
    event_seq INTEGER PRIMARY KEY,
    parent_id TEXT NOT NULL,
    rel_type  TEXT NOT NULL
);
CREATE INDEX event_relations_parent ON event_relations (parent_id, rel_type);
CREATE INDEX event_relations_type ON event_relations (rel_type, parent_id);
INSERT INTO event_relations (event_seq, parent_id, rel_type)
SELECT seq, json_extract(CAST(json AS TEXT), '$.content."m.relates_to".event_id'),
       json_extract(CAST(json AS TEXT), '$.content."m.relates_to".rel_type')
FROM events
WHERE json_type(CAST(json AS TEXT), '$.content."m.relates_to".event_id') = 'text'
  AND json_type(CAST(json AS TEXT), '$.content."m.relates_to".rel_type') = 'text'
  AND outlier = 0 AND rejected IS NULL AND soft_failed = 0 AND redacted_by IS NULL;
CREATE VIRTUAL TABLE event_search USING fts5(
    body, name, topic, tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO event_search (rowid, body, name, topic)
SELECT seq,
       CASE WHEN type = 'm.room.message'
                 AND json_type(CAST(json AS TEXT), '$.content.body') = 'text'
            THEN json_extract(CAST(json AS TEXT), '$.content.body') END,
       CASE WHEN type = 'm.room.name'
                 AND json_type(CAST(json AS TEXT), '$.content.name') = 'text'
            THEN json_extract(CAST(json AS TEXT), '$.content.name') END,
       CASE WHEN type = 'm.room.topic'
                 AND json_type(CAST(json AS TEXT), '$.content.topic') = 'text'
            THEN json_extract(CAST(json AS TEXT), '$.content.topic') END
FROM events
WHERE type IN ('m.room.message', 'm.room.name', 'm.room.topic')
  AND outlier = 0 AND rejected IS NULL AND soft_failed = 0 AND redacted_by IS NULL
"""

#: each step runs as one script (``executescript``): its statements are prepared once
#: and never enter the connection's statement cache, where a per-room copy of the
#: schema's SQL would otherwise stay for as long as the room is awake
# Step 4: event → its client transaction, for the ``unsigned.transaction_id`` a sync
# shows the sending device (answered by the room itself, not the global DB).
_V4 = """
CREATE INDEX event_txns_event ON event_txns (event_id)
"""

# Step 5: backfill (events fetched over federation from before what the room holds).
# ``events.backfilled`` marks historical events: a backfilled event gets a negative
# seq (before every live event in topological order at equal depth) and an outlier
# that backfill turns into a timeline event keeps its seq; neither is ever announced
# or shown by /sync as new. ``backward_extremities`` are the events the timeline
# cites as prev events but does not hold as timeline events (unknown, or only an
# outlier), with the depth of the deepest event citing each: where /messages asks
# other servers for more. Rooms holding such gaps already get them computed here.
_V5 = """
ALTER TABLE events ADD COLUMN backfilled INTEGER NOT NULL DEFAULT 0;
CREATE TABLE backward_extremities (
    event_id TEXT PRIMARY KEY,
    depth    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX backward_extremities_depth ON backward_extremities (depth);
INSERT INTO backward_extremities (event_id, depth)
SELECT ee.prev_event_id, max(e.depth)
FROM event_edges ee JOIN events e ON e.seq = ee.event_seq
WHERE e.outlier = 0
  AND NOT EXISTS (SELECT 1 FROM events p
                  WHERE p.event_id = ee.prev_event_id AND p.outlier = 0)
GROUP BY ee.prev_event_id
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The file was written by a newer server; refusing to touch it."""


def migrate(conn: sqlite3.Connection, upto: int = SCHEMA_VERSION) -> int:
    """Run the steps missing from ``conn`` up to ``upto``; returns the new version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Each step and its
    ``user_version`` bump commit together, so a crash mid-migration leaves a file at a
    consistent version.
    """
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(f"room DB schema {current} is newer than {SCHEMA_VERSION}")
    for version in range(current + 1, upto + 1):
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[version - 1]};\n"
                               f"PRAGMA user_version = {version};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return max(current, upto)
