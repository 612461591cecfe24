"""Outbox recovery: the server process dies between the room DB commit and the room
stream announcement; after a restart every event is in the room stream exactly once
and visible to /sync (DESIGN.md §4)."""

from __future__ import annotations

import glob
import os
import sqlite3
import uuid

from twisted.trial import unittest

from homeserver.faults import CRASH_ENV
from tests.e2e.harness import ServerProcess


class OutboxRecoveryTests(unittest.TestCase):
    timeout = 120

    def test_crash_between_room_commit_and_announce(self):
        """Killed after the room commit and before the announce: replayed exactly once."""
        server = ServerProcess()
        self.addCleanup(server.stop)
        os.environ[CRASH_ENV] = "org.test.crash"
        try:
            server.start()
        finally:
            del os.environ[CRASH_ENV]

        status, reg = server.request("POST", "/_matrix/client/v3/register", {
            "username": "carol", "password": "pw-carol-1", "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, reg)
        token = reg["access_token"]
        status, room = server.request("POST", "/_matrix/client/v3/createRoom", {}, token=token)
        self.assertEqual(status, 200, room)
        room_id = room["room_id"]
        quoted = room_id.replace("!", "%21").replace(":", "%3A")
        for i in range(5):
            status, _ = server.request(
                "PUT", f"/_matrix/client/v3/rooms/{quoted}/send/m.room.message/t{i}",
                {"msgtype": "m.text", "body": f"before {i}"}, token=token)
            self.assertEqual(status, 200)

        # this send commits to the room DB, then the process dies before announcing it
        try:
            status, _ = server.request(
                "PUT", f"/_matrix/client/v3/rooms/{quoted}/send/org.test.crash/{uuid.uuid4()}",
                {"marker": True}, token=token)
        except (ConnectionError, OSError):
            status = None
        self.assertNotEqual(status, 200)
        server.proc.wait(30)
        self.assertEqual(server.proc.returncode, 70, server.logs())
        server.proc = None

        room_db = glob.glob(os.path.join(server.data_dir, "rooms", "**", "*.db"),
                            recursive=True)
        self.assertEqual(len(room_db), 1)
        with sqlite3.connect(room_db[0]) as conn:
            crash_rows = conn.execute(
                "SELECT COUNT(*) FROM events WHERE type = 'org.test.crash'").fetchone()[0]
        self.assertEqual(crash_rows, 1, "the event was durable in the room DB before the crash")

        server.start()
        # nobody touches the room: start-up recovery alone must replay the announcement
        flt = '{"room":{"timeline":{"limit":50}}}'.replace('"', "%22")
        for _ in range(50):
            status, body = server.request(
                "GET", f"/_matrix/client/v3/sync?timeout=200&filter={flt}", token=token)
            self.assertEqual(status, 200, body)
            timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
            if any(e["type"] == "org.test.crash" for e in timeline):
                break
        self.assertIn("replayed the outbox of 1 room(s)", server.logs())
        synced = [e["type"] for e in timeline]
        self.assertEqual(synced.count("org.test.crash"), 1, synced)
        status, page = server.request(
            "GET", f"/_matrix/client/v3/rooms/{quoted}/messages?dir=b&limit=100", token=token)
        self.assertEqual(status, 200)
        self.assertEqual(server.stop(), 0)

        global_db = os.path.join(server.data_dir, "homeserver.db")
        with sqlite3.connect(room_db[0]) as conn:
            room_events = {row[0] for row in conn.execute(
                "SELECT event_id FROM events WHERE outlier = 0")}
        with sqlite3.connect(global_db) as conn:
            stream = [row[0] for row in conn.execute(
                "SELECT event_id FROM room_stream WHERE room_id = ?", (room_id,))]
        self.assertEqual(len(stream), len(set(stream)), "no event announced twice")
        self.assertEqual(set(stream), room_events, "every event announced")
        crash_events = [e for e in page["chunk"] if e["type"] == "org.test.crash"]
        self.assertEqual(len(crash_events), 1)
