"""Push end to end: the real server process delivers a mention to a push gateway
running in the test process with the right counts, and an override rule with no
actions suppresses the push (Push Gateway API, ``/_matrix/push/v1/notify``)."""

from __future__ import annotations

import http.server
import json
import queue
import threading
from urllib.parse import quote

from twisted.trial import unittest

from tests.e2e.harness import ServerProcess

V3 = "/_matrix/client/v3"


class _Gateway(http.server.ThreadingHTTPServer):
    """A tiny push gateway: records each /notify body, accepts every pushkey."""

    def __init__(self) -> None:
        self.received: queue.Queue = queue.Queue()
        gateway = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                gateway.received.put((self.path, json.loads(self.rfile.read(length))))
                payload = b'{"rejected": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/_matrix/push/v1/notify"


class PushGatewayTests(unittest.TestCase):
    timeout = 120

    def ok(self, server, method, path, body=None, token=None):
        status, answer = server.request(method, path, body, token=token)
        self.assertEqual(status, 200, (path, answer))
        return answer

    def test_mention_pushed_and_override_suppresses(self):
        """A mention reaches the gateway with counts; an override with no actions
        stops pushes until it is deleted."""
        gateway = _Gateway()
        threading.Thread(target=gateway.serve_forever, daemon=True).start()
        self.addCleanup(gateway.server_close)
        self.addCleanup(gateway.shutdown)
        server = ServerProcess(overrides={"ip_range_whitelist": ["127.0.0.1"]})
        self.addCleanup(server.stop)
        server.start()

        users = {}
        for name in ("alice", "bob"):
            reg = self.ok(server, "POST", f"{V3}/register", {
                "username": name, "password": f"pw-{name}-1",
                "auth": {"type": "m.login.dummy"}})
            users[name] = (reg["user_id"], reg["access_token"])
        alice_id, alice = users["alice"]
        _, bob = users["bob"]
        room_id = self.ok(server, "POST", f"{V3}/createRoom", {"preset": "public_chat"},
                          token=alice)["room_id"]
        room = quote(room_id)
        self.ok(server, "POST", f"{V3}/rooms/{room}/join", {}, token=bob)
        self.ok(server, "POST", f"{V3}/pushers/set", {
            "kind": "http", "app_id": "org.example.test", "pushkey": "pk-1",
            "app_display_name": "Test", "device_display_name": "Phone", "lang": "en",
            "data": {"url": gateway.url, "extra": "kept"}}, token=alice)

        def send(body, txn):
            return self.ok(server, "PUT", f"{V3}/rooms/{room}/send/m.room.message/{txn}",
                           {"msgtype": "m.text", "body": body, **(
                               {"m.mentions": {"user_ids": [alice_id]}}
                               if "@" in body else {})}, token=bob)["event_id"]

        mention = send("hey @alice", "t1")
        path, body = gateway.received.get(timeout=20)
        note = body["notification"]
        self.assertEqual(path, "/_matrix/push/v1/notify")
        self.assertEqual((note["event_id"], note["room_id"], note["type"], note["counts"]),
                         (mention, room_id, "m.room.message", {"unread": 1}))
        self.assertEqual(note["content"]["body"], "hey @alice")
        [device] = note["devices"]
        self.assertEqual((device["app_id"], device["pushkey"], device["data"]),
                         ("org.example.test", "pk-1", {"extra": "kept"}))
        self.assertTrue(device["tweaks"]["highlight"])
        self.assertEqual(note["prio"], "high")

        plain = send("and more", "t2")
        _, body = gateway.received.get(timeout=20)
        self.assertEqual((body["notification"]["event_id"],
                          body["notification"]["counts"]), (plain, {"unread": 2}))

        rule = f"{V3}/pushrules/global/override/quiet"
        self.ok(server, "PUT", rule, {"conditions": [
            {"kind": "event_match", "key": "room_id", "pattern": room_id}],
            "actions": []}, token=alice)
        send("hey again @alice", "t3")
        self.ok(server, "DELETE", rule, token=alice)
        after = send("after the rule", "t4")
        # pushes of a room go out in order: the first one after the override is t4's
        _, body = gateway.received.get(timeout=20)
        self.assertEqual(body["notification"]["event_id"], after)
        self.assertEqual(body["notification"]["counts"], {"unread": 3})
        self.assertTrue(gateway.received.empty())
