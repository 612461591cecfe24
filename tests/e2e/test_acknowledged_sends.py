"""An acknowledged send survives a SIGKILL that comes right after its 200 (issue 16).

Concurrent senders write enough events into a few rooms for their commits to be
grouped and for WAL checkpoints to run off the reactor thread
(``RoomStore.checkpoint_in``); the process is killed the moment the last 200 arrived.
After a restart every acknowledged event is in its room, each sender's events in the
order they were sent, and a retry of an acknowledged transaction gets the same event
back (the global record of transaction IDs is written after the answer, the room's
own with the event).
"""

from __future__ import annotations

import shutil
import threading
import urllib.parse

from twisted.trial import unittest

from tests.e2e.harness import ServerProcess

ROOMS = 2
SENDERS = 4
PER_SENDER = 80


def _q(room_id: str) -> str:
    return urllib.parse.quote(room_id, safe="")


class AcknowledgedSendTests(unittest.TestCase):
    timeout = 240

    def _register(self, server: ServerProcess, name: str) -> str:
        status, body = server.request("POST", "/_matrix/client/v3/register", {
            "username": name, "password": f"pw-{name}-1", "auth": {"type": "m.login.dummy"}})
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def test_every_acknowledged_send_survives_sigkill_after_the_last_200(self):
        """Killed right after the last 200: all acked events are there, in send order."""
        server = ServerProcess()
        self.addCleanup(shutil.rmtree, server.data_dir, True)
        self.addCleanup(server.stop)
        server.start()
        tokens = [self._register(server, f"sender{i}") for i in range(SENDERS)]
        rooms = []
        for _ in range(ROOMS):
            status, body = server.request("POST", "/_matrix/client/v3/createRoom",
                                          {"preset": "public_chat"}, token=tokens[0])
            self.assertEqual(status, 200, body)
            rooms.append(body["room_id"])
            for token in tokens[1:]:
                status, body = server.request(
                    "POST", f"/_matrix/client/v3/rooms/{_q(rooms[-1])}/join", {}, token=token)
                self.assertEqual(status, 200, body)

        #: (sender, room) → event IDs in the order their sends were acknowledged
        acked: dict[tuple[int, str], list[str]] = {}
        txns: dict[str, tuple[int, str, str]] = {}   # event ID → (sender, room, txn)
        failures: list[str] = []
        lock = threading.Lock()

        def send(index: int) -> None:
            for n in range(PER_SENDER):
                room_id, txn = rooms[n % ROOMS], f"s{index}-{n}"
                status, body = server.request(
                    "PUT", f"/_matrix/client/v3/rooms/{_q(room_id)}/send/m.room.message/{txn}",
                    {"msgtype": "m.text", "body": txn}, token=tokens[index])
                with lock:
                    if status != 200:
                        failures.append(f"{txn}: {status} {body}")
                        return
                    acked.setdefault((index, room_id), []).append(body["event_id"])
                    txns[body["event_id"]] = (index, room_id, txn)

        threads = [threading.Thread(target=send, args=(i,), daemon=True)
                   for i in range(SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        server.kill()
        self.assertEqual(failures, [])
        self.assertEqual(len(txns), SENDERS * PER_SENDER)

        server.start()
        for room_id in rooms:
            status, page = server.request(
                "GET", f"/_matrix/client/v3/rooms/{_q(room_id)}/messages?dir=f&limit=1000",
                token=tokens[0])
            self.assertEqual(status, 200, page)
            in_room = [e["event_id"] for e in page["chunk"]]
            self.assertEqual(len(in_room), len(set(in_room)))
            for index in range(SENDERS):
                mine = acked.get((index, room_id), [])
                self.assertEqual([e for e in in_room if e in set(mine)], mine,
                                 f"sender {index} in {room_id}")
        # a retry of acknowledged transactions (one per sender) answers the same event
        for index in range(SENDERS):
            event_id = acked[(index, rooms[-1])][-1]
            _, room_id, txn = txns[event_id]
            status, body = server.request(
                "PUT", f"/_matrix/client/v3/rooms/{_q(room_id)}/send/m.room.message/{txn}",
                {"msgtype": "m.text", "body": txn}, token=tokens[index])
            self.assertEqual((status, body), (200, {"event_id": event_id}))
