"""The WebSocket sync stream, driven by autobahn's Twisted client: the first frame is
a sync response, later frames are pushed deltas, and a stream resumes from a token."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, task

from homeserver.sync.tokens import StreamToken
from tests.client_api.sync_helpers import SyncTestCase, bodies, timeline

WS = "/_matrix/client/unstable/org.roomserver.ws"


class _Client(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.frames.put(json.loads(payload))

    def onClose(self, wasClean: bool, code, reason) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(str(reason)))
        if not self.factory.closed.called:
            self.factory.closed.callback(reason)


class WebSocketTests(SyncTestCase):
    async def connect(self, token: str | None = None, *, header: bool = False,
                      **params: str) -> WebSocketClientFactory:
        """Open a stream; the factory's ``frames`` queue receives the frames."""
        if token is not None and not header:
            params["access_token"] = token
        url = f"ws://127.0.0.1:{self.port}{WS}?{urlencode(params)}"
        headers = {"Authorization": f"Bearer {token}"} if header else None
        reactor = self.c["reactor"]
        factory = WebSocketClientFactory(url, headers=headers, reactor=reactor)
        factory.protocol = _Client
        factory.frames = defer.DeferredQueue()
        factory.opened, factory.closed = defer.Deferred(), defer.Deferred()
        connector = reactor.connectTCP("127.0.0.1", self.port, factory)
        self.addCleanup(self._close, connector, factory)
        return factory

    async def _close(self, connector, factory) -> None:
        connector.disconnect()
        await factory.closed

    async def test_first_frame_then_pushed_delta(self):
        """Connecting without since gives an initial sync; a message sent afterwards
        is pushed as a delta continuing from that frame's next_batch."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token, name="ws")
        stream = await self.connect(token)
        await stream.opened
        first = await stream.frames.get()
        self.assertIn(room_id, first["rooms"]["join"])
        event_id = await self.send(token, room_id, {"msgtype": "m.text", "body": "push"})
        frame = await stream.frames.get()
        while event_id not in [e["event_id"] for e in
                               frame["rooms"]["join"].get(room_id, {}).get(
                                   "timeline", {}).get("events", [])]:
            frame = await stream.frames.get()  # e.g. the user's own presence first
        self.assertEqual(bodies(timeline(frame, room_id)), ["push"])
        self.assertTrue(StreamToken.parse(frame["next_batch"])
                        .is_after(StreamToken.parse(first["next_batch"])))

    async def test_resume_from_token_with_header_auth(self):
        """A stream opened with a /sync token (token in the header) starts with what
        happened since it."""
        _, token = await self.register("alice")
        room_id = await self.create_room(token)
        since = (await self.sync_ok(token))["next_batch"]
        await self.send(token, room_id, {"msgtype": "m.text", "body": "while away"})
        stream = await self.connect(token, header=True, since=since)
        first = await stream.frames.get()
        self.assertEqual(bodies(timeline(first, room_id)), ["while away"])

    async def test_to_device_ack(self):
        """To-device messages are pushed and deleted once acknowledged."""
        alice_id, alice = await self.register("alice")
        bob_id, bob = await self.register("bob", device_id="BOBWS")
        await self.ok("PUT", "/_matrix/client/v3/sendToDevice/org.example.k/t1",
                      {"messages": {bob_id: {"BOBWS": {"k": 1}}}}, token=alice)
        stream = await self.connect(bob)
        client = await stream.opened
        first = await stream.frames.get()
        self.assertEqual(first["to_device"]["events"][0]["content"], {"k": 1})
        store = self.c["store"].to_device
        self.assertEqual(len((await store.get_messages(bob_id, "BOBWS", 0))[0]), 1)
        client.sendMessage(json.dumps({"ack": first["next_batch"]}).encode())
        while (await store.get_messages(bob_id, "BOBWS", 0))[0]:
            # the acknowledgement is handled asynchronously
            await task.deferLater(self.c["reactor"], 0.01, lambda: None)
        self.assertEqual((await store.get_messages(bob_id, "BOBWS", 0))[0], [])

    async def test_refused_without_valid_token_or_since(self):
        """No token or a bad token: 401; a malformed since: 400 — the handshake is
        refused with the Matrix error code."""
        _, token = await self.register("alice")
        for kwargs, refusal in (({}, "[401]: M_MISSING_TOKEN"),
                                ({"token": "nope"}, "[401]: M_UNKNOWN_TOKEN"),
                                ({"token": token, "since": "garbage"},
                                 "[400]: M_INVALID_PARAM")):
            stream = await self.connect(kwargs.pop("token", None), **kwargs)
            with self.assertRaises(ConnectionError) as cm:
                await stream.opened
            self.assertIn(refusal, str(cm.exception))
            self.assertEqual(stream.frames.pending, [])
