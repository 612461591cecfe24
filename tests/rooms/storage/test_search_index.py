"""The per-room full-text index and relations index: filled at persist time, emptied
by redactions, back-filled by the schema migration, and queried safely."""

from __future__ import annotations

import json
import os
import sqlite3

from twisted.trial import unittest

from homeserver.rooms.rules.pagination import Direction, TopologicalToken
from homeserver.rooms.storage import schema
from homeserver.rooms.storage.search_index import HitFilter, parse_search_term
from homeserver.rooms.storage.store import EventContext, RoomStore
from tests.fakes.dag import DagBuilder

ALICE, BOB = "@alice:test", "@bob:test"


def _message(body: str, **extra) -> dict:
    return {"msgtype": "m.text", "body": body, **extra}


class IndexTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "room.db")
        self.store = RoomStore.open(self.path, create=True)
        self.store.initialise("!room:test", "10")
        self.addCleanup(self.store.close)
        self.dag = DagBuilder(self.store)
        self.dag.add("m.room.create", ALICE, state_key="", content={"creator": ALICE})

    def search(self, term: str, keys=None, **kw) -> list[str]:
        query = parse_search_term(term, keys)
        if query is None:
            return []
        kw.setdefault("limit", 50)
        return [h.event_id for h in self.store.search.search(query, **kw)]

    def count(self, term: str, keys=None, hit_filter=None) -> int:
        return self.store.search.count(parse_search_term(term, keys), hit_filter)

    def redact(self, target: str) -> None:
        redaction = self.dag.pdu("m.room.redaction", ALICE, redacts=target)
        ctx = EventContext(redaction, state_before=self.store.state_groups_of(
            self.dag.last.event_id)[1], redactor_has_power=True)
        with self.store.transaction():
            self.store.persist([ctx])
        self.dag.last = redaction


class SearchTermTests(unittest.TestCase):
    def test_words_are_prefixes_and_all_required(self) -> None:
        """Every word becomes a quoted prefix match, ANDed, within the chosen columns."""
        query = parse_search_term("Hello wor", ["content.body"])
        self.assertEqual(query.expression, '{body} : ("Hello"* AND "wor"*)')
        self.assertEqual(query.words, ("hello", "wor"))

    def test_syntax_is_always_quoted(self) -> None:
        """FTS5 operators and quotes in a term are quoted, never interpreted."""
        query = parse_search_term('NEAR( a"b * {body}: ^x')
        self.assertNotIn("NEAR(", query.expression.replace('"NEAR("*', ""))
        self.assertIn('"a""b"*', query.expression)

    def test_phrases_negation_and_or(self) -> None:
        """Quoted phrases, -negation and OR are understood."""
        query = parse_search_term('"big cake" -lie pie OR tart')
        self.assertEqual(query.expression,
                         '{body name topic} : (("big cake" AND ("pie"* OR "tart"*)) NOT "lie"*)')

    def test_nothing_to_search(self) -> None:
        """Empty, punctuation-only or negation-only terms and unknown keys search nothing."""
        for term in ("", "   ", ",.;", "-foo", '""'):
            self.assertIsNone(parse_search_term(term), term)
        self.assertIsNone(parse_search_term("x", ["content.unknown"]))


class SearchIndexTests(IndexTestCase):
    def test_messages_names_and_topics_are_indexed(self) -> None:
        """content.body, content.name and content.topic (or m.topic) are searchable."""
        m = self.dag.add("m.room.message", content=_message("Martians are coming")).pdu
        n = self.dag.add("m.room.name", state_key="", content={"name": "Martian room"}).pdu
        t = self.dag.add("m.room.topic", state_key="", content={"m.topic": {"m.text": [
            {"mimetype": "text/html", "body": "<b>x</b>"},
            {"body": "all about martians"}]}}).pdu
        self.assertCountEqual(self.search("martian"), [m.event_id, n.event_id, t.event_id])
        self.assertEqual(self.search("martian", ["content.name"]), [n.event_id])
        self.assertEqual(self.search("martian", ["content.topic"]), [t.event_id])
        self.assertEqual(self.count("martian", ["content.body", "content.name"]), 2)

    def test_not_indexed(self) -> None:
        """Non-string bodies, other types and rejected events are not indexed."""
        self.dag.add("m.room.message", content={"body": 5})
        self.dag.add("m.room.encrypted", content={"body": "secret words"})
        self.dag.add("m.room.message", content=_message("secret rejected"),
                     context={"rejected": "no"})
        self.assertEqual(self.search("secret"), [])

    def test_case_and_diacritics_insensitive(self) -> None:
        """Matching folds case and diacritics."""
        e = self.dag.add("m.room.message", content=_message("Crème BRÛLÉE")).pdu
        self.assertEqual(self.search("creme brulee"), [e.event_id])

    def test_recent_order_and_cursor(self) -> None:
        """``recent`` is newest first; ``before`` continues strictly after a hit."""
        ids = [self.dag.add("m.room.message", content=_message(f"note {i}")).pdu.event_id
               for i in range(5)]
        self.assertEqual(self.search("note", order_by="recent"), ids[::-1])
        hits = self.store.search.search(parse_search_term("note"), order_by="recent",
                                        limit=2)
        last = hits[-1]
        rest = self.search("note", order_by="recent",
                           before=(last.origin_server_ts, last.seq))
        self.assertEqual(rest, ids[:3][::-1])

    def test_rank_prefers_better_matches(self) -> None:
        """``rank`` puts the closer match first and ranks are positive numbers."""
        weak = self.dag.add("m.room.message", content=_message(
            "cake " + "filler words here " * 20)).pdu
        strong = self.dag.add("m.room.message", content=_message("cake cake cake")).pdu
        hits = self.store.search.search(parse_search_term("cake"), limit=10)
        self.assertEqual([h.event_id for h in hits], [strong.event_id, weak.event_id])
        self.assertGreater(hits[0].rank, hits[1].rank)

    def test_highlights_are_matched_tokens(self) -> None:
        """Hits carry the tokens that matched (prefix matches give the whole word)."""
        self.dag.add("m.room.message", content=_message("Martians and men"))
        [hit] = self.store.search.search(parse_search_term("mart"), limit=5)
        self.assertEqual(hit.highlights, {"martians"})

    def test_sender_filter(self) -> None:
        """senders / not_senders narrow the hits."""
        a = self.dag.add("m.room.message", ALICE, content=_message("hello")).pdu
        b = self.dag.add("m.room.message", BOB, content=_message("hello")).pdu
        query = parse_search_term("hello")
        only_bob = HitFilter(senders=frozenset({BOB}))
        self.assertEqual([h.event_id for h in self.store.search.search(
            query, limit=5, hit_filter=only_bob)], [b.event_id])
        self.assertEqual(self.count("hello", hit_filter=HitFilter(
            not_senders=frozenset({BOB}))), 1)
        self.assertIn(a.event_id, self.search("hello"))

    def test_redaction_removes_text(self) -> None:
        """A redacted event's text leaves the index (and is not stored any more)."""
        e = self.dag.add("m.room.message", content=_message("regrettable words")).pdu
        self.redact(e.event_id)
        self.assertEqual(self.search("regrettable"), [])
        rows = self.store._conn.execute(
            "SELECT count(*) FROM event_search WHERE rowid = ?",
            (self.store.seq_of(e.event_id),)).fetchone()[0]
        self.assertEqual(rows, 0)

    def test_rollback_undoes_index_rows(self) -> None:
        """An event undone by a rolled-back savepoint leaves no index row behind."""
        pdu = self.dag.pdu("m.room.message", content=_message("ghost words"))
        ctx = EventContext(pdu, state_before=self.store.state_groups_of(
            self.dag.last.event_id)[1])
        with self.assertRaises(RuntimeError):
            with self.store.transaction():
                self.store.persist([ctx])
                raise RuntimeError("undo")
        self.assertEqual(self.search("ghost"), [])


class RelationIndexTests(IndexTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.root = self.dag.add("m.room.message", content=_message("root")).pdu

    def relate(self, parent: str, rel_type: str, event_type: str = "m.room.message",
               sender: str = ALICE, **content):
        content["m.relates_to"] = {"rel_type": rel_type, "event_id": parent}
        return self.dag.add(event_type, sender, content=content).pdu

    def children(self, parent: str, **kw):
        return self.store.relations.children(parent, **kw)

    def test_children_by_type_and_direction(self) -> None:
        """Children come newest first (b) or oldest first (f), filterable by rel/event type."""
        t1 = self.relate(self.root.event_id, "m.thread", body="a")
        r1 = self.relate(self.root.event_id, "m.annotation", "m.reaction")
        t2 = self.relate(self.root.event_id, "m.thread", body="b")
        self.dag.add("m.room.message", content={"m.relates_to": {
            "m.in_reply_to": {"event_id": self.root.event_id}}, "body": "reply"})
        ids, nxt = self.children(self.root.event_id, limit=10)
        self.assertEqual(ids, [t2.event_id, r1.event_id, t1.event_id])
        self.assertIsNone(nxt)
        ids, _ = self.children(self.root.event_id, direction=Direction.FORWARDS, limit=10)
        self.assertEqual(ids, [t1.event_id, r1.event_id, t2.event_id])
        self.assertEqual(self.children(self.root.event_id, rel_type="m.thread",
                                       limit=10)[0], [t2.event_id, t1.event_id])
        self.assertEqual(self.children(self.root.event_id, rel_type="m.annotation",
                                       event_type="m.reaction", limit=10)[0],
                         [r1.event_id])

    def test_pagination_tokens(self) -> None:
        """Pages continue where the last ended, in both directions, and stop at ``to``."""
        kids = [self.relate(self.root.event_id, "m.thread").event_id for _ in range(7)]
        page1, nxt = self.children(self.root.event_id, limit=3)
        page2, nxt2 = self.children(self.root.event_id, limit=3, from_token=nxt)
        self.assertEqual(page1 + page2, kids[::-1][:6])
        page3, nxt3 = self.children(self.root.event_id, limit=3, from_token=nxt2)
        self.assertEqual(page3, [kids[0]])
        self.assertIsNone(nxt3)
        fwd, fnext = self.children(self.root.event_id, limit=4,
                                   direction=Direction.FORWARDS)
        more, _ = self.children(self.root.event_id, limit=4, direction=Direction.FORWARDS,
                                from_token=fnext)
        self.assertEqual(fwd + more, kids)
        bounded, _ = self.children(self.root.event_id, limit=10, from_token=nxt, to_token=nxt2)
        self.assertEqual(bounded, page2)

    def test_recursion_follows_filters(self) -> None:
        """recurse follows relations of relations, at most MAX_RECURSION deep, and
        rel_type filters apply at every level (MSC3981)."""
        thread = self.relate(self.root.event_id, "m.thread")
        edit = self.relate(thread.event_id, "m.replace", body="* x",
                           **{"m.new_content": {"body": "x"}})
        level3 = self.relate(edit.event_id, "m.annotation", "m.reaction")
        level4 = self.relate(level3.event_id, "m.annotation", "m.reaction")
        self.assertEqual(self.children(self.root.event_id, limit=10)[0], [thread.event_id])
        deep, _ = self.children(self.root.event_id, limit=10, max_depth=3)
        self.assertEqual(deep, [level3.event_id, edit.event_id, thread.event_id])
        self.assertNotIn(level4.event_id, deep)
        self.assertEqual(self.children(self.root.event_id, rel_type="m.thread", limit=10,
                                       max_depth=3)[0], [thread.event_id])

    def test_threads_and_summaries(self) -> None:
        """Threads are listed by latest reply; summaries count replies and name the latest."""
        other = self.dag.add("m.room.message", BOB, content=_message("other root")).pdu
        a1 = self.relate(self.root.event_id, "m.thread")
        b1 = self.relate(other.event_id, "m.thread", sender=BOB)
        a2 = self.relate(self.root.event_id, "m.thread", sender=BOB)
        rows = self.store.relations.threads(limit=10)
        self.assertEqual([r.root_id for r in rows], [self.root.event_id, other.event_id])
        self.assertEqual(rows[0].latest_seq, self.store.seq_of(a2.event_id))
        later = self.store.relations.threads(limit=10, before=rows[0].token)
        self.assertEqual([r.root_id for r in later], [other.event_id])
        summaries = self.store.relations.thread_summaries(
            [self.root.event_id, other.event_id, a1.event_id])
        self.assertEqual(summaries[self.root.event_id].count, 2)
        self.assertEqual(summaries[self.root.event_id].latest_event_id, a2.event_id)
        self.assertEqual(summaries[other.event_id].latest_event_id, b1.event_id)
        self.assertNotIn(a1.event_id, summaries)
        ignoring_bob = self.store.relations.thread_summaries([self.root.event_id], {BOB})
        self.assertEqual(ignoring_bob[self.root.event_id].count, 1)
        # participation: alice replied in her own thread; bob started the other
        self.assertEqual([r.root_id for r in self.store.relations.threads(
            limit=10, participant=BOB)], [self.root.event_id, other.event_id])
        self.assertEqual([r.root_id for r in self.store.relations.threads(
            limit=10, participant=ALICE)], [self.root.event_id])
        self.assertEqual(self.store.relations.thread_participants(
            [self.root.event_id, other.event_id], ALICE), {self.root.event_id})

    def test_edit_candidates(self) -> None:
        """Edits by the original sender with the original's type, newest first."""
        e1 = self.relate(self.root.event_id, "m.replace", body="* one")
        e2 = self.relate(self.root.event_id, "m.replace", body="* two")
        self.relate(self.root.event_id, "m.replace", sender=BOB, body="* not mine")
        self.relate(self.root.event_id, "m.replace", "m.sticker", body="* other type")
        found = self.store.relations.edit_candidates([self.root.event_id])
        self.assertEqual(found[self.root.event_id], [e2.event_id, e1.event_id])

    def test_redacted_child_breaks_relation(self) -> None:
        """Redacting a child removes it from its parent's relations."""
        child = self.relate(self.root.event_id, "m.reference")
        self.assertEqual(self.store.relations.references([self.root.event_id]),
                         {self.root.event_id: [child.event_id]})
        self.redact(child.event_id)
        self.assertEqual(self.children(self.root.event_id, limit=5)[0], [])
        self.assertEqual(self.store.relations.references([self.root.event_id]), {})


class MigrationTests(unittest.TestCase):
    def test_old_room_db_is_backfilled(self) -> None:
        """Opening a room DB from before the indexes fills them from its events."""
        path = os.path.join(self.mktemp(), "room.db")
        os.makedirs(os.path.dirname(path))
        conn = sqlite3.connect(path, isolation_level=None)
        schema.migrate(conn, upto=2)
        rows = [
            (1, "$msg", "m.room.message", None, {"body": "ancient martians"}, None),
            (2, "$thr", "m.room.message", None, {"body": "reply", "m.relates_to": {
                "rel_type": "m.thread", "event_id": "$msg"}}, None),
            (3, "$gone", "m.room.message", None, {"body": "redacted martians"}, "$r"),
            (4, "$name", "m.room.name", "", {"name": "Mars base"}, None),
        ]
        for seq, event_id, event_type, state_key, content, redacted_by in rows:
            raw = json.dumps({"type": event_type, "content": content}).encode()
            conn.execute(
                "INSERT INTO events (seq, event_id, type, state_key, sender, depth,"
                " origin_server_ts, json, redacted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, event_id, event_type, state_key, ALICE, seq, seq, raw, redacted_by))
        conn.close()
        store = RoomStore.open(path)
        self.addCleanup(store.close)
        self.assertEqual(store._conn.execute("PRAGMA user_version").fetchone()[0],
                         schema.SCHEMA_VERSION)
        hits = store.search.search(parse_search_term("martians"), limit=10)
        self.assertEqual([h.event_id for h in hits], ["$msg"])
        self.assertEqual(len(store.search.search(parse_search_term("mars"), limit=10)), 1)
        self.assertEqual(store.relations.children("$msg", limit=10)[0], ["$thr"])
        self.assertEqual(store.relations.children(
            "$msg", limit=10, from_token=TopologicalToken.END)[0], ["$thr"])
