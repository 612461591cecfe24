"""A client syncing through a crash misses nothing (issue #12).

The real server process takes a storm of messages from several senders into many rooms
while a client long-polls ``/sync``; the process is killed with SIGKILL mid-storm and
started again. The client resumes from its last ``next_batch`` and fills every
``limited`` timeline by walking ``/messages?dir=b`` from its ``prev_batch`` until it
reaches an event it already had (spec: "Syncing", "Filling the gap"). Every event a
sender got a 200 for must then be in the client's copy of the room, exactly once.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import sqlite3
import threading
import time
import urllib.parse

from twisted.trial import unittest

from tests.e2e.harness import ServerProcess

ROOMS = 20
PER_ROOM = 25
SENDERS = 4
#: small timelines, so that most sync responses are ``limited`` and need back-filling
TIMELINE_LIMIT = 3
FILTER = urllib.parse.quote(json.dumps({"room": {"timeline": {"limit": TIMELINE_LIMIT}}}))


def _q(room_id: str) -> str:
    return urllib.parse.quote(room_id, safe="")


class _SyncClient:
    """What a real client keeps: per room the events it has, and the gaps it must
    fill (a limited timeline's ``prev_batch`` and the events it had before it)."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        self.server = server
        self.token = token
        self.next_batch: str | None = None
        #: room → event IDs, in the order the client received them
        self.timeline: dict[str, list[str]] = {}
        #: (room, prev_batch, event IDs the client had in the room before that timeline)
        self.gaps: list[tuple[str, str, frozenset[str]]] = []
        self.stop = threading.Event()
        self.errors: list[str] = []

    def sync_once(self, timeout_ms: int) -> dict:
        path = f"/_matrix/client/v3/sync?timeout={timeout_ms}&filter={FILTER}"
        if self.next_batch is not None:
            path += "&since=" + urllib.parse.quote(self.next_batch)
        status, body = self.server.request("GET", path, token=self.token)
        if status != 200:
            raise AssertionError(f"/sync answered {status}: {body}")
        for room_id, room in body["rooms"]["join"].items():
            had = frozenset(self.timeline.get(room_id, ()))
            timeline = room["timeline"]
            if timeline.get("limited"):
                self.gaps.append((room_id, timeline["prev_batch"], had))
            self.timeline.setdefault(room_id, []).extend(
                e["event_id"] for e in timeline["events"])
        self.next_batch = body["next_batch"]
        return body

    def long_poll(self) -> None:
        """Until stopped or the server dies: the tokens stay those of the last answer."""
        while not self.stop.is_set():
            try:
                self.sync_once(5000)
            except (OSError, ConnectionError):
                return  # the server was killed under us
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
                return

    def fill_gaps(self) -> dict[str, list[str]]:
        """Walk back from each gap's ``prev_batch`` to the events had before it."""
        filled: dict[str, list[str]] = {}
        for room_id, prev_batch, had in self.gaps:
            token: str | None = prev_batch
            for _ in range(200):
                status, page = self.server.request(
                    "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/messages?dir=b"
                           f"&limit=10&from={urllib.parse.quote(token)}", token=self.token)
                if status != 200:
                    raise AssertionError(f"/messages answered {status}: {page}")
                reached = False
                for event in page["chunk"]:
                    if event["event_id"] in had:
                        reached = True
                        break
                    filled.setdefault(room_id, []).append(event["event_id"])
                token = page.get("end")
                if reached or token is None:
                    break
            else:
                raise AssertionError(f"gap in {room_id} never closed")
        return filled


class SyncThroughCrashTests(unittest.TestCase):
    timeout = 240

    def _register(self, server: ServerProcess, name: str) -> str:
        status, body = server.request("POST", "/_matrix/client/v3/register", {
            "username": name, "password": f"pw-{name}-1", "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def _check_walks(self, server: ServerProcess, token: str, room_id: str) -> None:
        """A complete dir=b walk gives the room newest first down to its create event;
        dir=f from the walk's last `end` gives the earliest events, in order."""
        def page(**params) -> dict:
            status, body = server.request(
                "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/messages?"
                       + urllib.parse.urlencode(params), token=token)
            self.assertEqual(status, 200, body)
            return body

        everything = [e["event_id"] for e in page(dir="f", limit=1000)["chunk"]]
        walked, params, last_end = [], {"dir": "b", "limit": 7}, None
        for _ in range(100):
            body = page(**params)
            walked += [e["event_id"] for e in body["chunk"]]
            if "end" not in body:
                break
            last_end = params["from"] = body["end"]
        self.assertEqual(walked, everything[::-1], room_id)
        forwards = page(dir="f", limit=7, **{"from": last_end})["chunk"]
        self.assertEqual([e["event_id"] for e in forwards], everything[:7], room_id)

    def test_client_resuming_after_sigkill_misses_no_acknowledged_event(self):
        """SIGKILL mid-storm: after restart, sync + gap filling yield every 200'd event once."""
        server = ServerProcess()
        self.addCleanup(shutil.rmtree, server.data_dir, True)
        self.addCleanup(server.stop)
        server.start()
        reader = self._register(server, "reader")
        senders = [self._register(server, f"sender{i}") for i in range(SENDERS)]
        rooms = []
        for _ in range(ROOMS):
            status, body = server.request("POST", "/_matrix/client/v3/createRoom",
                                          {"preset": "public_chat"}, token=reader)
            self.assertEqual(status, 200, body)
            rooms.append(body["room_id"])
            for token in senders:
                status, body = server.request(
                    "POST", f"/_matrix/client/v3/rooms/{_q(rooms[-1])}/join", {}, token=token)
                self.assertEqual(status, 200, body)

        client = _SyncClient(server, reader)
        client.sync_once(0)
        poller = threading.Thread(target=client.long_poll, daemon=True)
        poller.start()

        acked: dict[str, set[str]] = {room_id: set() for room_id in rooms}
        lock = threading.Lock()
        total = ROOMS * PER_ROOM

        def send(index: int, token: str) -> None:
            for n in range(index, total, SENDERS):
                room_id = rooms[n % ROOMS]
                try:
                    status, body = server.request(
                        "PUT", f"/_matrix/client/v3/rooms/{_q(room_id)}/send/m.room.message"
                               f"/t{n}", {"msgtype": "m.text", "body": f"m{n}"}, token=token)
                except (OSError, ConnectionError):
                    return
                if status == 200:
                    with lock:
                        acked[room_id].add(body["event_id"])

        threads = [threading.Thread(target=send, args=(i, t), daemon=True)
                   for i, t in enumerate(senders)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if sum(map(len, acked.values())) >= total // 2:
                    break
            time.sleep(0.005)
        server.kill()
        for t in threads:
            t.join(30)
        client.stop.set()
        poller.join(30)
        self.assertEqual(client.errors, [])
        acked_count = sum(map(len, acked.values()))
        self.assertGreater(acked_count, 0)
        self.assertLess(acked_count, total, "the kill came after the storm")

        server.start()
        # resume with the last token until the stream is quiet (the outbox replay and
        # the syncs may interleave, so "quiet" is two empty answers in a row)
        quiet = 0
        for _ in range(100):
            body = client.sync_once(300)
            quiet = 0 if body["rooms"]["join"] else quiet + 1
            if quiet == 2:
                break
        filled = client.fill_gaps()

        missing, duplicated = {}, {}
        for room_id in rooms:
            # a gap holds only what /sync left out: nothing twice, nothing synced
            seen = client.timeline.get(room_id, []) + filled.get(room_id, [])
            have = set(seen)
            dup = {e for e in seen if seen.count(e) > 1}
            if dup:
                duplicated[room_id] = dup
            if acked[room_id] - have:
                missing[room_id] = acked[room_id] - have
        for room_id in rooms:
            self._check_walks(server, reader, room_id)
        self.assertEqual(duplicated, {}, "an event came down /sync or a gap twice")
        self.assertEqual(
            {r: len(m) for r, m in missing.items()}, {},
            f"acknowledged events the client never saw ({acked_count} acknowledged)")
        self.assertEqual(server.stop(), 0)

        # stored but never acknowledged (committed in the room DB when the process
        # died, announced by the outbox replay) must not be missed either
        stored = _stored_events(server.data_dir)
        self.assertEqual(set(stored), set(rooms))
        unseen = {r: len(events - set(client.timeline.get(r, []))
                         - set(filled.get(r, [])))
                  for r, events in stored.items()}
        self.assertEqual({r: n for r, n in unseen.items() if n}, {},
                         "stored events the client never saw")


def _stored_events(data_dir: str) -> dict[str, set[str]]:
    """room → the IDs of its timeline events, read from the room databases."""
    stored = {}
    for path in glob.glob(os.path.join(data_dir, "rooms", "*", "*.db")):
        with contextlib.closing(sqlite3.connect(path)) as conn:
            room_id = conn.execute(
                "SELECT value FROM room_meta WHERE key = 'room_id'").fetchone()[0]
            stored[room_id] = {row[0] for row in conn.execute(
                "SELECT event_id FROM events WHERE outlier = 0 AND rejected IS NULL"
                " AND soft_failed = 0")}
    return stored
